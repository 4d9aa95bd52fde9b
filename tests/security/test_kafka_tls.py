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

The mechanism is PLAIN (inside TLS): Debian's librdkafka 2.0.2 fails
SCRAM-SHA-256 and -512 against Kafka 4.x brokers with "invalid credentials"
even with the right password (fixed in librdkafka 2.6.1). SCRAM is tested
against a Kafka 3.9.1 broker in test_kafka_scram.py.
The controller listener and the inter-broker listener are PLAINTEXT on
127.0.0.1 (clients are only ever given the SASL_SSL port).
"""
import base64
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tls_lib  # noqa: E402

VIGIL = tls_lib.VIGIL
LIBS = os.path.join(tls_lib.SRC, ".deps", "kafka-libs")
TOPIC = "vigil.tls.observations"
N = 10


def client_conf(port, ca, password):
    return {"bootstrap.servers": "127.0.0.1:%d" % port, "security.protocol": "SASL_SSL",
            "sasl.mechanism": "PLAIN", "sasl.username": "vigil",
            "sasl.password": password, "ssl.ca.location": ca}


def vigil_produce(port, ca, password, log):
    return tls_lib.vigil_produce(VIGIL, N, port, TOPIC, {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
        "sasl.username": "vigil", "sasl.password": password, "ssl.ca.location": ca}, log)


def main():
    password = base64.b32encode(os.urandom(15)).decode().lower()
    sasl = ("sasl.enabled.mechanisms=PLAIN\n"
            "listener.name.sasl_ssl.plain.sasl.jaas.config="
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            "user_vigil=\"%s\";\n" % password)

    def body(ck, broker, vlog):
        port, ca, other = broker.port, broker.ca, broker.other
        conf = client_conf(port, ca, password)

        # 1. Right CA, right password.
        rc, out, last = vigil_produce(port, ca, password, vlog)
        tls_lib.check_produced(ck, rc, out, last, N, "over SASL_SSL")
        ck.check(password not in out, "the SASL password appears in vigil's output")
        tls_lib.check_topic_holds(ck, conf, TOPIC, N, "tls-reader", "over SASL_SSL")

        # 2. A CA that did not sign the broker's certificate.
        rc, out, last = vigil_produce(port, other, password, vlog)
        tls_lib.check_refused(ck, rc, out, last, "the wrong CA",
                              "certificate verify failed", "certificate verification")

        # 3. The right CA but a wrong password.
        rc, out, last = vigil_produce(port, ca, password + "x", vlog)
        tls_lib.check_refused(ck, rc, out, last, "a wrong password", "authentication")
        ck.check(password not in out, "the SASL password appears in vigil's output")

        # The broker's count stayed at N: nothing from the refused runs got in.
        tls_lib.check_topic_holds(ck, conf, TOPIC, N, "tls-reader", "after the refused runs")

    return tls_lib.run_broker_test("kafka-tls", LIBS, TOPIC, sasl,
                                   lambda b: client_conf(b.port, b.ca, password), body)


if __name__ == "__main__":
    main().done()
