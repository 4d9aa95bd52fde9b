#!/usr/bin/python3
"""Acknowledging from where the researcher is (issue #14, point 4), end to
end against the services of scripts/services, `vigil notifier` and
`vigil console`:

  test_ack.py links   the link in a real alert email: a scanner's GETs (and
                      HEAD) change nothing in PostgreSQL; GET then POST, as
                      a browser does, acknowledges once (who, channel
                      'link', from where); the link then refuses (410) and
                      the refusal is audited. The tampering matrix, with
                      tokens made here by an independent implementation:
                      forged signature, unknown key id, right key id with
                      the wrong secret, expired, alert id altered,
                      researcher altered, cut short: each a 4xx page,
                      nothing changed, each refusal audited. The previous
                      key still verifies (rotation). Already acknowledged,
                      resolved, retracted: 200 pages saying which. The link
                      carries no subject id.
  test_ack.py sms     the reply code in a real alert SMS, replied through
                      the SMS double's inbound endpoint: bad signature
                      (401), the code from a number that was not paged
                      (403), an unknown code (404), a malformed text (400)
                      change nothing and are audited; "ACK <code>" from
                      the paged phone acknowledges (channel 'sms_reply',
                      origin the number); again: "already", nothing more;
                      an expired code (410) changes nothing, audited.
"""
import base64
import json
import os
import re
import secrets
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import ack_lib as A  # noqa: E402
from ack_lib import h  # noqa: E402

MODE = sys.argv[1] if len(sys.argv) > 1 else "links"
t = h.Checks()
rid = h.run_id()


def run_links():
    s = A.Setup(rid)
    try:
        a1, subj1 = s.alert(1)
        links = h.wait_until(lambda: s.email_links(a1), 60, "the alert email with its link",
                             interval=0.2)
        t.check(links and len(links) == 1, "one acknowledgement link in the email: %r" % links)
        if not links:
            return
        link = links[0]
        tok = link.rsplit("/", 1)[1]
        fields = tok.split(".")
        decoded = [base64.urlsafe_b64decode(f + "=" * (-len(f) % 4)).decode("latin-1")
                   for f in fields[2:4]]
        t.check(subj1 not in link and all(subj1 not in d for d in decoded),
                "the link does not carry the subject id")
        t.check(decoded == [a1, s.r1] and fields[1] == "k2",
                "the link names the alert and the researcher, signed with the first key")

        # a mail scanner: GETs and HEADs, repeatedly; nothing may change
        ev0 = s.last_event_id()
        for _ in range(3):
            st, body, hdr = A.http("GET", link)
            t.check(st == 200 and "<form method=\"post\"" in body,
                    "GET shows the confirmation form (%s)" % st)
        t.check(A.http("HEAD", link)[0] == 200, "HEAD answered")
        t.check(hdr.get("Referrer-Policy") == "no-referrer", "no Referer leaves the page")
        t.check(s.state(a1)[0] == "open", "after the scanner's GETs the alert is still open")
        t.check(not s.events("acknowledged", ev0), "no acknowledgement event after GETs")
        t.check(h.query("SELECT count(*) FROM ack_link_uses WHERE alert_id = %s", a1)[0][0] == 0,
                "the link is not used up by GETs")

        # the browser: GET, then the form's POST
        st, body, _ = A.http("POST", link, {"note": "seen, calling the site", "confirm": "1"})
        t.check(st == 200 and "Acknowledged" in body, "POST acknowledges (%s)" % st)
        t.check(s.state(a1) == ("acknowledged", s.r1, "link", "127.0.0.1"),
                "lifecycle: acknowledged by the link's researcher, channel link, from where: %r"
                % (s.state(a1),))
        acks = s.events("acknowledged", ev0)
        t.check(len(acks) == 1 and acks[0][1] == a1 and acks[0][2] == s.r1,
                "one acknowledgement event")
        ev1 = s.last_event_id()
        st, body, _ = A.http("POST", link, {"confirm": "1"})
        t.check(st == 410 and "already been used" in body, "the same link again: 410 (%s)" % st)
        st, _, _ = A.http("GET", link)
        t.check(st == 410, "a used link's GET: 410")
        ref = s.events("ack_link_refused", ev1)
        t.check(len(ref) == 2 and all(r[3]["reason"] == "replayed" for r in ref),
                "both replays audited as replayed: %r" % ref)
        t.check(len(s.events("acknowledged", ev1)) == 0, "no second acknowledgement")

        # the tampering matrix, against an open alert
        a2, _ = s.alert(2, produce=False)
        a3, _ = s.alert(3, produce=False)
        k2 = s.keys["k2"]
        exp = int(time.time()) + 3600
        good = A.mint("k2", k2, a2, s.r1, exp)
        f = good.split(".")
        cases = [
            ("forged signature", ".".join(f[:6] + [A.b64url(secrets.token_bytes(32))]), 403,
             "bad_signature"),
            ("unknown key id", A.mint("k9", k2, a2, s.r1, exp), 403, "unknown_key"),
            ("right key id, wrong secret", A.mint("k2", secrets.token_hex(24), a2, s.r1, exp),
             403, "bad_signature"),
            ("expired", A.mint("k2", k2, a2, s.r1, int(time.time()) - 5), 410, "expired"),
            ("alert id altered", ".".join(f[:2] + [A.b64url(a3.encode())] + f[3:]), 403,
             "bad_signature"),
            ("researcher altered", ".".join(f[:3] + [A.b64url(s.r2.encode())] + f[4:]), 403,
             "bad_signature"),
            ("expiry altered", ".".join(f[:4] + [str(exp + 86400)] + f[5:]), 403,
             "bad_signature"),
            ("cut short", good[:-10], 400, "malformed"),
            ("garbage", "not-a-token", 400, "malformed"),
        ]
        for name, tok_, want, reason in cases:
            for method in ("GET", "POST"):
                ev = s.last_event_id()
                st, body, _ = A.http(method, s.base + "/ack/" + urllib.parse.quote(tok_, safe=".-_"),
                                     {"confirm": "1"} if method == "POST" else None)
                t.check(st == want, "%s %s: %d (want %d)" % (name, method, st, want))
                t.check("Nothing was acknowledged" in body or "not a valid" in body or
                        "expired" in body, "%s: the page says why" % name)
                ref = s.events("ack_link_refused", ev)
                t.check(len(ref) == 1 and ref[0][3].get("reason") == reason,
                        "%s %s: refusal audited as %s: %r" % (name, method, reason, ref))
        t.check(s.state(a2)[0] == "open" and s.state(a3)[0] == "open",
                "after the whole matrix both alerts are still open")
        forged_ev = s.events("ack_link_refused", ev1)
        t.check(all(e[1] is None for e in forged_ev if e[3]["reason"] in
                    ("bad_signature", "unknown_key", "malformed")),
                "a forged link's claims are not recorded as the event's alert")

        # rotation: the previous key still verifies
        st, body, _ = A.http("GET", s.base + "/ack/" + A.mint("k1", s.keys["k1"], a2, s.r1, exp))
        t.check(st == 200 and "<form" in body, "a link signed with the previous key: 200")
        # the good one works
        st, body, _ = A.http("POST", s.base + "/ack/" + good, {"confirm": "1"})
        t.check(st == 200 and s.state(a2)[0] == "acknowledged", "the untampered link acknowledges")

        # idempotent answers, saying which
        st, body, _ = A.http("POST", s.base + "/ack/" + A.mint("k2", k2, a2, s.r2, exp), {})
        t.check(st == 200 and "already been acknowledged" in body,
                "another link for an acknowledged alert: 200, already acknowledged")
        t.check(s.state(a2)[1] == s.r1, "the first acknowledgement stands")
        h.query("SELECT vigil_alert_resolve(%s, %s, 'lab_error', 'haemolysed', 'cli', 'test')",
                a3, s.r2)
        st, body, _ = A.http("GET", s.base + "/ack/" + A.mint("k2", k2, a3, s.r1, exp))
        t.check(st == 200 and "already been resolved" in body and "<form" not in body,
                "a resolved alert's link: 200, already resolved, no form")
        st, body, _ = A.http("POST", s.base + "/ack/" + A.mint("k2", k2, a3, s.r1, exp), {})
        t.check(st == 200 and "already been resolved" in body, "POST on it: already resolved")
        a4, _ = s.alert(4, produce=False)
        h.query("UPDATE alerts SET retracted = true, retracted_by = %s WHERE alert_id = %s",
                a4 + "-r", a4)
        st, body, _ = A.http("POST", s.base + "/ack/" + A.mint("k2", k2, a4, s.r1, exp), {})
        t.check(st == 200 and "withdrawn" in body and s.state(a4)[0] == "retracted",
                "a retracted alert's link: 200, withdrawn, still retracted")
        st, _, _ = A.http("GET", s.base + "/ack/" + A.mint("k2", k2, rid + "-nope", s.r1, exp))
        t.check(st == 404, "a genuine link to an alert that does not exist: 404")
        st, body = s.get("/metrics")[:2]
        t.check('vigil_console_ack_pages_total{outcome="acknowledged"} 2' in body,
                "the console counts acknowledgements in /metrics")
    finally:
        s.stop()


def reply(phone, text, signature=None):
    url = h.env("VIGIL_SMS_URL").replace("/v1/messages", "/_control/reply")
    data = {"from": phone, "text": text}
    if signature:
        data["signature"] = signature
    with urllib.request.urlopen(url, data=urllib.parse.urlencode(data).encode(),
                                timeout=15) as r:
        out = json.loads(r.read())
    return out["status"], out["body"]


def run_sms():
    s = A.Setup(rid)
    try:
        cfg = h.env("VIGIL_SMS_URL").replace("/v1/messages", "/_control/inbound_config")
        with urllib.request.urlopen(cfg, data=urllib.parse.urlencode(
                {"url": s.base + "/sms/inbound", "secret": s.sms_secret}).encode(),
                timeout=5) as r:
            t.check(r.status == 200, "the double knows where replies go")
        a1, _ = s.alert(1)
        sms = h.wait_until(lambda: s.sms_to(s.phone1), 60, "the alert SMS", interval=0.2)
        t.check(sms and len(sms) == 1, "one SMS to the paged phone")
        if not sms:
            return
        m = re.search(r"Reply ACK (\d{4,8})", sms[0])
        t.check(m is not None, "the SMS carries a reply code: %r" % sms[0])
        t.check(" Ack: " + s.base + "/ack/" in sms[0], "and a link")
        t.check(sms[0].rstrip().endswith(a1), "the refs stay last")
        code = m.group(1) if m else "0000"
        cases = [
            ("bad signature", s.phone1, "ACK " + code, "sha256=" + "0" * 64, 401,
             "bad_signature"),
            ("a number that was not paged", s.phone2, "ACK " + code, None, 403, "wrong_number"),
            ("unknown code", s.phone1, "ACK 99999999", None, 404, "unknown_code"),
            ("malformed text", s.phone1, "yes I saw it", None, 400, "malformed_text"),
            ("malformed number", "0044-12", "ACK " + code, None, 400, "malformed_body"),
        ]
        for name, phone, text, sig, want, reason in cases:
            ev = s.last_event_id()
            st, body = reply(phone, text, sig)
            t.check(st == want and body.startswith("vigil: "),
                    "%s: %d %r (want %d)" % (name, st, body, want))
            ref = s.events("sms_reply_refused", ev)
            t.check(len(ref) == 1 and ref[0][3]["reason"] == reason,
                    "%s: audited as %s: %r" % (name, reason, ref))
            t.check(s.state(a1)[0] == "open", "%s: the alert is still open" % name)
        ev = s.last_event_id()
        st, body = reply(s.phone1, "  ack %s " % code)
        t.check(st == 200 and "acknowledged 1 alert" in body, "ACK from the paged phone: %r" % body)
        t.check(s.state(a1) == ("acknowledged", s.r1, "sms_reply", s.phone1),
                "lifecycle: acknowledged by the paged researcher, sms_reply, from the phone: %r"
                % (s.state(a1),))
        t.check(len(s.events("acknowledged", ev)) == 1, "one acknowledgement event")
        st, body = reply(s.phone1, "ACK " + code)
        t.check(st == 200 and "already" in body, "the same reply again: already (%r)" % body)
        t.check(len(s.events("acknowledged", ev)) == 1, "still one acknowledgement event")

        # an expired code: refused, the alert stays open
        a2, _ = s.alert(2)
        sms2 = h.wait_until(lambda: [x for x in s.sms_to(s.phone1) if x.rstrip().endswith(a2)],
                            60, "the second alert's SMS", interval=0.2)
        m2 = re.search(r"Reply ACK (\d{4,8})", sms2[0]) if sms2 else None
        t.check(m2 is not None and m2.group(1) != code, "a new SMS, a new code")
        if m2:
            h.query("UPDATE sms_ack_codes SET expires_at = now() - interval '1 second' "
                    "WHERE phone = %s AND code = %s", s.phone1, m2.group(1))
            ev = s.last_event_id()
            st, body = reply(s.phone1, "ACK " + m2.group(1))
            ref = s.events("sms_reply_refused", ev)
            t.check(st == 410 and "expired" in body, "an expired code: 410 (%r)" % body)
            t.check(len(ref) == 1 and ref[0][3]["reason"] == "expired_code",
                    "the expired code's refusal audited")
            t.check(s.state(a2)[0] == "open", "the alert of the expired code is still open")

        # the code of one delivery: the same on a retry, a fresh one once expired
        key = rid + "-delivery"
        issue = ("SELECT vigil_sms_code_issue(%s, %s, ARRAY[%s], %s, 60)")
        c1 = h.query(issue, s.phone2, s.r2, a2, key)[0][0]
        c2 = h.query(issue, s.phone2, s.r2, a2, key)[0][0]
        h.query("UPDATE sms_ack_codes SET expires_at = now() - interval '1 second' "
                "WHERE delivery_key = %s", key)
        c3 = h.query(issue, s.phone2, s.r2, a2, key)[0][0]
        live = h.query("SELECT count(*) FROM sms_ack_codes WHERE delivery_key = %s "
                       "AND expires_at > now()", key)[0][0]
        t.check(c1 == c2 and live == 1 and re.fullmatch(r"\d{4}", c3 or ""),
                "a retried SMS keeps its code; an expired one is issued anew (%s %s %s)"
                % (c1, c2, c3))
    finally:
        s.stop()


{"links": run_links, "sms": run_sms}[MODE]()
t.done()
