"""The console's pages, served from the binary: each is byte-for-byte the
file in console/web/, carries a Content-Security-Policy without
'unsafe-inline' or 'unsafe-eval' (scripts and styles from 'self' only, no
framing), and the HTML has no inline script, style or event handler (which
that policy would block anyway); the script never turns server values into
HTML (no innerHTML, outerHTML, insertAdjacentHTML, document.write, eval);
every form control has a label. Then the flow the page runs, through the
same API calls and headers a browser sends: sign in, the queue, an alert,
acknowledge with the CSRF token."""
import html.parser
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import console_lib as cl  # noqa: E402
import vigil_harness as h  # noqa: E402

C = h.Checks()
E = cl.Env("pages")
E.seed()
E.start()
E.alert("p1", "S1", message=cl.MARKUP)
WEB = os.path.join(h.SRC, "console", "web")


def get_raw(path):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", E.port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    hd = {k.lower(): v for k, v in r.getheaders()}
    return r.status, hd, body


for path, name, ctype in [("/console/", "console.html", "text/html"),
                          ("/console/console.js", "console.js", "text/javascript"),
                          ("/console/console.css", "console.css", "text/css")]:
    st, hd, body = get_raw(path)
    C.check(st == 200 and hd.get("content-type", "").startswith(ctype), "%s: 200 %s" % (path, ctype))
    C.check(body == open(os.path.join(WEB, name), "rb").read(), "%s is console/web/%s byte for byte" % (path, name))
    csp = hd.get("content-security-policy", "")
    C.check("script-src 'self'" in csp and "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
            and "unsafe-inline" not in csp and "unsafe-eval" not in csp, "%s CSP: %s" % (path, csp))
st, hd, _ = get_raw("/console/nope")
C.check(st == 404 and "content-security-policy" in hd, "unknown page: 404 with the CSP")


class Scan(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.problems, self.controls, self.labels = [], [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and "src" not in a:
            self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("<style> element")
        for k in a:
            if k == "style" or k.startswith("on"):
                self.problems.append("%s attribute on <%s>" % (k, tag))
        if tag in ("input", "select", "textarea"):
            self.controls.append(a.get("id"))
        if tag == "label" and "for" in a:
            self.labels.add(a["for"])

    def handle_data(self, data):
        pass


s = Scan()
s.feed(open(os.path.join(WEB, "console.html")).read())
C.check(not s.problems, "no inline script, style or handler in the HTML: %s" % s.problems)
C.check(s.controls and all(c in s.labels for c in s.controls),
        "every control has a label (%s vs %s)" % (s.controls, sorted(s.labels)))
js = open(os.path.join(WEB, "console.js")).read()
code = "\n".join(l for l in js.splitlines() if not l.strip().startswith("//"))
bad = [w for w in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function")
       if w in code]
C.check(not bad, "the script never makes HTML from strings: %s" % bad)
C.check("textContent" in code, "the script writes text with textContent")

# the page's flow, as its script makes it
st, hd, b = E.request("POST", "/api/v1/session", {"email": "responder@example.org", "password": cl.PASSWORD})
cookie = hd["set-cookie"].split(";")[0].split("=", 1)[1]
csrf = b["csrf_token"]
st, _, b = E.request("GET", "/api/v1/alerts?limit=50&state=open", cookie=cookie)
C.check(st == 200 and any(a["alert_id"] == "p1" and a["message"] == cl.MARKUP for a in b["alerts"]),
        "the queue lists the alert, its message as a string")
st, _, b = E.request("GET", "/api/v1/alerts/p1", cookie=cookie)
C.check(st == 200, "the alert page's data")
st, _, b = E.request("POST", "/api/v1/alerts/p1/ack", {"note": "seen"}, cookie=cookie, csrf=csrf)
C.check(st == 200 and b["result"] == "acknowledged", "acknowledge with the CSRF token")
st, _, b = E.request("GET", "/api/v1/alerts?limit=50&state=open", cookie=cookie)
C.check(not any(a["alert_id"] == "p1" for a in b["alerts"]), "the open queue no longer lists it")
C.done()
