#!/usr/bin/python3
"""Fails on string-built SQL in the C sources (issue 7, item 5).

Every call that sends SQL to PostgreSQL -- PQexec, PQexecParams, PQprepare,
PQsendQuery*, PQsendPrepare, pg_query, pg_command, and any function that
passes one of its own parameters on as the SQL of such a call (found
automatically, e.g. pg_exec_script()) -- must get its SQL
as compile-time text:

  * a string literal (adjacent literals and ALL_CAPS macros concatenated, a
    macro perhaps given string literals only: AUDIT_CTX_SQL("$3")),
  * a `static const char` constant of the same file (name or name[i]),
  * the enclosing function's own `const char *` parameter (the function
    then becomes a checked wrapper and its callers are held to the same
    rule),
  * a ternary whose branches are all of the above,
  * or an entry of ALLOWED below, each with its reason.

Also refused: snprintf/sprintf/strcat/strcpy/memcpy into a buffer whose name
contains "sql" or "query".

Usage:
  check_sql_params.py SOURCE_DIR          check the tree; exit 1 on findings
  check_sql_params.py --self-test SRC     check SRC passes, then that planted
                                          violations in a temp copy fail
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

DIRS = ("common", "consumer", "alerting", "cmd", "console")

# name -> index of the SQL argument (0-based)
BASE_CALLS = {
    "PQexec": 1,
    "PQexecParams": 1,
    "PQprepare": 2,
    "PQsendQuery": 1,
    "PQsendQueryParams": 1,
    "PQsendPrepare": 2,
    "pg_query": 1,
    "pg_command": 1,
}

# (file, argument text) -> why it is safe
ALLOWED = {
    ("cmd/cmd_migrate.c", "m->sql"):
        "migration files compiled into the binary (schemas/migrations, embedded)",
    ("console/api.c", "ls.text"):
        "alerts_list's statement: list_sql_add joins literal fragments (and a table alias,"
        " 'a' or 'l') chosen by which filters are present; every value is a $n parameter",
}

BUILD_FUNCS = r"(?:v?snprintf|sprintf|strn?cat|strn?cpy|stpn?cpy|memcpy|memmove)"
SQL_BUF_RE = re.compile(
    BUILD_FUNCS + r"\s*\(\s*&?\s*([A-Za-z_][\w.\->\[\]]*)\s*[,)]")


def strip_comments(text):
    """Comments become spaces (newlines kept); strings and chars stay."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def blank_strings(text):
    """Same length, string and char contents blanked, for brace matching."""
    def rep(m):
        s = m.group(0)
        return s[0] + " " * (len(s) - 2) + s[-1]
    return re.sub(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', rep, text)


def split_args(text, start):
    """TEXT[start] is just after '('. Returns (args, end) at top level."""
    depth, i, args, cur = 0, start, [], start
    while i < len(text):
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < len(text) and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                args.append(text[cur:i].strip())
                return args, i
            depth -= 1
        elif c == "," and depth == 0:
            args.append(text[cur:i].strip())
            cur = i + 1
        i += 1
    return args, i


def functions(code, blank):
    """Yields (name, params, body_start, body_end) of top-level definitions."""
    depth = 0
    depth_at = []
    for c in blank:
        depth_at.append(depth)
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
    for m in re.finditer(r"\b([A-Za-z_]\w*)\s*\(([^;{}()]*(?:\([^()]*\)[^;{}()]*)*)\)\s*(?:__attribute__\s*\(\([^)]*\)\)\s*)?\{",
                         blank):
        if depth_at[m.start()] != 0 or m.group(1) in ("if", "while", "for", "switch"):
            continue
        params = []
        for p in m.group(2).split(","):
            # Only `const char *name` may pass SQL through: a buffer being
            # built is not const.
            pm = re.fullmatch(r"const\s+char\s*\*\s*(?:const\s+)?([A-Za-z_]\w*)", p.strip())
            params.append(pm.group(1) if pm else "")
        open_at = m.end() - 1
        d, j = 0, open_at
        while j < len(blank):
            if blank[j] == "{":
                d += 1
            elif blank[j] == "}":
                d -= 1
                if d == 0:
                    break
            j += 1
        yield m.group(1), params, open_at, j


def is_declaration(code, at):
    """True if the name at AT is being declared/defined, not called."""
    line_start = code.rfind("\n", 0, at) + 1
    prefix = code[line_start:at]
    if not prefix.strip():
        # A definition's name may start its own line after the return type.
        prev = code[:line_start].rstrip()
        return prev.endswith(("*", "int", "void", "PGresult")) and not prev.endswith(";")
    return re.fullmatch(r"\s*(?:static\s+|extern\s+|inline\s+)*[A-Za-z_][\w\s]*[\s*]+", prefix) \
        is not None and not re.search(r"\breturn\b|=", prefix)


def arg_ok(arg, constants, params):
    """Returns (ok, parameter name if it passes a parameter through)."""
    arg = arg.strip()
    while arg.startswith("(") and arg.endswith(")") and split_args(arg, 1)[1] == len(arg) - 1:
        arg = arg[1:-1].strip()
    # Ternary at top level: every branch must be fine.
    depth, q = 0, -1
    for i, c in enumerate(blank_strings(arg)):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "?" and depth == 0:
            q = i
            break
    if q >= 0:
        rest = arg[q + 1:]
        depth, colon = 0, -1
        for i, c in enumerate(blank_strings(rest)):
            if c in "([{?":
                depth += 1
            elif c in ")]}":
                depth -= 1
            elif c == ":" and depth == 0:
                colon = i
                break
            elif c == ":":
                depth -= 1
        if colon < 0:
            return False, None
        a, pa = arg_ok(rest[:colon], constants, params)
        b, pb = arg_ok(rest[colon + 1:], constants, params)
        return a and b, pa or pb
    tokens = re.findall(r'[A-Z][A-Z0-9_]*\("(?:\\.|[^"\\])*"\)|"(?:\\.|[^"\\])*"|\S+', arg)
    # an ALL_CAPS macro, plain or given only string literals (AUDIT_CTX_SQL("$7"))
    macro = r'[A-Z][A-Z0-9_]*(\("(?:\\.|[^"\\])*"\))?'
    if tokens and all(t.startswith('"') or re.fullmatch(macro, t) for t in tokens) \
            and any(t.startswith('"') for t in tokens):
        return True, None
    m = re.fullmatch(r"([A-Za-z_]\w*)(\s*\[[^\]]*\])?", arg)
    if m and m.group(1) in constants:
        return True, None
    if m and not m.group(2) and m.group(1) in params:
        return True, m.group(1)
    return False, None


def scan(root):
    files = []
    for d in DIRS:
        p = os.path.join(root, d)
        if os.path.isdir(p):
            files += [os.path.join(d, f) for f in sorted(os.listdir(p)) if f.endswith(".c")]
    sources = {}
    for rel in files:
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            code = strip_comments(f.read())
        blank = blank_strings(code)
        consts = set(re.findall(
            r"\bstatic\s+const\s+char\s*(?:\*\s*const\s*)?([A-Za-z_]\w*)\s*(?:\[[^\]]*\])*\s*=",
            code))
        sources[rel] = (code, blank, consts, list(functions(code, blank)))

    calls = dict(BASE_CALLS)
    findings, seen_calls = [], 0
    changed = True
    while changed:  # wrappers found on one pass are checked on the next
        changed = False
        findings, seen_calls = [], 0
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, calls)) + r")\s*\(")
        for rel, (code, blank, consts, funcs) in sources.items():
            for m in pattern.finditer(blank):
                if is_declaration(code, m.start()):
                    continue
                name = m.group(1)
                args, _ = split_args(code, m.end())
                idx = calls[name]
                line = code.count("\n", 0, m.start()) + 1
                seen_calls += 1
                if idx >= len(args):
                    findings.append(f"{rel}:{line}: {name}() call with too few arguments")
                    continue
                arg = args[idx]
                encl = next((f for f in funcs if f[2] < m.start() < f[3]), None)
                ok, via = arg_ok(arg, consts, encl[1] if encl else [])
                if ok and via and encl:
                    wrapper = encl[0]
                    if wrapper not in calls:
                        calls[wrapper] = encl[1].index(via)
                        changed = True
                    continue
                if not ok and (rel, arg) in ALLOWED:
                    continue
                if not ok:
                    findings.append(f"{rel}:{line}: {name}() gets SQL '{' '.join(arg.split())}'"
                                    " that is not a literal or a static const: string-built SQL?")
    for rel, (code, blank, consts, funcs) in sources.items():
        for m in SQL_BUF_RE.finditer(blank):
            target = m.group(1)
            if re.search(r"sql|query", target, re.IGNORECASE):
                line = code.count("\n", 0, m.start()) + 1
                findings.append(f"{rel}:{line}: SQL text built at run time into '{target}'")
    return findings, seen_calls, calls


def check(root, quiet=False):
    findings, n, calls = scan(root)
    if not quiet:
        wrappers = sorted(set(calls) - set(BASE_CALLS))
        print(f"checked {n} SQL calls in {', '.join(DIRS)} (wrappers found: {', '.join(wrappers)})")
        for f in findings:
            print(f)
    return findings, n


PLANTS = [
    # (file, text appended, what must be reported)
    ("alerting/dedupe.c",
     "\nint planted_lookup(PGconn *conn, const char *v);\n"
     "int planted_lookup(PGconn *conn, const char *v)\n{\n    char sql[256];\n"
     "    snprintf(sql, sizeof sql, \"SELECT 1 FROM alerts WHERE alert_id = '%s'\", v);\n"
     "    return pg_command(conn, sql, 0, NULL, NULL, 0);\n}\n",
     ["into 'sql'", "pg_command() gets SQL 'sql'"]),
    ("consumer/store_batch.c",
     "\nstatic PGresult *planted_exec(PGconn *c, const char *sql)\n{\n"
     "    return PQexec(c, sql);\n}\n"
     "int planted_call(PGconn *c, char *buf);\n"
     "int planted_call(PGconn *c, char *buf)\n{\n"
     "    strcat(buf, \"x\");\n    PQclear(planted_exec(c, buf));\n    return 0;\n}\n",
     ["planted_exec() gets SQL 'buf'"]),
    ("cmd/cmd_migrate.c",
     "\nvoid planted_q(PGconn *c);\nvoid planted_q(PGconn *c)\n{\n"
     "    const char *q = getenv(\"VIGIL_Q\");\n"
     "    PQclear(PQexec(c, q));\n"
     "    PQclear(pg_query(c, 1 ? \"SELECT 1\" : q, 0, NULL, NULL, 0));\n}\n",
     ["PQexec() gets SQL 'q'", "pg_query() gets SQL '1 ? \"SELECT 1\" : q'"]),
]


def self_test(src):
    findings, n = check(src)
    failures = 0
    if findings or n < 10:
        print(f"FAIL: the tree itself should pass with at least 10 calls seen (saw {n})")
        failures += 1
    else:
        print(f"ok: the tree passes ({n} calls)")
    for rel, text, expect in PLANTS:
        with tempfile.TemporaryDirectory(prefix="vigil-sqlcheck-") as tmp:
            for d in DIRS:
                shutil.copytree(os.path.join(src, d), os.path.join(tmp, d))
            with open(os.path.join(tmp, rel), "a") as f:
                f.write(text)
            got, _ = scan(tmp)[:2]
            rc = subprocess.run([sys.executable, __file__, tmp],
                                stdout=subprocess.DEVNULL).returncode
            missing = [e for e in expect if not any(e in g for g in got)]
            if missing or rc == 0:
                print(f"FAIL: planted violation in {rel} not caught (missing {missing}, rc {rc})")
                failures += 1
            else:
                print(f"ok: planted violation in {rel} caught: {got[0]}")
    return failures


def main(argv):
    if len(argv) == 3 and argv[1] == "--self-test":
        failures = self_test(argv[2])
        print(f"{len(PLANTS) + 1 - failures} passed, {failures} failed")
        return 1 if failures else 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    findings, _ = check(argv[1])
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
