#!/usr/bin/python3
"""`vigil mllp` against the real Kafka broker and PostgreSQL (issue 16).

    test_mllp.py accept       vendor-shaped messages sent and ACKs checked by
                              python3-hl7; what reaches Kafka, the dead-letter
                              topic and (through a real worker) PostgreSQL;
                              resends, hot reloads, enrolment by NOTIFY,
                              `vigil produce --format hl7`, and a PHI sweep of
                              Kafka, PostgreSQL, the DLQ and the logs
    test_mllp.py connections  200 concurrent connections, order kept per
                              connection, the connection limit, idle timeout
    test_mllp.py tls          MLLP over TLS with client certificates: a client
                              with a certificate of the CA gets AA; one without
                              a certificate, one with another CA's and one
                              speaking plain MLLP get no ACK
"""
import asyncio
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import mllp_lib as ml  # noqa: E402
from mllp_lib import h  # noqa: E402

RULES = os.path.join(h.SRC, "tests", "integration", "rules", "pipeline.yaml")


def check_ack(t, ack, code, control_id, what):
    got = ml.ack_code(ack)
    t.check(got == code, "%s: MSA-1 %s (want %s)" % (what, got, code))
    if ack is not None:
        t.check(ml.ack_control_id(ack) == control_id,
                "%s: MSA-2 %s echoes MSH-10 %s" % (what, ml.ack_control_id(ack), control_id))


def accept():
    t = h.Checks()
    rid = h.run_id()
    topic = "hl7.%s.obs" % rid
    h.migrate()
    # The worker's own topics beside the listener's dead letters.
    h.create_topics([topic, topic + ".alerts"], 4)
    h.create_topics([topic + ".hl7dlq", topic + ".dlq"], 1)
    study = ml.standard_enrolment(rid)
    fac_path = ml.facilities_file(rid)
    lst = ml.Listener(rid, topic, fac_path)
    t.check(lst.ready(), "listener ready (enrolment loaded, producer up)")

    files = [("epic_cbc.hl7", "AA", "MSG00001", 4), ("cerner_bmp.hl7", "AA", "Q7781230", 3),
             ("sunquest_lft.hl7", "AA", "SQ000123", 4), ("custom_delims.hl7", "AA", "MT-0009", 2),
             ("repeats.hl7", "AA", "VS0001", 4), ("not_enrolled.hl7", "AA", "MSG00777", 0),
             ("adt_a01.hl7", "AR", "ADT00042", 0), ("bad_value.hl7", "AE", "MSG00950", 1)]
    texts = [ml.message(f, rid) for f, _, _, _ in files]
    acks = ml.send(lst.port, texts)
    for (f, code, cid, _), ack in zip(files, acks):
        check_ack(t, ack, code, cid, f)
    by = dict(zip([f for f, _, _, _ in files], acks))
    epic = by["epic_cbc.hl7"]
    if epic is not None:
        msh = epic.segment("MSH")
        t.check(str(msh(3)) == "VIGIL" and str(msh(5)) == "Beaker" and
                str(msh(6)).startswith(ml.facility("GENHOSP", rid)),
                "ACK MSH swaps sender and receiver (%s)" % str(msh).replace("\r", " "))
        t.check(str(msh(9)) == "ACK^R01^ACK", "ACK MSH-9 ACK^R01^ACK (%s)" % msh(9))
    adt, bad = by["adt_a01.hl7"], by["bad_value.hl7"]
    if bad is not None:
        err = bad.segment("ERR")
        t.check(str(err(2)).startswith("OBX^2^5") and str(err(3)(1)(1)) == "102",
                "AE's ERR points at OBX-2 field 5 with code 102 (%s)" % str(err))
        t.check("not a number" in str(err(8)), "AE's ERR-8 says why (%s)" % err(8))
    if adt is not None:
        t.check(str(adt.segment("ERR")(3)(1)(1)) == "200", "AR's ERR-3 is 200")
    custom = by["custom_delims.hl7"]
    if custom is not None:
        t.check(str(custom).startswith("MSH#$%\\*#"), "ACK uses the message's own delimiters")

    want = sum(n for _, _, _, n in files)
    obs = h.wait_until(lambda: (lambda o: o if len(o) >= want else None)(ml.observations(topic)),
                       30, "%d observations on Kafka" % want)
    obs = obs or ml.observations(topic)
    t.check(len(obs) == want, "%d observations on Kafka (want %d)" % (len(obs), want))
    t.check(all(o.get("study_id") == study and o["_key"] == "%s/%s" % (study, o["subject_id"])
                for o in obs), "every observation keyed study/subject, in the study")
    k = [o for o in obs if o["subject_id"] == "S-201-0007" and o["loinc"] == "2823-3"]
    t.check(len(k) == 1 and k[0]["value"] == 6.8 and k[0]["effective_time"] == 1736238600000,
            "Cerner potassium 6.8 at 09:30 Europe/Berlin = 08:30Z (%s)" % k[:1])
    alt = [o for o in obs if o["loinc"] == "1742-6"]
    t.check(len(alt) == 1 and alt[0]["status"] == "corrected", "OBX-11 C is corrected")
    plt = [o for o in obs if o["loinc"] == "777-3"]
    t.check(len(plt) == 1 and plt[0]["unit"] == "10*3/uL", "K/uL forwarded as 10*3/uL")
    t.check(not any(o["loinc"] == "6768-6" for o in obs), "the preliminary ALP is not forwarded")
    t.check(not any(o["subject_id"].startswith("E765") for o in obs),
            "nothing of the non-enrolled patient")
    ids = {o["observation_id"] for o in obs}
    t.check(len(ids) == len(obs), "observation ids distinct")

    # Dead letters: the AR and the AE, redacted, with their reasons.
    dlq = h.consume_all(topic + ".hl7dlq", idle=1.0)
    classes = sorted(dict(m[4]).get("vigil.error.class", b"").decode() for m in dlq)
    t.check(classes == ["bad_value", "unsupported_message_type"],
            "dead letters for the AE and the AR, with their class (%s)" % classes)
    t.check(all(m[3].startswith(b"MSH|") and b"\rPID|1\r" in m[3] for m in dlq),
            "dead letters carry the message with PID reduced to PID-1")

    st = "facility=\"%s\"" % ml.facility("GENHOSP", rid)
    t.check(lst.metric("vigil_mllp_not_enrolled_total", st) == 1,
            "the non-enrolled patient counted (%s)" % lst.metric("vigil_mllp_not_enrolled_total", st))
    t.check(lst.metric("vigil_mllp_acks_total", st + ",code=\"AE\"") == 1, "AE counted per facility")

    # A resend changes nothing downstream (same ids).
    again = ml.send(lst.port, [texts[0], texts[1]])
    t.check([ml.ack_code(a) for a in again] == ["AA", "AA"], "resends answered AA")

    # Hot reload: map the Cerner glucose; a broken file is refused.
    with open(fac_path, "a") as f:
        f.write("")
    extra = "      - {code: \"GLU\", system: \"99CRN\", loinc: \"2345-7\"}\n"
    text = open(fac_path).read().replace(
        "      - {code: \"CREAT\"", extra + "      - {code: \"CREAT\"")
    with open(fac_path + ".new", "w") as f:
        f.write(text)
    os.rename(fac_path + ".new", fac_path)
    t.check(h.wait_until(lambda: lst.metric("vigil_mllp_facilities_reloads_total",
                                            "result=\"ok\"") >= 1, 20, "reload"),
            "facility mapping reloaded when the file changed")
    a = ml.send(lst.port, [ml.message("cerner_bmp.hl7", rid, subs=[("Q7781230", "Q7781231")])])
    check_ack(t, a[0], "AA", "Q7781231", "Cerner after the reload")
    with open(fac_path + ".new", "w") as f:
        f.write("facilities: {X: {time_zone: Not/AZone}}\n")
    os.rename(fac_path + ".new", fac_path)
    t.check(h.wait_until(lambda: lst.metric("vigil_mllp_facilities_reloads_total",
                                            "result=\"refused\"") >= 1, 20, "refused reload"),
            "an invalid facility mapping is refused")
    a = ml.send(lst.port, [ml.message("cerner_bmp.hl7", rid, subs=[("Q7781230", "Q7781232")])])
    check_ack(t, a[0], "AA", "Q7781232", "Cerner after the refused reload (old mapping kept)")

    # Enrolment by NOTIFY: ROE joins the study; the same message now flows.
    before = lst.metric("vigil_mllp_enrolments")
    ml.enrol(rid, [("GENHOSP", "E7654321", "", study, "SITE-101", "S-101-0099")])
    t.check(h.wait_until(lambda: lst.metric("vigil_mllp_enrolments") == before + 1, 20,
                         "NOTIFY reload"), "enrolment reloaded on NOTIFY")
    a = ml.send(lst.port, [ml.message("not_enrolled.hl7", rid)])
    check_ack(t, a[0], "AA", "MSG00777", "the newly enrolled patient")
    t.check(lst.metric("vigil_mllp_not_enrolled_total", st) == 1,
            "the newly enrolled patient is forwarded, not dropped")

    # vigil produce --format hl7: the batch file, two observations.
    batch = os.path.join(h.SRC, "tests", "hl7", "messages", "batch.hl7")
    bpath = fac_path + ".batch.hl7"
    with open(bpath, "w") as f:
        f.write(ml.message("batch.hl7", rid, cr=False) + "\n")
    restore = ml.facilities_file(rid)
    p = subprocess.run([h.VIGIL, "produce", "--format", "hl7", "-b", h.bootstrap(), "-t", topic,
                        "--pg", h.env("VIGIL_PG_CONNINFO"), "--facilities", restore, bpath],
                       capture_output=True, text=True, timeout=120 * h.SCALE)
    t.check(p.returncode == 0 and "produced 2, failed 0, invalid 0" in p.stderr,
            "vigil produce --format hl7 batch.hl7 (rc %d: %s)" % (p.returncode, p.stderr[-300:]))
    os.unlink(batch and bpath)

    # A real worker stores what arrived: every distinct observation once.
    want_total = want + 1 + 1 + 2  # glucose after reload, ROE, the batch
    w = h.Worker(rid, RULES, topic, "g-" + rid, h.worker_args())
    total = h.wait_until(lambda: h.stored(study) >= want_total and h.stored(study), 90,
                         "worker stored %d" % want_total)
    rows = h.query("SELECT count(*), count(DISTINCT observation_id) FROM observations "
                   "WHERE study_id = %s", study)[0]
    t.check(total and rows == (want_total, want_total),
            "PostgreSQL holds every observation once (%s of %d), resends included" %
            (rows, want_total))
    r = h.query("SELECT value, unit_norm, value_norm, effective_at AT TIME ZONE 'UTC' FROM "
                "observations WHERE study_id = %s AND loinc = '2823-3' AND subject_id = "
                "'S-201-0007'", study)
    t.check(r and r[0][0] == 6.8 and str(r[0][3]) == "2025-01-07 08:30:00",
            "the stored Cerner potassium: %s" % r)
    alerts = h.query("SELECT count(*) FROM alerts WHERE study_id = %s", study)[0][0]
    t.check(alerts >= 1, "the critical potassium raised an alert (%d)" % alerts)

    # PHI sweep: Kafka (values and keys), the DLQ (values and headers),
    # PostgreSQL (every table), and both logs.
    raw = h.consume_all(topic, idle=1.0)
    dlq = h.consume_all(topic + ".hl7dlq", idle=1.0)
    sources = [("kafka %s" % topic, b"".join((m[2] or b"") + (m[3] or b"") for m in raw)),
               ("dlq", b"".join(m[3] + b"".join(v or b"" for _, v in m[4]) for m in dlq)),
               ("postgresql", ml.pg_text()), ("mllp log", lst.text()), ("worker log", w.text())]
    hits = ml.sweep(rid, sources)
    t.check(len(ml.markers(rid)) >= 15 and not hits,
            "no name or birth date of %d sent anywhere (%s)" % (len(ml.markers(rid)), hits[:5]))
    t.check(w.stop() == 0, "worker exits 0")
    t.check(lst.stop() == 0, "listener exits 0 on SIGTERM")
    h.delete_topics([topic, topic + ".alerts", topic + ".hl7dlq", topic + ".dlq"])
    os.unlink(fac_path)
    os.unlink(restore)
    t.done()


def connections():
    t = h.Checks()
    rid = h.run_id()
    topic = "hl7c.%s.obs" % rid
    n_conn, per = 200, 5
    h.migrate()
    h.create_topics([topic], 4)
    h.create_topics([topic + ".hl7dlq"], 1)
    study = "SC-%s" % rid
    ml.enrol(rid, [("GENHOSP", "P%04d" % i, "", study, "SITE-1", "S-%04d" % i)
                   for i in range(n_conn)])
    fac_path = ml.facilities_file(rid)
    # The idle timeout must outlast opening all 200 connections and the
    # 201st (slow under the sanitizers: SCALE), or the first ones are
    # closed as idle before the messages go and a slot is free again.
    idle_s = int(3 * h.SCALE)
    lst = ml.Listener(rid, topic, fac_path,
                      extra=["--max-connections", str(n_conn), "--idle-timeout", str(idle_s)])
    t.check(lst.ready(), "listener ready")
    base = ml.message("repeats.hl7", rid)
    base = "\r".join(s for s in base.split("\r") if not s.startswith("OBX|")
                     or s.startswith("OBX|1|"))

    def msg(i, j):
        return (base.replace("VS0001", "C%d-%d" % (i, j))
                .replace("E1234567", "P%04d" % i)
                .replace("VS-77^VITALS", "ORD-%d-%d^V" % (i, j))
                .replace("|5.9|", "|%d.%d|" % (3 + j, i % 10)))

    async def one(i, opened, go):
        conn = await ml.open_hl7_connection("127.0.0.1", lst.port)
        opened.append(conn)
        await go.wait()
        return await ml.send_async(lst.port, [msg(i, j) for j in range(per)], conn=conn)

    async def run():
        opened, go = [], asyncio.Event()
        tasks = [asyncio.ensure_future(one(i, opened, go)) for i in range(n_conn)]
        while len(opened) < n_conn:
            await asyncio.sleep(0.01)
        # All 200 are open: the 201st is closed at once.
        ok = await asyncio.get_event_loop().run_in_executor(None, lambda: h.wait_until(
            lambda: lst.metric("vigil_mllp_connections") == n_conn, 30, "200 open"))
        r, w = await ml.open_hl7_connection("127.0.0.1", lst.port)
        try:
            extra = await asyncio.wait_for(r.read(1), 10 * h.SCALE)
        except (ConnectionError, asyncio.TimeoutError):
            extra = b"?"
        w.close()
        go.set()
        results = await asyncio.gather(*tasks)
        for _, writer in opened:
            writer.close()
        return ok, extra, results

    t0 = time.monotonic()
    ok, extra, results = asyncio.run(run())
    took = time.monotonic() - t0
    t.check(ok, "200 connections open at once (gauge)")
    t.check(extra == b"", "the 201st connection is closed at once (read %r)" % extra)
    t.check(lst.metric("vigil_mllp_connections_refused_total") == 1, "refused connection counted")
    codes = [ml.ack_code(a) for r in results for a in r]
    t.check(codes.count("AA") == n_conn * per,
            "%d messages on %d connections all AA (%d AA) in %.1f s" %
            (n_conn * per, n_conn, codes.count("AA"), took))
    obs = h.wait_until(lambda: (lambda o: o if len(o) >= n_conn * per else None)(
        ml.observations(topic)), 60, "observations")
    obs = obs or []
    t.check(len(obs) == n_conn * per, "%d observations on Kafka" % len(obs))
    # Each connection is one patient, so one partition: its observations
    # must be in the order the connection sent them (values 3.x, 4.x, ...).
    out_of_order = 0
    by_subject = {}
    for o in sorted(obs, key=lambda o: (o["_partition"], o["_offset"])):
        by_subject.setdefault(o["subject_id"], []).append(o["value"])
    for s, vals in by_subject.items():
        if vals != sorted(vals):
            out_of_order += 1
    t.check(len(by_subject) == n_conn and out_of_order == 0,
            "order kept per connection (%d subjects, %d out of order)" %
            (len(by_subject), out_of_order))
    # Idle timeout: a silent connection is closed by the listener.

    async def idle():
        r, w = await ml.open_hl7_connection("127.0.0.1", lst.port)
        t0 = time.monotonic()
        try:
            got = await asyncio.wait_for(r.read(1), 20 * h.SCALE)
        except asyncio.TimeoutError:
            got = b"?"
        w.close()
        return got, time.monotonic() - t0
    got, waited = asyncio.run(idle())
    t.check(got == b"" and waited >= idle_s - 0.5, "an idle connection is closed after idle_timeout "
            "(%.1f s)" % waited)
    t.check(h.wait_until(lambda: lst.metric("vigil_mllp_connections") == 0, 20, "all closed"),
            "every connection closed and accounted")
    t.check(lst.stop() == 0, "listener exits 0")
    h.delete_topics([topic, topic + ".hl7dlq"])
    os.unlink(fac_path)
    t.done()


def client_cert(folder, ca, name):
    """A client certificate (extendedKeyUsage clientAuth) signed by CA."""
    import tls_lib
    ext = os.path.join(folder, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    tls_lib._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name,
                     cwd=folder)
    tls_lib._openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey",
                     ca + ".key", "-CAcreateserial", "-out", name + ".pem", "-days", "2",
                     "-extfile", ext, cwd=folder)
    return os.path.join(folder, name + ".pem"), os.path.join(folder, name + ".key")


def tls():
    import socket
    import ssl
    import tempfile
    sys.path.insert(0, os.path.join(h.SRC, "tests", "security"))
    import tls_lib
    t = h.Checks()
    rid = h.run_id()
    topic = "hl7t.%s.obs" % rid
    h.migrate()
    h.create_topics([topic], 2)
    h.create_topics([topic + ".hl7dlq"], 1)
    ml.standard_enrolment(rid)
    fac_path = ml.facilities_file(rid)
    d = tempfile.mkdtemp(prefix="mllp-tls-")
    ca = tls_lib.make_ca(d, "ca")
    tls_lib.make_ca(d, "other")
    cert, key = tls_lib.make_cert(d, "ca", "server", "localhost", ["DNS:localhost", "IP:127.0.0.1"])
    good = client_cert(d, "ca", "engine")
    wrong = client_cert(d, "other", "stranger")
    lst = ml.Listener(rid, topic, fac_path, extra=["-s", "tls_cert=" + cert, "-s", "tls_key=" + key,
                                                   "-s", "tls_client_ca=" + ca])
    t.check(lst.ready(), "TLS listener ready")
    t.check("with TLS" in lst.text(), "the listener says it speaks TLS")
    frame = ("\x0b" + ml.message("epic_cbc.hl7", rid) + "\x1c\r").encode()

    def exchange(certpair, tls_on=True):
        """Sends the framed message; returns the ACK bytes, b"" if the
        listener closed, or the exception's name."""
        raw = socket.create_connection(("127.0.0.1", lst.port), timeout=15 * h.SCALE)
        try:
            if tls_on:
                ctx = ssl.create_default_context(cafile=ca)
                if certpair:
                    ctx.load_cert_chain(*certpair)
                conn = ctx.wrap_socket(raw, server_hostname="localhost")
            else:
                conn = raw
            conn.sendall(frame)
            got = b""
            while not got.endswith(b"\x1c\r"):
                chunk = conn.recv(4096)
                if not chunk:
                    break
                got += chunk
            return got
        except (ssl.SSLError, OSError) as e:
            return type(e).__name__
        finally:
            raw.close()

    ack = exchange(good)
    t.check(isinstance(ack, bytes) and b"\rMSA|AA|MSG00001" in ack,
            "a client with the CA's certificate gets AA over TLS (%r)" % (ack[:80],))
    for what, got in (("no client certificate", exchange(None)),
                      ("another CA's certificate", exchange(wrong)),
                      ("plain MLLP on the TLS port", exchange(None, tls_on=False))):
        t.check(not (isinstance(got, bytes) and b"MSA|" in got),
                "%s: no ACK (%r)" % (what, got[:60] if isinstance(got, bytes) else got))
    t.check(h.wait_until(lambda: lst.text().count("TLS handshake failed") >= 3, 20, "3 refusals"),
            "the three refused handshakes are logged")
    t.check(lst.proc.poll() is None and lst.stop() == 0, "listener alive, exits 0")
    h.delete_topics([topic, topic + ".hl7dlq"])
    os.unlink(fac_path)
    t.done()


if __name__ == "__main__":
    {"accept": accept, "connections": connections, "tls": tls}[sys.argv[1]]()
