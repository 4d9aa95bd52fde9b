"""Password reset by an e-mailed single-use link, through the real SMTP
server of scripts/services: the request answers 202 the same for known and
unknown addresses (only a known one gets mail), the link's token sets a new
password once, ends the sessions and clears a lockout; a used, made-up or
weak-password attempt changes nothing; at most 3 mails per account and
hour."""
import email
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import console_lib as cl  # noqa: E402
import vigil_harness as h  # noqa: E402

C = h.Checks()
E = cl.Env("reset")
E.seed()
# addresses unique to this run: the SMTP spool is shared by every test
tag = h.run_id()
E.sql("UPDATE console_credentials SET email = researcher_id || '-' || %s || '@example.org'", tag)
SPOOL = h.env("VIGIL_SMTP_SPOOL")
E.start(extra_env={"VIGIL_SMTP_URL": h.env("VIGIL_SMTP_URL"), "VIGIL_SMTP_TLS": "off",
                   "VIGIL_CONSOLE_PUBLIC_URL": "https://console.example.org"})
addr = "responder-%s@example.org" % tag


def mails_to(a):
    out = []
    for line in h.read_jsonl(os.path.join(SPOOL, "index.jsonl")):
        if a in line.get("rcpt_tos", []):
            out.append(email.message_from_bytes(open(os.path.join(SPOOL, line["file"]), "rb").read()))
    return out


def token_of(msg):
    m = re.search(r"https://console\.example\.org/console/#reset/([A-Za-z0-9_-]{43})", msg.get_payload(decode=True).decode())
    return m.group(1) if m else None


st, hd, b = E.request("POST", "/api/v1/session", {"email": addr, "password": cl.PASSWORD})
old_cookie = hd.get("set-cookie", "").split(";")[0].split("=", 1)[-1]
C.check(st == 200, "signed in with the old password")

st, _, b1 = E.request("POST", "/api/v1/password-reset", {"email": addr.upper()})
st2, _, b2 = E.request("POST", "/api/v1/password-reset", {"email": "nobody-%s@example.org" % tag})
C.check(st == 202 and st2 == 202 and b1 == b2, "202 and the same answer for a known and an unknown address")
got = h.wait_until(lambda: mails_to(addr), 20, "the reset mail")
C.check(got and len(got) == 1, "one mail to the account's address")
C.check(not mails_to("nobody-%s@example.org" % tag), "no mail for an unknown address")
tok = token_of(got[0]) if got else None
C.check(tok is not None, "the mail holds a link with the token")
C.check(E.sql("SELECT count(*) FROM console_password_resets WHERE token_hash = %s", tok or "")[0][0] == 0,
        "the token is not stored in clear")

new = cl.PASSWORD + " renewed"
st, _, b = E.request("POST", "/api/v1/password-reset/confirm", {"token": tok, "password": "short"})
C.check(st == 400, "a weak password: 400 (got %d)" % st)
st, _, _ = E.request("POST", "/api/v1/password-reset/confirm", {"token": "A" * 43, "password": new})
C.check(st == 410, "a made-up token: 410 (got %d)" % st)
# lock the account first: the reset clears it
E.sql("UPDATE console_credentials SET failed_count = 5, locked_until = now() + interval '15 minutes' "
      "WHERE researcher_id = 'responder'")
st, _, _ = E.request("POST", "/api/v1/password-reset/confirm", {"token": tok, "password": new})
C.check(st == 204, "the link sets the new password: 204 (got %d)" % st)
st, _, _ = E.request("POST", "/api/v1/password-reset/confirm", {"token": tok, "password": new + "x"})
C.check(st == 410, "the same link again: 410 (got %d)" % st)
C.check(E.request("GET", "/api/v1/session", cookie=old_cookie)[0] == 401, "the reset ended the old session")
C.check(E.request("POST", "/api/v1/session", {"email": addr, "password": cl.PASSWORD})[0] == 401,
        "the old password no longer works")
C.check(E.request("POST", "/api/v1/session", {"email": addr, "password": new})[0] == 200,
        "the new one does, the lockout cleared")

# at most 3 mails per account and hour (one sent above)
for _ in range(4):
    E.request("POST", "/api/v1/password-reset", {"email": addr})
h.wait_until(lambda: len(mails_to(addr)) >= 3, 20, "more reset mails")
C.check(E.sql("SELECT count(*) FROM console_password_resets WHERE researcher_id = 'responder'")[0][0] == 3,
        "at most 3 reset links per account and hour")
# a disabled account gets none
E.users("disable", "--researcher", "viewer")
E.request("POST", "/api/v1/password-reset", {"email": "viewer-%s@example.org" % tag})
C.check(E.sql("SELECT count(*) FROM console_password_resets WHERE researcher_id = 'viewer'")[0][0] == 0,
        "a disabled account gets no link")
C.done()
