#!/usr/bin/python3
"""sms_double: an HTTP SMS gateway double shaped like common commercial APIs.

    POST /v1/messages     form fields To, From, Body; HTTP Basic auth
                          201 {"sid": "SM<32 hex>", "status": "queued"}
                          401 bad or missing credentials
                          400 a field is missing or empty
    POST /_control/fail   form fields status (4xx/5xx) and seconds: for that
                          long, /v1/messages answers that status (seconds=0
                          ends the fault early)
    POST /_control/inbound_config  form fields url, secret: where replies go
                          (the console's POST /sms/inbound) and the shared secret
                          that signs them
    POST /_control/reply  form fields from, text [, signature]: a researcher's
                          phone replies. The double POSTs, as a real gateway's
                          inbound webhook does, From/To/Body/MessageSid form-encoded
                          to the configured url with X-Vigil-Signature:
                          sha256=<hex HMAC-SHA256 of the body under the secret>
                          (or the given signature, for tests of a bad one), and
                          answers {"status": <the console's status>, "body": "..."}
    GET  /healthz         200 "ok"

Every request to /v1/messages is appended to --log as one JSON line:
    {"time": ..., "path": ..., "auth_ok": ..., "fields": {...},
     "status": 201, "sid": "SM..." or null}

The password is read from --password-file (never from the command line,
where other users could read it in ps). With --port 0 the kernel picks the
port; --port-file receives the port actually bound, written to a temporary
name and renamed. Stops cleanly on SIGTERM or SIGINT. Run with Debian's
/usr/bin/python3; standard library only.
"""

import argparse
import base64
import datetime
import hmac
import json
import os
import secrets
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY_BYTES = 64 * 1024
REQUIRED_FIELDS = ("To", "From", "Body")


class Gateway:
    """State shared by the request threads: credentials, fault, request log."""

    def __init__(self, user, password, log_path):
        self.user = user
        self.password = password
        self.lock = threading.Lock()
        self.fail_status = 0
        self.fail_until = 0.0
        self.log = open(log_path, "a", encoding="utf-8")
        self.inbound_url = None
        self.inbound_secret = None

    def auth_ok(self, header):
        if not header or not header.startswith("Basic "):
            return False
        try:
            raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return False
        user, sep, password = raw.partition(":")
        if not sep:
            return False
        # Constant-time comparison: the double should not teach the client
        # code habits a real gateway would punish.
        return (hmac.compare_digest(user.encode(), self.user.encode())
                and hmac.compare_digest(password.encode(), self.password.encode()))

    def set_fault(self, status, seconds):
        with self.lock:
            self.fail_status = status
            self.fail_until = time.monotonic() + seconds

    def current_fault(self):
        with self.lock:
            if self.fail_status and time.monotonic() < self.fail_until:
                return self.fail_status
            return 0

    def record(self, entry):
        line = json.dumps(entry) + "\n"
        with self.lock:
            self.log.write(line)
            self.log.flush()

    def close(self):
        with self.lock:
            self.log.close()


class Handler(BaseHTTPRequestHandler):
    server_version = "vigil-sms-double/1"
    protocol_version = "HTTP/1.1"
    # An answer goes out as two writes (headers, then body). With Nagle on,
    # the body waits for the client's delayed ACK of the headers on a kept-
    # alive connection: up to 40 ms per request, which capped the double at
    # a few hundred requests/s and made it, not the notifier, the limit.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        sys.stderr.write("sms_double: %s %s\n" % (self.address_string(), fmt % args))

    def _reply(self, status, obj):
        body = (json.dumps(obj) + "\n").encode("utf-8")
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="sms"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read_form(self):
        """Returns (fields, error status or 0). Fields keep the first value."""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return {}, 400
        if length < 0:
            return {}, 400
        if length > MAX_BODY_BYTES:
            # Do not read it; the connection closes after the answer.
            self.close_connection = True
            return {}, 413
        raw = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if raw and ctype != "application/x-www-form-urlencoded":
            return {}, 415
        try:
            parsed = urllib.parse.parse_qs(raw.decode("utf-8"), keep_blank_values=True,
                                           strict_parsing=False, max_num_fields=64)
        except (UnicodeDecodeError, ValueError):
            return {}, 400
        return {k: v[0] for k, v in parsed.items()}, 0

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/healthz":
            self._reply(200, {"status": "ok"})
        elif path in ("/v1/messages", "/_control/fail"):
            self._reply(405, {"error": "method not allowed"})
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        gw = self.server.gateway
        if path == "/v1/messages":
            self._messages(gw, path)
        elif path == "/_control/fail":
            self._control_fail(gw)
        elif path == "/_control/inbound_config":
            self._inbound_config(gw)
        elif path == "/_control/reply":
            self._reply_from_phone(gw)
        else:
            self._reply(404, {"error": "not found"})

    def _messages(self, gw, path):
        auth = gw.auth_ok(self.headers.get("Authorization"))
        fields, err = self._read_form()
        sid = None
        fault = gw.current_fault()
        if fault:
            status, answer = fault, {"error": "injected fault", "status": fault}
        elif not auth:
            status, answer = 401, {"error": "authentication failed"}
        elif err:
            status, answer = err, {"error": "unreadable form body"}
        else:
            missing = [f for f in REQUIRED_FIELDS if not fields.get(f)]
            if missing:
                status, answer = 400, {"error": "missing field(s): " + ", ".join(missing)}
            else:
                sid = "SM" + secrets.token_hex(16)
                status, answer = 201, {"sid": sid, "status": "queued"}
        gw.record({
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "path": path,
            "auth_ok": auth,
            "fields": fields,
            "status": status,
            "sid": sid,
        })
        self._reply(status, answer)

    def _control_fail(self, gw):
        fields, err = self._read_form()
        if err:
            self._reply(err, {"error": "unreadable form body"})
            return
        try:
            status = int(fields.get("status", "503"))
            seconds = float(fields.get("seconds", "30"))
        except ValueError:
            self._reply(400, {"error": "status and seconds must be numbers"})
            return
        if not 400 <= status <= 599 or not 0 <= seconds <= 3600:
            self._reply(400, {"error": "status must be 400-599 and seconds 0-3600"})
            return
        gw.set_fault(status, seconds)
        self._reply(200, {"status": status, "seconds": seconds})


    def _inbound_config(self, gw):
        fields, err = self._read_form()
        if err or not fields.get("url", "").startswith("http") or not fields.get("secret"):
            self._reply(400, {"error": "want url (http...) and secret"})
            return
        with gw.lock:
            gw.inbound_url = fields["url"]
            gw.inbound_secret = fields["secret"]
        self._reply(200, {"url": fields["url"]})

    def _reply_from_phone(self, gw):
        fields, err = self._read_form()
        if err or not fields.get("from") or "text" not in fields:
            self._reply(400, {"error": "want from and text"})
            return
        with gw.lock:
            url, secret = gw.inbound_url, gw.inbound_secret
        if not url:
            self._reply(409, {"error": "no inbound url configured (/_control/inbound_config)"})
            return
        body = urllib.parse.urlencode({
            "From": fields["from"], "To": "vigil", "Body": fields["text"],
            "MessageSid": "SM" + secrets.token_hex(16)}).encode("utf-8")
        sig = fields.get("signature") or (
            "sha256=" + hmac.new(secret.encode(), body, "sha256").hexdigest())
        req = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded", "X-Vigil-Signature": sig})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, text = r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as e:
            self._reply(502, {"error": "inbound url unreachable: %s" % e})
            return
        gw.record({
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "path": "inbound", "fields": {"From": fields["from"], "Body": fields["text"]},
            "status": status, "sid": None})
        self._reply(200, {"status": status, "body": text})


def write_atomic(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser(description="SMS gateway double")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port to bind; 0 lets the kernel pick")
    p.add_argument("--port-file", help="write the bound port to this file once listening")
    p.add_argument("--user", default="vigil", help="HTTP Basic user name")
    p.add_argument("--password-file", required=True, help="file holding the HTTP Basic password")
    p.add_argument("--log", required=True, help="JSON-lines request log to append to")
    args = p.parse_args()

    try:
        with open(args.password_file, encoding="utf-8") as f:
            password = f.read().strip()
    except OSError as e:
        print("sms_double: could not read password file %s: %s" % (args.password_file, e),
              file=sys.stderr)
        return 1
    if not password:
        print("sms_double: password file %s is empty" % args.password_file, file=sys.stderr)
        return 1

    try:
        httpd = ThreadingHTTPServer((args.host, args.port), Handler)
    except OSError as e:
        print("sms_double: could not listen on %s:%d: %s" % (args.host, args.port, e),
              file=sys.stderr)
        return 1
    httpd.daemon_threads = True
    httpd.gateway = Gateway(args.user, password, args.log)

    def stop(signum, frame):
        # shutdown() blocks until serve_forever returns, so it must run on
        # another thread than the one serving.
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    port = httpd.server_address[1]
    if args.port_file:
        write_atomic(args.port_file, "%d\n" % port)
    print("sms_double: listening on %s:%d" % (args.host, port), file=sys.stderr, flush=True)
    httpd.serve_forever(poll_interval=0.2)
    httpd.server_close()
    httpd.gateway.close()
    print("sms_double: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
