#!/usr/bin/python3
"""Checks the Dockerfile at the repository root without a container engine.

    test_dockerfile.py [DOCKERFILE]     (env: VIGIL_BINARY, VIGIL_SOURCE_DIR)

What it asserts:
  - multi-stage: a build stage FROM debian:bookworm installing every -dev
    package cmake/Deps.cmake names, a final stage FROM debian:bookworm-slim
    that copies vigil from the build stage;
  - the final stage runs as a numeric non-root USER (Kubernetes' runAsNonRoot
    can only verify a numeric one), has ENTRYPOINT ["vigil"] in exec form and
    no HEALTHCHECK anywhere (Kubernetes probes do that);
  - every shared library `ldd vigil` resolves to belongs to a Debian package
    (dpkg -S) that the final stage's `apt-get install` names, or that one of
    those depends on (apt installs it too), or that debian:bookworm-slim
    already has (Essential or Priority: required, as in Debian's minbase);
    libraries vigil links directly (DT_NEEDED) must be named explicitly;
  - every package the final stage installs is used: it provides a library
    vigil loads, or is a known non-library need (ca-certificates);
  - then the same checks run against broken copies of the Dockerfile (a
    dropped library, a HEALTHCHECK, USER root, one stage, ...) and must fail,
    so the checker itself cannot rot into accepting anything.

Dependency facts come from this machine's dpkg database, which is Debian
bookworm like the image: the packages named must be installed here (they are:
the build needs their -dev packages).

Prints one line per check and "N passed, N failed"; exits 1 on any failure.
"""
import json
import os
import re
import shlex
import subprocess
import sys

# Packages the runtime stage may install that provide no library vigil
# loads, and why.
NON_LIBRARY_PACKAGES = {
    "ca-certificates": "CA bundle for TLS to Kafka, SMTP and the SMS gateway",
    "tzdata": "time zone names in logs",
}
# Sanitizer runtimes appear in ldd of a -DVIGIL_SANITIZE build (the tests run
# there too); a shipped image is never such a build.
SANITIZER_LIBS = re.compile(r"^lib(asan|ubsan|tsan|lsan)\.so")


class Result:
    def __init__(self, quiet=False):
        self.passed = 0
        self.failed = 0
        self.quiet = quiet
        self.failures = []

    def check(self, ok, what):
        if ok:
            self.passed += 1
            if not self.quiet:
                print(f"ok: {what}")
        else:
            self.failed += 1
            self.failures.append(what)
            if not self.quiet:
                print(f"FAIL: {what}")


def instructions(text):
    """Dockerfile text -> [(INSTRUCTION, argument)], continuations joined."""
    out = []
    buf = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue  # comment lines inside a continued instruction
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    if buf.strip():
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages(instrs):
    """[(from_image, stage_name, [instructions])] in order."""
    result = []
    for word, arg in instrs:
        if word == "FROM":
            parts = arg.split()
            parts = [p for p in parts if not p.startswith("--platform")]
            image = parts[0] if parts else ""
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else ""
            result.append((image, name, []))
        elif result:
            result[-1][2].append((word, arg))
    return result


def apt_installs(stage_instrs):
    """Package names given to `apt-get install` in a stage's RUN lines."""
    pkgs = []
    for word, arg in stage_instrs:
        if word != "RUN":
            continue
        for cmd in re.split(r"&&|;|\|\|", arg):
            toks = shlex.split(cmd)
            toks = [t for t in toks if "=" not in t or t.startswith("-")]  # drop VAR=value
            if len(toks) >= 2 and toks[0] in ("apt-get", "apt") and "install" in toks:
                after = toks[toks.index("install") + 1:]
                pkgs += [t for t in after if not t.startswith("-")]
    return pkgs


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def ldd_libs(binary):
    """{soname: resolved path} of every shared library the binary loads."""
    p = run(["ldd", binary])
    if p.returncode != 0:
        raise SystemExit(f"could not run ldd {binary}: {p.stderr.strip()}")
    libs = {}
    for line in p.stdout.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(\S+)\s+\(", line)
        if m:
            if m.group(2) == "not":
                raise SystemExit(f"ldd {binary}: {line.strip()}")
            libs[m.group(1)] = m.group(2)
        else:
            m = re.match(r"\s*(/\S+)\s+\(", line)  # the dynamic loader
            if m:
                libs[os.path.basename(m.group(1))] = m.group(1)
    return libs


def needed(binary):
    p = run(["readelf", "-d", binary])
    if p.returncode != 0:
        raise SystemExit(f"could not run readelf -d {binary}: {p.stderr.strip()}")
    return set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", p.stdout))


def owning_package(path):
    """Debian package that ships path (tries the merged-/usr aliases)."""
    real = os.path.realpath(path)
    candidates = []
    for p in (path, real):
        candidates.append(p)
        if p.startswith("/usr/lib/") or p.startswith("/usr/lib64/"):
            candidates.append(p[len("/usr"):])
        elif p.startswith("/lib/") or p.startswith("/lib64/"):
            candidates.append("/usr" + p)
    for c in candidates:
        r = run(["dpkg-query", "-S", c])
        if r.returncode == 0:
            pkg = r.stdout.split(":", 1)[0].split(",")[0].strip()
            return pkg
    return None


def dpkg_db():
    """{package: {deps: [[alternatives]], priority, essential, provides}}."""
    fmt = "${Package}\t${Status}\t${Priority}\t${Essential}\t${Depends}\t${Pre-Depends}\t${Provides}\n"
    p = run(["dpkg-query", "-W", "-f", fmt])
    db = {}
    provides = {}
    for line in p.stdout.splitlines():
        f = line.split("\t")
        if len(f) < 7 or "installed" not in f[1].split()[-1:]:
            continue
        deps = []
        for field in (f[4], f[5]):
            for group in filter(None, (g.strip() for g in field.split(","))):
                alts = [re.sub(r"[\s(:].*", "", a.strip()) for a in group.split("|")]
                deps.append(alts)
        db[f[0]] = {"deps": deps, "priority": f[2], "essential": f[3] == "yes"}
        for prov in filter(None, (x.strip() for x in f[6].split(","))):
            provides.setdefault(re.sub(r"[\s(:].*", "", prov), []).append(f[0])
    return db, provides


def closure(roots, db, provides):
    """Installed packages apt would pull in for roots (Depends, Pre-Depends)."""
    seen = set()
    todo = list(roots)
    while todo:
        pkg = todo.pop()
        if pkg in seen:
            continue
        seen.add(pkg)
        for alts in db.get(pkg, {}).get("deps", []):
            for a in alts:
                choice = a if a in db else next(iter(provides.get(a, [])), None)
                if choice:
                    todo.append(choice)
                    break
    return seen


def base_image_packages(db):
    # debian:bookworm-slim is a minbase debootstrap: Essential and
    # Priority: required packages (plus their dependencies).
    roots = [p for p, d in db.items() if d["essential"] or d["priority"] == "required"]
    return roots


def deps_cmake_dev_packages(source_dir):
    text = open(os.path.join(source_dir, "cmake", "Deps.cmake"), encoding="utf-8").read()
    return re.findall(r'"[^";]+;([a-z0-9.+-]+-dev)"', text)


def check_dockerfile(text, facts, res):
    st = stages(instructions(text))
    res.check(len(st) >= 2, "multi-stage: at least a build and a runtime stage")
    res.check(all(w != "HEALTHCHECK" for s in st for w, _ in s[2]),
              "no HEALTHCHECK (Kubernetes probes /healthz and /readyz)")
    if len(st) < 2:
        return
    build_image, build_name, build = st[0]
    final_image, _, final = st[-1]
    res.check(re.fullmatch(r"debian:bookworm(-\d{8})?", build_image) is not None,
              f"build stage is FROM debian:bookworm (is {build_image})")
    res.check(re.fullmatch(r"debian:bookworm(-\d{8})?-slim", final_image) is not None,
              f"runtime stage is FROM debian:bookworm-slim (is {final_image})")
    copies = [a for w, a in final if w == "COPY" and re.search(r"--from=(\S+)", a)]
    res.check(any(re.search(r"--from=(\S+)", a).group(1) in (build_name, "0") and "vigil" in a
                  for a in copies),
              "runtime stage copies vigil from the build stage")

    users = [a for w, a in final if w == "USER"]
    user = users[-1].split(":")[0] if users else ""
    res.check(user.isdigit() and int(user) != 0,
              f"runtime stage ends as a numeric non-root USER (is {user or 'unset'})")
    entry = [a for w, a in final if w == "ENTRYPOINT"]
    try:
        ep = json.loads(entry[-1]) if entry else None
    except json.JSONDecodeError:
        ep = None
    res.check(isinstance(ep, list) and ep and os.path.basename(ep[0]) == "vigil",
              f"ENTRYPOINT is exec form starting with vigil (is {entry[-1] if entry else 'unset'})")

    build_pkgs = set(apt_installs(build))
    for dev in facts["dev_packages"]:
        res.check(dev in build_pkgs, f"build stage installs {dev} (cmake/Deps.cmake needs it)")
    res.check(not any(p.endswith("-dev") for p in apt_installs(final)),
              "runtime stage installs no -dev package")
    runtime = apt_installs(final)
    res.check(bool(runtime), "runtime stage installs its libraries with apt-get install")
    for w, a in final:
        if w == "RUN" and "apt-get install" in a:
            res.check("--no-install-recommends" in a, "runtime apt-get install uses --no-install-recommends")
            res.check("rm -rf /var/lib/apt/lists" in a, "runtime stage removes the apt lists")

    db, provides = facts["db"], facts["provides"]
    for p in runtime:
        res.check(p in db, f"runtime package {p} is a Debian package installed here (so its dependencies are known)")
    installed = closure(runtime, db, provides)
    base = closure(facts["base_roots"], db, provides)
    for soname, (path, pkg) in sorted(facts["libs"].items()):
        where = f"{soname} ({path}, package {pkg})"
        if soname in facts["needed"]:
            res.check(pkg in runtime or pkg in base,
                      f"{where}: linked directly, so named in the runtime apt-get install or in the base image")
        else:
            res.check(pkg in installed or pkg in base,
                      f"{where}: installed by the runtime stage or its dependencies, or in the base image")
    used = {pkg for _, pkg in facts["libs"].values()}
    for p in runtime:
        res.check(p in used or p in NON_LIBRARY_PACKAGES or p in facts["linked_runtime"],
                  f"runtime package {p} provides a library vigil loads, or one cmake/Deps.cmake links "
                  "(or is a known non-library need)")


def main():
    source = os.environ.get("VIGIL_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    dockerfile = sys.argv[1] if len(sys.argv) > 1 else os.path.join(source, "Dockerfile")
    binary = os.environ.get("VIGIL_BINARY")
    if not binary or not os.access(binary, os.X_OK):
        raise SystemExit("VIGIL_BINARY must name the built vigil binary")
    text = open(dockerfile, encoding="utf-8").read()

    db, provides = dpkg_db()
    libs = {}
    for soname, path in ldd_libs(binary).items():
        if SANITIZER_LIBS.match(soname) or soname.startswith("linux-vdso"):
            continue
        libs[soname] = (path, owning_package(path))
    facts = {
        "db": db, "provides": provides, "libs": libs, "needed": needed(binary),
        "base_roots": base_image_packages(db),
        "dev_packages": deps_cmake_dev_packages(source),
    }
    # The runtime packages of the libraries cmake/Deps.cmake links (what each
    # -dev package depends on). Whether one is DT_NEEDED depends on the
    # linker's --as-needed and the build type (a sanitizer build keeps
    # libavro, a plain one drops it), so the image may carry them all.
    facts["linked_runtime"] = {alts[0] for dev in facts["dev_packages"]
                               for alts in db.get(dev, {}).get("deps", [])
                               if not alts[0].endswith("-dev")}

    res = Result()
    for soname, (path, pkg) in sorted(libs.items()):
        res.check(pkg is not None, f"{soname} ({path}) belongs to a Debian package (dpkg -S)")
    res.check(len(libs) >= 5, f"ldd found the libraries vigil loads ({len(libs)})")
    check_dockerfile(text, facts, res)

    # The checker must reject broken Dockerfiles, or a pass means nothing.
    runtime_text = apt_installs(stages(instructions(text))[-1][2]) if "FROM" in text else []
    direct = sorted(p for s, (_, p) in libs.items() if s in facts["needed"] and p in runtime_text)
    mutants = {
        "a linked library's package dropped from the runtime stage":
            re.sub(rf"\s{re.escape(direct[0])}(?=\s)", " ", text, count=1) if direct else text + "\nFROM x\n",
        "a HEALTHCHECK added": text + "\nHEALTHCHECK CMD vigil --help\n",
        "USER root": re.sub(r"(?m)^USER .*$", "USER root", text),
        "USER by name": re.sub(r"(?m)^USER .*$", "USER vigil", text),
        "one stage only": text[text.index("FROM debian:bookworm-slim"):] if "FROM debian:bookworm-slim" in text else "",
        "shell-form ENTRYPOINT": re.sub(r"(?m)^ENTRYPOINT .*$", "ENTRYPOINT vigil", text),
        "runtime on full bookworm": text.replace("debian:bookworm-slim", "debian:bookworm"),
        "a -dev package missing from the build stage": text.replace(" librdkafka-dev", "", 1),
        "an unused library installed": re.sub(r"(?m)^(\s+ca-certificates)", r"\1 libxml2", text, count=1),
    }
    for what, mutant in mutants.items():
        r = Result(quiet=True)
        try:
            check_dockerfile(mutant, facts, r)
        except (ValueError, IndexError) as e:
            r.failed += 1
            r.failures.append(str(e))
        res.check(mutant != text and r.failed > 0,
                  f"the checker rejects a Dockerfile with {what}" +
                  (f" ({r.failures[0]})" if r.failures else ""))

    print(f"{res.passed} passed, {res.failed} failed")
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
