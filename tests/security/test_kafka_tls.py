#!/usr/bin/python3
"""Kafka over TLS with SASL (issue 7, item 5).

Starts its own single-node KRaft broker on loopback with a SASL_SSL listener
(server certificate from a CA made here, PKCS12 keystore) and one SASL user,
then runs the real `vigil produce --generate 10`:

  1. right CA and password  -> exit 0, "produced 10", and the 10 records are
     read back over SASL_SSL with confluent_kafka;
  2. a CA that did not sign the broker's certificate -> non-zero exit,
     "produced 0", and the error names certificate verification;
  3. the right CA but a wrong password -> non-zero exit, "produced 0", and
     the error names authentication.

The password never appears in vigil's output. One broker serves all checks.

The mechanism is PLAIN (inside TLS), not SCRAM: Debian's librdkafka 2.0.2
fails SCRAM-SHA-256 and -512 against Kafka 4.x brokers with "invalid
credentials" even with the right password (a client bug fixed in librdkafka
2.6.1; the same user works from Java clients), so a SCRAM check here could
only ever fail.
The controller listener and the inter-broker listener are PLAINTEXT on
127.0.0.1 (clients are only ever given the SASL_SSL port).
"""
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tls_lib  # noqa: E402
from tls_lib import Checks, wait_until  # noqa: E402

from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

VIGIL = os.environ.get("VIGIL_BINARY", "vigil")
SRC = os.environ.get("VIGIL_SOURCE_DIR", ".")
LIBS = os.path.join(SRC, ".deps", "kafka-libs")
TOPIC = "vigil.tls.observations"
N = 10


# The broker's log: warnings, plus authentication and connection events so a
# failure here shows why a client was refused.
LOG4J = """log4j.rootLogger=WARN, out
log4j.appender.out=org.apache.log4j.ConsoleAppender
log4j.appender.out.layout=org.apache.log4j.PatternLayout
log4j.appender.out.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.org.apache.kafka.common.security.authenticator=INFO
log4j.logger.org.apache.kafka.common.network.Selector=INFO
"""


def java(tmp, *args, heap="-Xmx256m"):
    return ["java", heap, "-XX:+UseSerialGC", "-Djava.awt.headless=true",
            "-Dlog4j.configuration=file:%s/log4j.properties" % tmp,
            "-cp", LIBS + "/*"] + list(args)


def client_conf(port, ca, password):
    return {"bootstrap.servers": "127.0.0.1:%d" % port, "security.protocol": "SASL_SSL",
            "sasl.mechanism": "PLAIN", "sasl.username": "vigil",
            "sasl.password": password, "ssl.ca.location": ca}


def vigil_produce(port, ca, password, log):
    args = [VIGIL, "produce", "--generate", str(N), "-b", "127.0.0.1:%d" % port, "-t", TOPIC,
            "-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanism=PLAIN",
            "-X", "sasl.username=vigil", "-X", "sasl.password=" + password,
            "-X", "ssl.ca.location=" + ca,
            # A refused connection is retried until the message times out;
            # a short timeout keeps the failing cases fast.
            "-X", "message.timeout.ms=8000"]
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    out = p.stdout + p.stderr
    with open(log, "a") as f:
        f.write("$ vigil produce ... (exit %d)\n%s\n" % (p.returncode, out))
    last = [l for l in p.stderr.splitlines() if l.startswith("produced ")]
    return p.returncode, out, (last[-1] if last else "")


def read_back(port, ca, password):
    c = Consumer(dict(client_conf(port, ca, password), **{
        "group.id": "tls-reader", "enable.auto.commit": False,
        "auto.offset.reset": "earliest"}))
    try:
        c.assign([TopicPartition(TOPIC, 0, 0)])
        got = []
        end = time.monotonic() + 30
        # Until N arrived, then one more quiet second so an extra record
        # would be counted too.
        while time.monotonic() < end:
            m = c.poll(1.0 if len(got) >= N else 0.5)
            if m is None:
                if len(got) >= N:
                    break
                continue
            if not m.error():
                got.append(m)
        return got
    finally:
        c.close()


def main():
    ck = Checks()
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="vigil-kafka-tls.")
    broker = None
    password = base64.b32encode(os.urandom(15)).decode().lower()
    log = os.path.join(tmp, "kafka.log")
    vlog = os.path.join(tmp, "vigil.log")
    ok = False
    try:
        with open(os.path.join(tmp, "log4j.properties"), "w") as f:
            f.write(LOG4J)
        tls_lib.make_ca(tmp, "ca")
        tls_lib.make_ca(tmp, "other")
        tls_lib.make_cert(tmp, "ca", "broker", "localhost", ["DNS:localhost", "IP:127.0.0.1"])
        ks_pass = base64.b32encode(os.urandom(10)).decode().lower()
        keystore = tls_lib.make_pkcs12(tmp, "ca", "broker", ks_pass)
        ca = os.path.join(tmp, "ca.pem")
        other = os.path.join(tmp, "other.pem")

        port, iport, cport = tls_lib.free_port(), tls_lib.free_port(), tls_lib.free_port()
        props = os.path.join(tmp, "server.properties")
        with open(props, "w") as f:
            f.write(f"""process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{cport}
controller.listener.names=CONTROLLER
listeners=SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{iport},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{iport}
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_vigil="{password}";
ssl.keystore.type=PKCS12
ssl.keystore.location={keystore}
ssl.keystore.password={ks_pass}
ssl.key.password={ks_pass}
log.dirs={tmp}/data
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
        cid = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        fmt = subprocess.run(java(tmp, "kafka.tools.StorageTool", "format", "--cluster-id=" + cid, "-c", props),
                             capture_output=True, text=True, timeout=120)
        if not ck.check(fmt.returncode == 0, "StorageTool format: %s" % fmt.stderr[-2000:]):
            return ck
        with open(log, "w") as lf:
            broker = subprocess.Popen(
                java(tmp, "-Dkafka.logs.dir=%s/logs" % tmp, "kafka.Kafka", props, heap="-Xmx512m"),
                stdout=lf, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=tls_lib.die_with_parent)
        admin = AdminClient(client_conf(port, ca, password))

        def ready():
            if broker.poll() is not None:
                return "exited"
            try:
                fs = admin.create_topics([NewTopic(TOPIC, 1, 1)], operation_timeout=10)
                fs[TOPIC].result(timeout=10)
                return "ok"
            except Exception as e:  # not up yet, or the topic already exists
                if "TOPIC_ALREADY_EXISTS" in str(e):
                    return "ok"
                return None
        st = wait_until(ready, 60, "the SASL_SSL broker to create %s" % TOPIC, interval=0.5)
        if not ck.check(st == "ok", "broker up over SASL_SSL (%s)" % st):
            print(tls_lib.tail(log))
            return ck
        wait_until(lambda: admin.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions[0].leader
                   >= 0, 30, "a leader for %s" % TOPIC)
        print("broker up with SASL_SSL at 127.0.0.1:%d after %s" % (port, tls_lib.elapsed(t0)),
              flush=True)

        # 1. Right CA, right password.
        rc, out, last = vigil_produce(port, ca, password, vlog)
        ck.check(rc == 0, "vigil produce over SASL_SSL exited %d: %s" % (rc, out[-1500:]))
        ck.check(last.startswith("produced %d, failed 0" % N), "summary line: %r" % last)
        ck.check(password not in out, "the SASL password appears in vigil's output")
        got = read_back(port, ca, password)
        ck.check(len(got) == N, "read back %d of %d records over SASL_SSL" % (len(got), N))
        ck.check(all(m.key() and b"/" in m.key() for m in got), "records keyed study/subject")

        # 2. A CA that did not sign the broker's certificate.
        rc, out, last = vigil_produce(port, other, password, vlog)
        ck.check(rc != 0, "produce with the wrong CA exited 0")
        ck.check(last.startswith("produced 0,"), "wrong CA summary: %r" % last)
        low = out.lower()
        ck.check("certificate verify failed" in low or "certificate verification" in low,
                 "wrong CA error names certificate verification: %s" % out[-1500:])

        # 3. The right CA but a wrong password.
        rc, out, last = vigil_produce(port, ca, password + "x", vlog)
        ck.check(rc != 0, "produce with a wrong password exited 0")
        ck.check(last.startswith("produced 0,"), "wrong password summary: %r" % last)
        ck.check("authentication" in out.lower(),
                 "wrong password error names authentication: %s" % out[-1500:])
        ck.check(password not in out, "the SASL password appears in vigil's output")

        # The broker's count stayed at N: nothing from the refused runs got in.
        got = read_back(port, ca, password)
        ck.check(len(got) == N, "topic holds %d records after the refused runs" % len(got))
        ok = ck.failed == 0
        return ck
    finally:
        tls_lib.stop(broker)
        if not ok:
            print("--- broker log ---\n" + tls_lib.tail(log, 40))
            print("--- vigil output ---\n" + tls_lib.tail(vlog, 40))
        print("kafka tls test took %s" % tls_lib.elapsed(t0), flush=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main().done()
