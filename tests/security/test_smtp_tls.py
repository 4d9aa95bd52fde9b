#!/usr/bin/python3
"""SMTP with STARTTLS (issue 7, item 5).

Starts its own aiosmtpd server on 127.0.0.1 that offers STARTTLS with a
certificate for localhost from a CA made here and refuses mail before TLS
(require_starttls). The client is smtp_send_tool: the notifier's own transfer
setup (alerting/email.c email_easy_setup, smtp_tls and smtp_ca_file) driven
by one blocking libcurl handle, not the whole notifier.

  1. smtp_tls=require, smtp_ca_file = the right CA -> sent, the server got
     exactly that message, over TLS;
  2. smtp_ca_file = a CA that did not sign the certificate -> refused with a
     certificate error, nothing received;
  3. smtp_ca_file unset (the system's CAs) -> refused likewise;
  4. smtp_tls=off against this server -> refused (it demands STARTTLS),
     nothing received: the message never travels in clear.

    test_smtp_tls.py SMTP_SEND_TOOL
"""
import asyncio
import logging
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tls_lib  # noqa: E402
from tls_lib import Checks  # noqa: E402

from aiosmtpd.controller import Controller  # noqa: E402


class Recorder:
    """Keeps what the server accepted: (rcpt_tos, TLS in use, bytes)."""

    def __init__(self):
        self.got = []

    async def handle_DATA(self, server, session, envelope):
        self.got.append((list(envelope.rcpt_tos), session.ssl is not None, envelope.content))
        return "250 OK"


def send(tool, port, tls, ca, rcpt):
    p = subprocess.run([tool, "smtp://localhost:%d" % port, tls, ca, rcpt],
                       capture_output=True, text=True, timeout=30)
    out = (p.stdout + p.stderr).strip()
    print("smtp_tls=%s ca=%s: exit %d: %s" % (tls, os.path.basename(ca) or "(system)",
                                             p.returncode, out), flush=True)
    return p.returncode, out


def main():
    tool = sys.argv[1]
    # The refused handshakes are expected: keep aiosmtpd's tracebacks out.
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    ck = Checks()
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="vigil-smtp-tls.")
    ctl = None
    try:
        tls_lib.make_ca(tmp, "ca")
        tls_lib.make_ca(tmp, "other")
        cert, key = tls_lib.make_cert(tmp, "ca", "smtp", "localhost",
                                      ["DNS:localhost", "IP:127.0.0.1"])
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        rec = Recorder()
        port = tls_lib.free_port()
        ctl = Controller(rec, hostname="127.0.0.1", port=port, tls_context=ctx,
                         require_starttls=True, loop=asyncio.new_event_loop())
        ctl.start()
        ca = os.path.join(tmp, "ca.pem")
        other = os.path.join(tmp, "other.pem")

        # 1. The right CA.
        rc, out = send(tool, port, "require", ca, "safety@test.example")
        ck.check(rc == 0 and out == "sent", "send with the right CA: %s" % out)
        ck.check(len(rec.got) == 1, "server received %d messages, want 1" % len(rec.got))
        if rec.got:
            rcpt, over_tls, data = rec.got[0]
            ck.check(rcpt == ["safety@test.example"], "recipient %s" % rcpt)
            ck.check(over_tls, "the message arrived without TLS")
            ck.check(b"X-Vigil-Alert-Ids: tls-test-alert" in data, "vigil's message arrived")

        # 2. A CA that did not sign the server's certificate.
        rc, out = send(tool, port, "require", other, "safety@test.example")
        ck.check(rc != 0, "send with the wrong CA succeeded")
        ck.check("certificate" in out.lower(), "wrong CA error names the certificate: %s" % out)

        # 3. No CA file: the system's trust store does not know our CA.
        rc, out = send(tool, port, "require", "", "safety@test.example")
        ck.check(rc != 0, "send with the system CAs succeeded")
        ck.check("certificate" in out.lower(), "system CA error names the certificate: %s" % out)

        # 4. TLS off: the server insists on STARTTLS first.
        rc, out = send(tool, port, "off", ca, "safety@test.example")
        ck.check(rc != 0, "send with smtp_tls=off succeeded: %s" % out)

        ck.check(len(rec.got) == 1, "refused sends delivered something: %d messages"
                 % len(rec.got))
        return ck
    finally:
        if ctl is not None:
            ctl.stop()
        print("smtp tls test took %s" % tls_lib.elapsed(t0), flush=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main().done()
