#!/usr/bin/python3
"""smtp_server: a real SMTP server for vigil's tests and local demo.

Every message it accepts is stored as SPOOL/<seq>.eml (the raw bytes as
received after DATA), and described by one JSON line appended to
SPOOL/index.jsonl:

    {"seq": 1, "file": "000001.eml", "mail_from": "...", "rcpt_tos": [...],
     "size": 1234, "received": "2025-01-01T12:00:00.123456+00:00"}

A message file is written under a temporary name and renamed into place, and
its index line is appended only after the rename, so a reader that sees a
.eml name or an index line always finds the whole message.

Run with Debian's /usr/bin/python3 (python3-aiosmtpd). With --port 0 the
kernel picks the port; --port-file receives the port actually bound, written
the same temp-then-rename way, so a caller can wait for the file.

Stops cleanly on SIGTERM or SIGINT.
"""

import argparse
import asyncio
import datetime
import json
import os
import signal
import sys

from aiosmtpd.smtp import SMTP

MAX_MESSAGE_BYTES = 10 * 1024 * 1024


def write_atomic(path, data):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    # The rename is what readers rely on (they never see half a file). No
    # fsync: a test spool need not survive a power cut, and a sync per
    # message would make this double, not the notifier, the bottleneck.
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class SpoolHandler:
    """aiosmtpd handler storing each message in the spool folder.

    Runs on the event loop's single thread, so the sequence counter and the
    index file need no lock.
    """

    def __init__(self, spool):
        self.spool = spool
        self.seq = self._last_seq()
        self.index = open(os.path.join(spool, "index.jsonl"), "a", encoding="utf-8")

    def _last_seq(self):
        # Continue numbering after a restart on the same spool instead of
        # overwriting earlier messages.
        last = 0
        for name in os.listdir(self.spool):
            stem, ext = os.path.splitext(name)
            if ext == ".eml" and stem.isdigit():
                last = max(last, int(stem))
        return last

    async def handle_DATA(self, server, session, envelope):
        self.seq += 1
        name = "%06d.eml" % self.seq
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        try:
            write_atomic(os.path.join(self.spool, name), content)
            line = {
                "seq": self.seq,
                "file": name,
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "size": len(content),
                "received": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "peer": "%s:%s" % tuple(session.peer[:2]) if session.peer else None,
            }
            self.index.write(json.dumps(line) + "\n")
            self.index.flush()
        except OSError as e:
            print("smtp_server: could not store message %s: %s" % (name, e),
                  file=sys.stderr, flush=True)
            return "451 4.3.0 could not store the message"
        return "250 2.0.0 OK stored as %s" % name

    def close(self):
        self.index.close()


async def serve(args):
    os.makedirs(args.spool, exist_ok=True)
    handler = SpoolHandler(args.spool)
    loop = asyncio.get_running_loop()

    def factory():
        return SMTP(handler, hostname=args.hostname, data_size_limit=MAX_MESSAGE_BYTES,
                    decode_data=False, enable_SMTPUTF8=True)

    server = await loop.create_server(factory, host=args.host, port=args.port)
    port = server.sockets[0].getsockname()[1]
    if args.port_file:
        write_atomic(args.port_file, b"%d\n" % port)
    print("smtp_server: listening on %s:%d, spool %s" % (args.host, port, args.spool),
          file=sys.stderr, flush=True)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()
    handler.close()
    print("smtp_server: stopped", file=sys.stderr, flush=True)


def main():
    p = argparse.ArgumentParser(description="SMTP server that spools every message to files")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port to bind; 0 lets the kernel pick")
    p.add_argument("--port-file", help="write the bound port to this file once listening")
    p.add_argument("--spool", required=True, help="folder for <seq>.eml and index.jsonl")
    p.add_argument("--hostname", default="vigil-smtp.localhost",
                   help="name announced in the greeting")
    args = p.parse_args()
    try:
        asyncio.run(serve(args))
    except OSError as e:
        print("smtp_server: could not listen on %s:%d: %s" % (args.host, args.port, e),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
