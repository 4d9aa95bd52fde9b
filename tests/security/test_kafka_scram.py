#!/usr/bin/python3
"""Kafka over TLS with SASL/SCRAM (issue 7, item 5), the password from a file.

Starts its own single-node KRaft broker of Kafka 3.9.1 (the jars of
`scripts/fetch-kafka --line 3.9`) on loopback, with a SASL_SSL listener
(server certificate from a CA made here) offering SCRAM-SHA-256 and
SCRAM-SHA-512, and the user vigil written into the storage by
`StorageTool format --add-scram` for both. Then runs the real
`vigil produce --generate 10`, always with the password in a file named by
VIGIL_KAFKA_PROP_SASL_PASSWORD_FILE (never on the command line):

  1. SCRAM-SHA-512, right CA and password -> exit 0, "produced 10", and the
     10 records are read back over SASL_SSL with confluent_kafka;
  2. SCRAM-SHA-256 likewise (20 records in the topic);
  3. a wrong password (SCRAM-SHA-512) -> non-zero exit, "produced 0", and
     the error names authentication;
  4. a CA that did not sign the broker's certificate -> non-zero exit,
     "produced 0", and the error names certificate verification;
  5. the topic still holds 20 records, and the password never appears in
     vigil's output.

Why Kafka 3.9 and not the dev/CI broker (4.1): Debian's librdkafka 2.0.2
repeats the client nonce in the SCRAM client-final-message; Kafka 4.x checks
the nonce strictly (RFC 5802) and answers "invalid credentials" even for the
right password, 3.9 accepts it (fixed in librdkafka 2.6.1,
confluentinc/librdkafka#4895). When vigil links librdkafka >= 2.6.1 this test
can move to the 4.1 jars.
"""
import base64
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tls_lib  # noqa: E402

VIGIL = tls_lib.VIGIL
LIBS = os.path.join(tls_lib.SRC, ".deps", "kafka-3.9-libs")
TOPIC = "vigil.scram.observations"
N = 10
MECHS = ("SCRAM-SHA-512", "SCRAM-SHA-256")
LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


def client_conf(port, ca, password, mech):
    return {"bootstrap.servers": "127.0.0.1:%d" % port, "security.protocol": "SASL_SSL",
            "sasl.mechanism": mech, "sasl.username": "vigil",
            "sasl.password": password, "ssl.ca.location": ca}


def write_secret(tmp, name, text):
    path = os.path.join(tmp, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")  # a trailing newline, as `echo > file` leaves it
    return path


def vigil_produce(port, ca, mech, pwfile, log):
    # No sasl.password among the -X properties: it comes from the file only.
    return tls_lib.vigil_produce(VIGIL, N, port, TOPIC, {
        "security.protocol": "SASL_SSL", "sasl.mechanism": mech,
        "sasl.username": "vigil", "ssl.ca.location": ca}, log,
        env={"VIGIL_KAFKA_PROP_SASL_PASSWORD_FILE": pwfile})


def main():
    if not os.path.isdir(LIBS):
        ck = tls_lib.Checks()
        ck.check(False, "no Kafka 3.9 jars in %s: run scripts/fetch-kafka --line 3.9 "
                 "(scripts/setup does)" % LIBS)
        return ck
    password = base64.b32encode(os.urandom(15)).decode().lower()
    sasl = "sasl.enabled.mechanisms=%s\n" % ",".join(MECHS)
    scram = []
    for mech in MECHS:
        sasl += "listener.name.sasl_ssl.%s.sasl.jaas.config=%s\n" % (mech.lower(), LOGIN)
        scram += ["--add-scram", "%s=[name=vigil,password=%s]" % (mech, password)]

    def body(ck, broker, vlog):
        port, ca, other = broker.port, broker.ca, broker.other
        right = write_secret(broker.tmp, "kafka-password", password)
        wrong = write_secret(broker.tmp, "kafka-password-wrong", password + "x")
        outs = []

        # 1, 2. Each mechanism, right CA and password: N more records each.
        for i, mech in enumerate(MECHS):
            rc, out, last = vigil_produce(port, ca, mech, right, vlog)
            outs.append(out)
            tls_lib.check_produced(ck, rc, out, last, N, "with " + mech)
            if rc == 0:  # else nothing to wait for
                tls_lib.check_topic_holds(ck, client_conf(port, ca, password, mech), TOPIC,
                                          N * (i + 1), "scram-reader", mech)

        # 3. The right CA, a wrong password (from its file).
        rc, out, last = vigil_produce(port, ca, MECHS[0], wrong, vlog)
        outs.append(out)
        tls_lib.check_refused(ck, rc, out, last, "a wrong password", "authentication")

        # 4. A CA that did not sign the broker's certificate.
        rc, out, last = vigil_produce(port, other, MECHS[0], right, vlog)
        outs.append(out)
        tls_lib.check_refused(ck, rc, out, last, "the wrong CA",
                              "certificate verify failed", "certificate verification")

        # 5. Nothing from the refused runs got in; the secret was never shown.
        tls_lib.check_topic_holds(ck, client_conf(port, ca, password, MECHS[0]), TOPIC, 2 * N,
                                  "scram-reader", "after the refused runs")
        ck.check(not any(password in o for o in outs),
                 "the SCRAM password appears in vigil's output")

    return tls_lib.run_broker_test(
        "kafka-scram", LIBS, TOPIC, sasl,
        lambda b: client_conf(b.port, b.ca, password, MECHS[0]), body, scram)


if __name__ == "__main__":
    main().done()
