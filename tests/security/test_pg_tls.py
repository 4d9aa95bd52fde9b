#!/usr/bin/python3
"""PostgreSQL over TLS with sslmode=verify-full (issue 7, item 5).

initdb's a throwaway cluster (as the `postgres` user when run as root) on
127.0.0.1 with ssl=on, a server certificate for DNS:localhost only (no IP
SAN) from a CA made here, and a pg_hba.conf that accepts only hostssl with
scram-sha-256. Then the real `vigil migrate`:

  1. host=localhost, sslmode=verify-full, the right CA  -> exit 0, the
     migrations are recorded, and the server reports the session as TLS;
  2. the same with a CA that did not sign the certificate -> non-zero exit,
     "certificate verify failed";
  3. host=127.0.0.1 with the right CA -> non-zero exit: the certificate names
     only localhost, so verify-full refuses the host name;
  4. sslmode=disable -> refused by pg_hba.conf (no unencrypted access).

The password travels in PGPASSWORD, never on a command line, and must not
appear in vigil's output.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tls_lib  # noqa: E402
from tls_lib import Checks  # noqa: E402

import psycopg2  # noqa: E402

VIGIL = os.environ.get("VIGIL_BINARY", "vigil")
PGBIN = "/usr/lib/postgresql/15/bin"


def as_owner(args, **kw):
    """Runs ARGS as `postgres` when we are root (the server refuses to run
    as root), else as ourselves."""
    if os.getuid() == 0:
        args = ["runuser", "-u", "postgres", "--"] + args
    return subprocess.run(args, cwd="/", capture_output=True, text=True, **kw)


def migrate(conninfo, password, log):
    env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="10")
    env.pop("VIGIL_PG_CONNINFO", None)
    p = subprocess.run([VIGIL, "migrate", "--conninfo", conninfo], capture_output=True,
                       text=True, env=env, timeout=60)
    out = p.stdout + p.stderr
    with open(log, "a") as f:
        f.write("$ vigil migrate --conninfo '%s' (exit %d)\n%s\n" % (conninfo, p.returncode, out))
    return p.returncode, out


def main():
    ck = Checks()
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="vigil-pg-tls.")
    data = os.path.join(tmp, "data")
    log = os.path.join(tmp, "postgres.log")
    vlog = os.path.join(tmp, "vigil.log")
    started = False
    ok = False
    try:
        # The postgres user must traverse the folder; the CA key stays ours.
        os.chmod(tmp, 0o755)
        tls_lib.make_ca(tmp, "ca")
        tls_lib.make_ca(tmp, "other")
        tls_lib.make_cert(tmp, "ca", "server", "localhost", ["DNS:localhost"])
        os.chmod(os.path.join(tmp, "ca.key"), 0o600)
        os.chmod(os.path.join(tmp, "other.key"), 0o600)
        password = os.urandom(12).hex()
        pwfile = os.path.join(tmp, "pw")
        with open(pwfile, "w") as f:
            f.write(password + "\n")
        os.mkdir(data, 0o700)
        open(log, "w").close()
        if os.getuid() == 0:
            shutil.chown(data, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
            shutil.chown(log, "postgres", "postgres")
        os.chmod(pwfile, 0o600)
        p = as_owner([PGBIN + "/initdb", "-D", data, "-U", "vigil_admin", "--pwfile", pwfile,
                      "-E", "UTF8", "--locale=C", "--no-sync", "--auth-local=peer",
                      "--auth-host=scram-sha-256"], timeout=120)
        if not ck.check(p.returncode == 0, "initdb: %s" % p.stderr[-1500:]):
            return ck
        os.unlink(pwfile)
        for name in ("server.pem", "server.key"):
            dst = os.path.join(data, name)
            shutil.copy(os.path.join(tmp, name), dst)
            os.chmod(dst, 0o600)
            if os.getuid() == 0:
                shutil.chown(dst, "postgres", "postgres")
        port = tls_lib.free_port()
        with open(os.path.join(data, "postgresql.conf"), "a") as f:
            f.write("\nlisten_addresses = '127.0.0.1'\nport = %d\n"
                    "unix_socket_directories = '%s'\nssl = on\n"
                    "ssl_cert_file = 'server.pem'\nssl_key_file = 'server.key'\n"
                    "password_encryption = 'scram-sha-256'\nshared_buffers = 16MB\n"
                    "max_connections = 20\n" % (port, data))
        with open(os.path.join(data, "pg_hba.conf"), "w") as f:
            # TLS only over TCP: an unencrypted TCP connection matches no line.
            f.write("local all all peer\n"
                    "hostssl all all 127.0.0.1/32 scram-sha-256\n")
        p = as_owner([PGBIN + "/pg_ctl", "start", "-D", data, "-l", log, "-w", "-t", "60"],
                     timeout=90)
        started = True
        if not ck.check(p.returncode == 0, "pg_ctl start: %s" % (p.stdout + p.stderr)[-1500:]):
            return ck
        print("postgres with ssl=on at 127.0.0.1:%d after %s" % (port, tls_lib.elapsed(t0)),
              flush=True)

        ca = os.path.join(tmp, "ca.pem")
        other = os.path.join(tmp, "other.pem")
        base = "port=%d dbname=postgres user=vigil_admin sslmode=verify-full" % port

        # 1. The right CA and the name on the certificate.
        good = "host=localhost %s sslrootcert=%s" % (base, ca)
        rc, out = migrate(good, password, vlog)
        ck.check(rc == 0, "vigil migrate over verify-full exited %d: %s" % (rc, out[-1500:]))
        ck.check(password not in out, "the password appears in vigil's output")
        with psycopg2.connect(good, password=password) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM schema_migrations")
            n = cur.fetchone()[0]
            cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            tls = cur.fetchone()[0]
        conn.close()
        ck.check(n > 0, "migrations recorded over TLS: %d" % n)
        ck.check(tls is True, "the server sees the session as TLS")

        # 2. A CA that did not sign the server's certificate.
        rc, out = migrate("host=localhost %s sslrootcert=%s" % (base, other), password, vlog)
        ck.check(rc != 0, "migrate with the wrong CA exited 0")
        ck.check("certificate verify failed" in out,
                 "wrong CA error names certificate verification: %s" % out[-800:])

        # 3. An address the certificate does not name.
        rc, out = migrate("host=127.0.0.1 %s sslrootcert=%s" % (base, ca), password, vlog)
        ck.check(rc != 0, "verify-full to 127.0.0.1 with a localhost-only certificate exited 0")
        ck.check("does not match host name" in out,
                 "host name mismatch is the reason: %s" % out[-800:])

        # 4. No TLS at all.
        rc, out = migrate("host=localhost port=%d dbname=postgres user=vigil_admin "
                          "sslmode=disable" % port, password, vlog)
        ck.check(rc != 0, "migrate without TLS exited 0")
        ck.check("no encryption" in out, "pg_hba refuses unencrypted: %s" % out[-800:])
        ok = ck.failed == 0
        return ck
    finally:
        if started:
            as_owner([PGBIN + "/pg_ctl", "stop", "-D", data, "-m", "immediate", "-w", "-t", "30"],
                     timeout=60)
        if not ok or os.environ.get("VIGIL_TLS_VERBOSE"):
            print("--- postgres log ---\n" + tls_lib.tail(log, 30))
            print("--- vigil output ---\n" + tls_lib.tail(vlog, 30))
        print("postgres tls test took %s" % tls_lib.elapsed(t0), flush=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main().done()
