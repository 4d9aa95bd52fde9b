"""Helpers for vigil's TLS tests: a throwaway CA and certificates made with
Debian's openssl, free loopback ports, and processes that are always stopped.

Each test makes its own CA (and a second, unrelated CA for the "wrong
certificate" checks) in its own temporary folder, and starts its own server
on 127.0.0.1; nothing here touches the services of scripts/services.
"""
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from vigil_harness import SRC, VIGIL, Checks, wait_until  # noqa: E402,F401

OPENSSL = "/usr/bin/openssl"


def _openssl(*args, cwd):
    p = subprocess.run([OPENSSL] + list(args), cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], p.stderr.strip()))


def make_ca(folder, name):
    """Writes NAME.pem and NAME.key (a self-signed CA, P-256) into FOLDER;
    returns the certificate's path."""
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", name + ".key", "-out", name + ".pem", "-days", "2",
             "-subj", "/CN=vigil test CA %s" % name,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    return os.path.join(folder, name + ".pem")


def make_cert(folder, ca, name, cn, sans):
    """Writes NAME.pem and NAME.key, a server certificate for CN with the
    subjectAltNames SANS (e.g. ["DNS:localhost", "IP:127.0.0.1"]) signed by
    the CA made by make_ca(folder, CA). Returns (cert path, key path)."""
    ext = os.path.join(folder, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=%s\n" % ",".join(sans))
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn, cwd=folder)
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
             "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", ext, cwd=folder)
    return os.path.join(folder, name + ".pem"), os.path.join(folder, name + ".key")


def make_pkcs12(folder, ca, name, password):
    """Bundles NAME.pem, NAME.key and the CA into NAME.p12; returns its path."""
    _openssl("pkcs12", "-export", "-in", name + ".pem", "-inkey", name + ".key",
             "-certfile", ca + ".pem", "-name", name, "-out", name + ".p12",
             "-passout", "pass:" + password, cwd=folder)
    return os.path.join(folder, name + ".p12")


def free_port():
    """A loopback port the kernel just gave out (a tiny race with other
    users of the machine, acceptable for a test)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def die_with_parent():
    """preexec_fn for Popen: the child gets SIGTERM when this test process
    dies, even by SIGKILL (a ctest timeout), so no server outlives it."""
    import ctypes
    import signal
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop(proc, wait=20):
    """TERM, bounded wait, then KILL; safe on None and on a dead process."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError as e:
        return str(e)


def elapsed(t0):
    return "%.1fs" % (time.monotonic() - t0)


# ---- A Kafka broker with a SASL_SSL listener ------------------------------

# The broker's log: warnings, plus authentication and connection events so a
# failure shows why a client was refused.
KAFKA_LOG4J = """log4j.rootLogger=WARN, out
log4j.appender.out=org.apache.log4j.ConsoleAppender
log4j.appender.out.layout=org.apache.log4j.PatternLayout
log4j.appender.out.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.org.apache.kafka.common.security.authenticator=INFO
log4j.logger.org.apache.kafka.common.network.Selector=INFO
"""


class SaslSslBroker:
    """A single-node KRaft broker+controller on 127.0.0.1 whose only client
    listener is SASL_SSL (certificate from a CA made here; the controller and
    inter-broker listeners are PLAINTEXT on 127.0.0.1), run from the jars in
    LIBS with all its files in TMP.

    Making it writes ca.pem (the right CA) and other.pem (a CA that did not
    sign the broker) and picks free ports; start() formats the storage (plus
    FORMAT_ARGS, e.g. --add-scram) and starts the broker with SASL_PROPS
    (the mechanism lines of server.properties). stop() is safe to call on
    every exit path, also before or after a failed start()."""

    def __init__(self, libs, tmp, sasl_props, format_args=()):
        self.libs, self.tmp = libs, tmp
        self.sasl_props, self.format_args = sasl_props, list(format_args)
        self.log = os.path.join(tmp, "kafka.log")
        self.proc = None
        with open(os.path.join(tmp, "log4j.properties"), "w") as f:
            f.write(KAFKA_LOG4J)
        self.ca = make_ca(tmp, "ca")
        self.other = make_ca(tmp, "other")
        make_cert(tmp, "ca", "broker", "localhost", ["DNS:localhost", "IP:127.0.0.1"])
        self.ks_pass = os.urandom(10).hex()
        self.keystore = make_pkcs12(tmp, "ca", "broker", self.ks_pass)
        self.port, self.iport, self.cport = free_port(), free_port(), free_port()

    def java(self, *args, heap="-Xmx256m"):
        return ["java", heap, "-XX:+UseSerialGC", "-Djava.awt.headless=true",
                "-Dlog4j.configuration=file:%s/log4j.properties" % self.tmp,
                "-cp", self.libs + "/*"] + list(args)

    def _write_props(self):
        props = os.path.join(self.tmp, "server.properties")
        port, iport, cport = self.port, self.iport, self.cport
        with open(props, "w") as f:
            f.write(f"""process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{cport}
controller.listener.names=CONTROLLER
listeners=SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{iport},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{iport}
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL
{self.sasl_props.strip()}
ssl.keystore.type=PKCS12
ssl.keystore.location={self.keystore}
ssl.keystore.password={self.ks_pass}
ssl.key.password={self.ks_pass}
log.dirs={self.tmp}/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
""")
        return props

    def start(self, ck, topic, conf, t0):
        """Formats, starts the broker and creates TOPIC (one partition) as
        the client configuration CONF (a confluent_kafka dict), which proves
        the SASL_SSL listener works. Returns True once TOPIC has a leader;
        False after recording a failed check (with the broker log's tail)."""
        import base64
        from confluent_kafka.admin import AdminClient, NewTopic
        props = self._write_props()
        cid = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        fmt = subprocess.run(self.java("kafka.tools.StorageTool", "format",
                                       "--cluster-id=" + cid, "-c", props, *self.format_args),
                             capture_output=True, text=True, timeout=120)
        if not ck.check(fmt.returncode == 0, "StorageTool format: %s"
                        % (fmt.stdout + fmt.stderr)[-2000:]):
            return False
        with open(self.log, "w") as lf:
            self.proc = subprocess.Popen(
                self.java("-Dkafka.logs.dir=%s/logs" % self.tmp, "kafka.Kafka", props,
                          heap="-Xmx512m"),
                stdout=lf, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=die_with_parent)
        admin = AdminClient(conf)

        def ready():
            if self.proc.poll() is not None:
                return "exited"
            try:
                fs = admin.create_topics([NewTopic(topic, 1, 1)], operation_timeout=10)
                fs[topic].result(timeout=10)
                return "ok"
            except Exception as e:  # not up yet, or the topic already exists
                if "TOPIC_ALREADY_EXISTS" in str(e):
                    return "ok"
                return None
        st = wait_until(ready, 60, "the SASL_SSL broker to create %s" % topic, interval=0.5)
        if not ck.check(st == "ok", "broker up over SASL_SSL (%s)" % st):
            print(tail(self.log))
            return False
        wait_until(lambda: admin.list_topics(topic, timeout=10).topics[topic].partitions[0].leader
                   >= 0, 30, "a leader for %s" % topic)
        print("broker up with SASL_SSL at 127.0.0.1:%d after %s" % (self.port, elapsed(t0)),
              flush=True)
        return True

    def stop(self):
        stop(self.proc)


def vigil_produce(vigil, n, port, topic, xprops, log, env=None):
    """Runs `vigil produce --generate N` to 127.0.0.1:PORT/TOPIC with the
    librdkafka properties XPROPS ({name: value}, as -X) and ENV (added to
    this process's environment), appending its output to LOG. Returns
    (exit code, stdout+stderr, the last "produced ..." line or "")."""
    args = [vigil, "produce", "--generate", str(n), "-b", "127.0.0.1:%d" % port, "-t", topic]
    # A refused connection is retried until the message times out; a short
    # timeout keeps the failing cases fast.
    for k, v in dict({"message.timeout.ms": "8000"}, **xprops).items():
        args += ["-X", "%s=%s" % (k, v)]
    p = subprocess.run(args, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, **(env or {})))
    out = p.stdout + p.stderr
    with open(log, "a") as f:
        f.write("$ vigil produce ... (exit %d)\n%s\n" % (p.returncode, out))
    last = [line for line in p.stderr.splitlines() if line.startswith("produced ")]
    return p.returncode, out, (last[-1] if last else "")


def kafka_read_back(conf, topic, n, group):
    """Reads partition 0 of TOPIC from the start as CONF; returns the
    messages once N arrived and a further second brought none (so an extra
    record is counted too), or what came within 30 s."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer(dict(conf, **{"group.id": group, "enable.auto.commit": False,
                               "auto.offset.reset": "earliest"}))
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        got = []
        end = time.monotonic() + 30
        while time.monotonic() < end:
            m = c.poll(1.0 if len(got) >= n else 0.5)
            if m is None:
                if len(got) >= n:
                    break
                continue
            if not m.error():
                got.append(m)
        return got
    finally:
        c.close()


def check_refused(ck, rc, out, last, what, *needles):
    """Records that a vigil produce run was refused: non-zero exit,
    "produced 0,", and its output names one of NEEDLES (lower case)."""
    ck.check(rc != 0, "produce with %s exited 0" % what)
    ck.check(last.startswith("produced 0,"), "%s summary: %r" % (what, last))
    low = out.lower()
    ck.check(any(s in low for s in needles),
             "%s error names %s: %s" % (what, " or ".join(needles), out[-1500:]))


def check_produced(ck, rc, out, last, n, what):
    """Records that a vigil produce run succeeded: exit 0 and
    "produced N, failed 0"."""
    ck.check(rc == 0, "vigil produce %s exited %d: %s" % (what, rc, out[-1500:]))
    ck.check(last.startswith("produced %d, failed 0" % n), "%s summary line: %r" % (what, last))


def check_topic_holds(ck, conf, topic, n, group, what):
    """Records that TOPIC holds exactly N records, read as CONF, each keyed
    study/subject."""
    got = kafka_read_back(conf, topic, n, group)
    ck.check(len(got) == n, "%s: read back %d of %d records" % (what, len(got), n))
    ck.check(all(m.key() and b"/" in m.key() for m in got), "records keyed study/subject")


def run_broker_test(name, libs, topic, sasl_props, conf_for, body, format_args=()):
    """The frame of a test against its own SaslSslBroker: a temporary
    folder, the broker (SASL_PROPS, FORMAT_ARGS) started and TOPIC created
    as conf_for(broker), then BODY(ck, broker, vigil_log). The broker is
    stopped and the folder removed on every exit path; on a failure the
    tails of the broker log and of vigil's output are printed. Returns the
    Checks."""
    import shutil
    import tempfile
    ck = Checks()
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="vigil-%s." % name)
    vlog = os.path.join(tmp, "vigil.log")
    broker = None
    finished = False
    try:
        broker = SaslSslBroker(libs, tmp, sasl_props, format_args)
        if broker.start(ck, topic, conf_for(broker), t0):
            body(ck, broker, vlog)
            finished = True
    finally:
        if broker is not None:
            broker.stop()
        if not finished or ck.failed:
            print("--- broker log ---\n" + tail(os.path.join(tmp, "kafka.log"), 40))
            print("--- vigil output ---\n" + tail(vlog, 40))
        print("%s test took %s" % (name, elapsed(t0)), flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return ck
