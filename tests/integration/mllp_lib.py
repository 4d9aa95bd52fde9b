"""Helpers for the `vigil mllp` tests: test messages made unique per run,
the listener as a child process, an independent HL7 client (Debian's
python3-hl7: its MLLP stream writer sends, its parser reads vigil's ACKs),
the enrolment rows, and a PHI sweep.

Every run renames the facilities of tests/hl7/messages (GENHOSP ->
GENHOSP-<rid>, ...) and the patients' names and birth dates to markers no
other data can contain, so tests sharing one broker and one database never
see each other's rows, and a sweep for a name finds only what leaked.
"""
import asyncio
import atexit
import os
import re
import signal
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import vigil_harness as h  # noqa: E402

import hl7  # noqa: E402  (Debian python3-hl7)
from hl7.mllp import open_hl7_connection  # noqa: E402

MSG_DIR = os.path.join(h.SRC, "tests", "hl7", "messages")
FACILITIES = ("GENHOSP", "CERNHOSP", "SQLAB", "MTHOSP")
# Every name and birth date in tests/hl7/messages, with the marker it
# becomes in a run: the PHI sweep searches for these markers.
PHI = {
    "DOE^JANE^Q^^MRS": "PHIDOE{r}^PHIJANE{r}^Q^^MRS",
    "DOE^JANE": "PHIDOE{r}^PHIJANE{r}",
    "DOE JANE": "PHIDOE{r} PHIJANE{r}",
    "DOE^JOHN^A": "PHIDOE{r}^PHIJOHN{r}^A",
    "MUSTERMANN^ERIKA": "PHIMUST{r}^PHIERIKA{r}",
    "MUSTERMANN ERIKA": "PHIMUST{r} PHIERIKA{r}",
    "SMITH^ROBERT^J": "PHISMITH{r}^PHIROB{r}^J",
    "NIEMAND$KARL": "PHINIEM{r}$PHIKARL{r}",
    "ROE^RICHARD": "PHIROE{r}^PHIRICH{r}",
    "19560412": "19310517",
    "19640812": "19330303",
    "19480229": "19320229",
    "19700101": "19340909",
    "19811123": "19351111",
    "1200 MAIN ST": "PHISTREET{r}",
}


def markers(rid):
    """The name and birth-date markers of run RID (what must never leak)."""
    out = set()
    for v in PHI.values():
        for part in re.split(r"[\^$ ]", v.format(r=rid)):
            if part.startswith("PHI") or re.fullmatch(r"19\d{6}", part):
                out.add(part)
    return sorted(out)


def facility(name, rid):
    return "%s-%s" % (name, rid)


def message(name, rid, cr=True, subs=None):
    """Test message NAME for run RID (facilities and PHI renamed), with
    \\r between segments unless CR is false. SUBS: extra (old, new) pairs."""
    with open(os.path.join(MSG_DIR, name)) as f:
        text = f.read()
    for old, new in PHI.items():
        text = text.replace(old, new.format(r=rid))
    for fac in FACILITIES:
        text = re.sub(r"\b%s\b" % fac, facility(fac, rid), text)
    for old, new in subs or []:
        text = text.replace(old, new)
    text = text.rstrip("\n")
    return text.replace("\n", "\r") if cr else text


def facilities_file(rid, extra=""):
    """tests/hl7/facilities.yaml for run RID, written to a temporary file."""
    with open(os.path.join(h.SRC, "tests", "hl7", "facilities.yaml")) as f:
        text = f.read()
    for fac in FACILITIES:
        text = re.sub(r"\b%s\b" % fac, facility(fac, rid), text)
    fd, path = tempfile.mkstemp(prefix="facilities-%s-" % rid, suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(text + extra)
    return path


def enrol(rid, rows):
    """Creates the studies and sites of ROWS and enrols them. ROWS: tuples
    (facility base name, patient id, authority, study, site, subject)."""
    conn = h.pg()
    try:
        cur = conn.cursor()
        for fac, pid, auth, study, site, subject in rows:
            cur.execute("INSERT INTO studies (study_id, name) VALUES (%s, %s) "
                        "ON CONFLICT DO NOTHING", (study, study))
            cur.execute("INSERT INTO sites (study_id, site_id, name) VALUES (%s, %s, %s) "
                        "ON CONFLICT DO NOTHING", (study, site, site))
            cur.execute("INSERT INTO hl7_enrolments (facility, patient_id, assigning_authority, "
                        "study_id, site_id, subject_id) VALUES (%s, %s, %s, %s, %s, %s)",
                        (facility(fac, rid), pid, auth, study, site, subject))
    finally:
        conn.close()


def standard_enrolment(rid):
    """The patients of tests/hl7/messages, in study ST-<rid> (not ROE)."""
    study = "ST-%s" % rid
    rows = [("GENHOSP", "E1234567", "", study, "SITE-101", "S-101-0001"),
            ("CERNHOSP", "0043223", "", study, "SITE-201", "S-201-0007"),
            ("SQLAB", "SQ556677", "", study, "SITE-102", "S-102-0003"),
            ("MTHOSP", "M000777", "", study, "SITE-103", "S-103-0001")]
    enrol(rid, rows)
    return study


class Listener:
    """A `vigil mllp` process on free ports, with its own log file."""

    def __init__(self, rid, topic, facilities=None, extra=None, env=None):
        self.log_path = os.path.join(tempfile.gettempdir(), "mllp-%s-%d.log" % (rid, id(self)))
        self.log = open(self.log_path, "wb")
        args = [h.VIGIL, "mllp", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                "-b", h.bootstrap(), "--pg", h.env("VIGIL_PG_CONNINFO"), "-t", topic,
                "-s", "dlq_topic=%s.hl7dlq" % topic, "--grace", "20"]
        if facilities:
            args += ["-f", facilities]
        args += extra or []
        e = dict(os.environ)
        e.update(env or {})
        self.proc = h.track(subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                             env=e))
        self.port = self.http = None
        self.stopped = False
        atexit.register(self._tell_if_died)

    def _tell_if_died(self):
        """A listener that ended on its own (a crash, a sanitizer's abort)
        is the finding: its log's tail goes to the test's output, which CI
        shows, because the log file stays behind on the machine that ran it."""
        rc = self.proc.poll()
        if self.stopped or rc is None:
            return
        lines = self.text().splitlines()
        print("the listener ended by itself (exit status %d); the last lines of %s:" %
              (rc, self.log_path), flush=True)
        for line in lines[-80:]:
            print("  | " + line, flush=True)

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def ready(self, timeout=60):
        """Waits until /readyz answers 200 (enrolment loaded, producer up)."""
        m = h.wait_until(lambda: re.search(r"MLLP listening on \S+ \(port (\d+)\)", self.text()),
                         30, "MLLP port")
        if not m:
            return False
        self.port = int(m.group(1))
        m = h.wait_until(lambda: re.search(r"/readyz on port (\d+)", self.text()), 30,
                         "HTTP port")
        if not m:
            return False
        self.http = int(m.group(1))
        return bool(h.wait_until(lambda: self.get("/readyz")[0] == 200, timeout, "readyz"))

    def get(self, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.http, path),
                                        timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except Exception:
            return None, ""

    def metric(self, name, labels=None):
        st, body = self.get("/metrics")
        if st != 200:
            return None
        want = name + ("{" + labels + "}" if labels else "")
        for line in body.splitlines():
            if line.startswith(want + " "):
                return float(line.split()[-1])
        return 0.0

    def stop(self, sig=signal.SIGTERM, timeout=40):
        if self.proc.poll() is None:
            self.stopped = True
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout * h.SCALE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log.close()
        return rc


async def send_async(port, texts, timeout=15, conn=None):
    """Sends TEXTS (str) one at a time on one connection, waiting for each
    ACK; returns the ACKs parsed by python-hl7 (None where none came)."""
    reader, writer = conn or await open_hl7_connection("127.0.0.1", port)
    acks = []
    try:
        for t in texts:
            writer.writemessage(t)
            await writer.drain()
            try:
                acks.append(await asyncio.wait_for(reader.readmessage(), timeout * h.SCALE))
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                acks.append(None)
                break
    finally:
        if conn is None:
            writer.close()
    return acks


def send(port, texts, timeout=15):
    return asyncio.run(send_async(port, texts, timeout))


def ack_code(ack):
    """MSA-1 of a parsed ACK, or None."""
    if ack is None:
        return None
    return str(ack.segment("MSA")(1))


def ack_control_id(ack):
    return str(ack.segment("MSA")(2))


def ack_errors(ack):
    """[(location ERR-2, code ERR-3.1, text ERR-8)] of a parsed ACK."""
    out = []
    for seg in ack.segments("ERR") if any(str(s(0)) == "ERR" for s in ack) else []:
        out.append((str(seg(2)), str(seg(3)(1)(1)), str(seg(8))))
    return out


def observations(topic, idle=2.0):
    """Every observation on TOPIC, decoded with vigil's codec, with its key."""
    msgs = h.consume_all(topic, idle=idle)
    decoded = h.decode("observation", [m[3] for m in msgs])
    for d, m in zip(decoded, msgs):
        d["_key"] = m[2].decode()
        d["_partition"] = m[0]
        d["_offset"] = m[1]
    return decoded


def sweep(rid, sources):
    """Searches every (name, bytes-or-text) source for every marker of run
    RID. Returns [(marker, source name)] for each hit."""
    hits = []
    for name, data in sources:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        for mk in markers(rid):
            if mk.isdigit():
                # A birth date as HL7 sends it (YYYYMMDD, perhaps with a
                # time after it) starts a token; the same eight digits
                # inside a longer run (a hash in hex, a float's decimals,
                # an epoch in ms) are chance: with every table of a shared
                # database swept, they turned up (19351111, CI 2026-12-03).
                if re.search(r"(?<![0-9A-Za-z.])" + mk, text):
                    hits.append((mk, name))
            elif mk in text:
                hits.append((mk, name))
    return hits


def pg_text():
    """Every row of every table in vigil's schema, as text (the PHI sweep's
    view of PostgreSQL)."""
    conn = h.pg()
    try:
        cur = conn.cursor()
        cur.execute("SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")
        out = []
        for (t,) in cur.fetchall():
            cur.execute('SELECT row_to_json(x)::text FROM "%s" x' % t.replace('"', '""'))
            out.extend(r[0] for r in cur.fetchall())
        return "\n".join(out)
    finally:
        conn.close()
