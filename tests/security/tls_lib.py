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
from vigil_harness import Checks, wait_until  # noqa: E402,F401

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
