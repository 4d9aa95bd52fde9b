"""The console's pages in a real browser: Debian's chromium, headless, driven
by Selenium through chromium-driver, against a real `vigil console`.

A responder signs in through the page's form, sees the open-alert queue,
opens an alert, acknowledges it with the button (the page sends the CSRF
token it got at sign-in), sees the alert's state become acknowledged and
the open queue drop it; another user's acknowledgement (command line)
drops a row through the live stream's change event, a resolution updates
one in place; then opens the subject's page and checks that the
SVG chart is drawn: one circle per result, out-of-range ones marked, the
reference band, the alert line. Escalation policies: the responder sees
them in words and no control to change them (a site id holding markup
stays text); a study_admin changes a tier's deadline in the form, and the
database then holds it with a policy_set audit event by that admin; a
policy the validator refuses shows its message under the form and changes
nothing; removing the site's policy (confirmed) takes it off the page and
the tables, audited as policy_removed. After Acknowledge the status line still says so once the alert's
state is refreshed. The browser's console must hold no
Content-Security-Policy violation (nor any other error). Screenshots of the
queue, the alert, the chart and the policy editor (policy.png) are saved under build/artifacts/console/
(the directory is printed). Every wait is a WebDriverWait with a deadline.

Never skipped: without chromium or chromium-driver the test fails and says
which Debian package is missing.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import console_lib as cl  # noqa: E402
import vigil_harness as h  # noqa: E402

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = os.environ.get("VIGIL_CHROMIUM", "/usr/bin/chromium")
DRIVER = os.environ.get("VIGIL_CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT = 20 * h.SCALE

C = h.Checks()
for path, pkg in ((CHROMIUM, "chromium"), (DRIVER, "chromium-driver")):
    if not os.path.exists(path):
        print("FAIL: %s is missing: install the Debian package %s (scripts/setup does)" % (path, pkg))
        sys.exit(1)

ART = os.path.join(h.BUILD or ".", "artifacts", "console")
os.makedirs(ART, exist_ok=True)
for old in ("failed.png", "queue.png", "alert.png", "subject-chart.png", "subject.png", "policy.png",
            "policy-phone.png"):
    if os.path.exists(os.path.join(ART, old)):
        os.unlink(os.path.join(ART, old))
print("screenshots in", os.path.abspath(ART), flush=True)

E = cl.Env("browser")
E.seed()
E.start()
# two alerts of S1 for the responder; one of S2 it must not see
E.alert("b1", "S1", subject="SUBJ-7", message="potassium 6.3 above 5.1", minutes_ago=5)
E.alert("b2", "S1", subject="SUBJ-8", severity="warning", message="sodium low", minutes_ago=10)
E.alert("b3", "S2", subject="SUBJ-9", message="not yours")
# SUBJ-7's potassium over 12 days: 10 in range, 2 above the band
for i in range(12):
    E.observation("k7-%d" % i, "S1", "SUBJ-7", value=6.3 if i in (0, 5) else 4.0 + 0.05 * i, days_ago=i)

# a researcher whose id holds a comma (ids are text): the policy editor
# must keep it whole
COMMA_ID = "smith,j"
E.sql("INSERT INTO researchers (researcher_id, name, email) VALUES (%s, 'J Smith', 'js@example.org')",
      COMMA_ID)
# S1's escalation policies: study-wide and for a site whose id is markup
EVIL_SITE = "<img/src=x/onerror=alert(3)>"
E.sql("INSERT INTO sites (study_id, site_id, name) VALUES ('S1', %s, %s)", EVIL_SITE, cl.MARKUP)
with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
    json.dump({"policies": [
        {"study": "S1", "severity": "critical", "repeat_last": "15m", "tiers": [
            {"targets": ["subscribers"], "channels": ["subscribed"], "ack_deadline": "15m"},
            {"targets": ["researcher:responder"], "channels": ["email"], "ack_deadline": "10m"}]},
        {"study": "S1", "site": EVIL_SITE, "severity": "critical", "tiers": [
            {"targets": ["subscribers"], "channels": ["email", "sms"], "ack_deadline": "5m"}]}]}, f)
r = subprocess.run([h.VIGIL, "policy", "set", f.name, "--conninfo", E.conninfo], capture_output=True, text=True)
os.unlink(f.name)
assert r.returncode == 0, r.stderr


def tier_deadlines():
    return E.sql("SELECT t.tier, t.ack_deadline_s FROM escalation_policies p JOIN escalation_tiers t "
                 "USING (policy_id) WHERE p.study_id = 'S1' AND p.site_id IS NULL AND p.severity = 'critical' "
                 "ORDER BY t.tier")


profile = tempfile.mkdtemp(prefix="vigil-chromium-")
opts = webdriver.ChromeOptions()
opts.binary_location = CHROMIUM
opts.add_argument("--headless=new")
opts.add_argument("--user-data-dir=" + profile)
opts.add_argument("--window-size=1280,1000")
opts.add_argument("--disable-gpu")
opts.add_argument("--disable-dev-shm-usage")
if os.geteuid() == 0 or os.environ.get("VIGIL_CHROMIUM_NO_SANDBOX") == "1":
    # chromium refuses to start its sandbox as root; only then (or when a
    # container without user namespaces says so)
    opts.add_argument("--no-sandbox")
opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = None
try:
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(WAIT)
    wait = WebDriverWait(driver, WAIT)
    base = "http://127.0.0.1:%d" % E.port

    def until(cond, what):
        try:
            return wait.until(cond)
        except TimeoutException:
            shot = os.path.join(ART, "failed.png")
            driver.save_screenshot(shot)
            C.check(False, "%s (waited %.0f s; screenshot %s)" % (what, WAIT, shot))
            raise

    # read in one script so a list the page is replacing is never half seen
    # (element handles into it would go stale mid-read)
    def state_of_alert():
        return driver.execute_script(
            "for (const dt of document.querySelectorAll('#alert-facts dt'))"
            "  if (dt.textContent === 'State') return dt.nextElementSibling.textContent;"
            "return null;")

    def queue_rows():
        return driver.execute_script(
            "return Array.from(document.querySelectorAll('#queue-rows tr'),"
            "  (tr) => Array.from(tr.cells, (td) => td.textContent));")

    # the queue reloads itself every 15 s: find and click the row in one
    # script so the row clicked is never one just replaced
    def click_row(text):
        C.check(driver.execute_script(
            "const tr = Array.from(document.querySelectorAll('#queue-rows tr'))"
            "  .find((r) => r.textContent.includes(arguments[0]));"
            "if (!tr) return false; tr.click(); return true;", text), "a queue row with %r to click" % text)

    # sign in through the form
    driver.get(base + "/console/")
    until(EC.visibility_of_element_located((By.ID, "email")), "the sign-in form")
    driver.find_element(By.ID, "email").send_keys("responder@example.org")
    driver.find_element(By.ID, "password").send_keys(cl.PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
    until(EC.visibility_of_element_located((By.ID, "queue")), "the queue after sign-in")
    until(lambda d: len(queue_rows()) == 2, "the two open alerts of S1 in the queue")
    rows = queue_rows()
    C.check(sorted(r[4] for r in rows) == ["potassium 6.3 above 5.1", "sodium low"]
            and all(r[5] == "open" for r in rows), "the open queue: S1's two alerts, open: %s" % rows)
    C.check(driver.find_element(By.ID, "who").text != "", "the header names who is signed in")
    driver.save_screenshot(os.path.join(ART, "queue.png"))

    # open the alert by its row and acknowledge it with the button
    click_row("potassium")
    until(EC.text_to_be_present_in_element((By.ID, "alert-h"), "potassium 6.3"), "the alert's page")
    until(lambda d: state_of_alert() == "open", "the alert's state shown as open")
    C.check("#alert/b1" in driver.current_url, "the alert's page is #alert/b1: %s" % driver.current_url)
    driver.find_element(By.ID, "note").send_keys("called the site")
    driver.find_element(By.ID, "ack").click()
    until(lambda d: state_of_alert() == "acknowledged", "the alert's state becomes acknowledged")
    # the status line survives the alert's refresh that showed the new state
    C.check(driver.find_element(By.ID, "action-result").text == "acknowledged",
            "the status line still says acknowledged: %r" % driver.find_element(By.ID, "action-result").text)
    C.check(E.sql("SELECT state FROM alert_lifecycle WHERE alert_id = 'b1'") == [("acknowledged",)],
            "the database has b1 acknowledged")
    C.check(any("ack" in li.text and "responder" in li.text
                for li in driver.find_elements(By.CSS_SELECTOR, "#events li")),
            "the events list the acknowledgement by the responder")
    driver.save_screenshot(os.path.join(ART, "alert.png"))

    # back to the queue: the open queue drops it, "all" shows it acknowledged
    driver.find_element(By.ID, "back").click()
    until(lambda d: [r[4] for r in queue_rows()] == ["sodium low"], "the open queue without b1")
    # someone else acknowledges b2 (the command line): the live stream's
    # change event drops its row at once, without a reload (the page's
    # status line names the change; a reload would only say "updated")
    r = subprocess.run([h.VIGIL, "alerts", "ack", "b2", "--as", "admin", "--conninfo", E.conninfo],
                       capture_output=True, text=True)
    C.check(r.returncode == 0, "b2 acknowledged by another user: %s" % r.stderr)
    until(lambda d: queue_rows() == [] and "b2 acknowledged" in d.find_element(By.ID, "updated").text,
          "the open queue drops b2 on the stream's change event")
    Select(driver.find_element(By.ID, "state")).select_by_value("")
    until(lambda d: ["potassium 6.3 above 5.1", "acknowledged"] in [[r[4], r[5]] for r in queue_rows()],
          "the whole queue shows b1 acknowledged")
    # ...and, shown with every state, a change updates the row in place
    r = subprocess.run([h.VIGIL, "alerts", "resolve", "b2", "--as", "admin", "--category", "other", "--note",
                        "done", "--conninfo", E.conninfo], capture_output=True, text=True)
    until(lambda d: ["sodium low", "resolved"] in [[r[4], r[5]] for r in queue_rows()]
          and "b2 resolved" in d.find_element(By.ID, "updated").text,
          "the whole queue shows b2 resolved from the stream")

    # the subject's page: the chart
    click_row("potassium")
    until(lambda d: "#alert/b1" in d.current_url and state_of_alert() == "acknowledged",
          "the alert's page again")
    driver.find_element(By.ID, "subject-link").click()
    until(EC.text_to_be_present_in_element((By.ID, "subject-h"), "SUBJ-7"), "the subject's page")
    until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#charts svg circle.point")) == 12,
          "12 points on the chart")
    svg = driver.find_element(By.CSS_SELECTOR, "#charts svg")
    out = driver.find_elements(By.CSS_SELECTOR, "#charts svg circle.point.out")
    C.check(len(out) == 2, "the two results above the range are marked: %d" % len(out))
    bands = driver.find_elements(By.CSS_SELECTOR, "#charts svg rect.band")
    C.check(len(bands) == 1 and float(bands[0].get_attribute("height")) > 1
            and bands[0].size["width"] > 100, "the reference band is drawn")
    # the band sits between the in-range points and below the out-of-range ones
    band_top = float(bands[0].get_attribute("y")) if bands else -1
    C.check(out and all(float(c.get_attribute("cy")) < band_top for c in out), "out-of-range points above the band")
    C.check(len(driver.find_elements(By.CSS_SELECTOR, "#charts svg polyline.line")) == 1, "the line through the points")
    C.check(len(driver.find_elements(By.CSS_SELECTOR, "#charts svg line.alert")) >= 1, "the alert marked on the chart")
    C.check(svg.size["width"] > 200 and svg.size["height"] > 100, "the chart has a size: %s" % svg.size)
    svg.screenshot(os.path.join(ART, "subject-chart.png"))
    driver.save_screenshot(os.path.join(ART, "subject.png"))

    # escalation policies, read only for the responder: the tiers in words,
    # no control to change them, the markup site id as text
    driver.find_element(By.ID, "nav-policies").click()
    until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#pol-list article.policy")) == 2,
          "the responder sees S1's two policies")
    text = driver.find_element(By.ID, "pol-list").text
    C.check("Tier 2: researcher:responder by email; 10 min to acknowledge" in text
            and "every 15 min until acknowledged" in text, "the policy in words: %r" % text)
    C.check("site " + EVIL_SITE in text and not driver.find_elements(By.CSS_SELECTOR, "#pol-list img"),
            "a site id holding markup is shown as text, no element made of it")
    C.check(not driver.find_elements(By.CSS_SELECTOR, "#pol-list input, #pol-list button")
            and not driver.find_element(By.ID, "pol-new").is_displayed(),
            "a responder gets no control to change a policy")

    # a study_admin edits: tier 2's deadline 10 -> 20 minutes, saved, stored, audited
    driver.find_element(By.ID, "signout").click()
    until(EC.visibility_of_element_located((By.ID, "email")), "the sign-in form after signing out")
    driver.find_element(By.ID, "email").clear()
    driver.find_element(By.ID, "email").send_keys("study_admin@example.org")
    driver.find_element(By.ID, "password").send_keys(cl.PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
    until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#pol-list form.policy")) == 2,
          "the study_admin's policy editor with two policies")
    forms = driver.find_elements(By.CSS_SELECTOR, "#pol-list form.policy")
    study_form = [f for f in forms if "every site" in f.find_element(By.TAG_NAME, "h3").text][0]
    deadline = study_form.find_elements(By.CSS_SELECTOR, "input.tier-deadline")
    C.check([x.get_attribute("value") for x in deadline] == ["15", "10"], "the deadlines in minutes")
    C.check(driver.find_element(By.CSS_SELECTOR, "label[for=%s]" % deadline[1].get_attribute("id")).text
            == "Minutes to acknowledge", "the deadline has its label")
    deadline[1].clear()
    deadline[1].send_keys("20")
    # a researcher id holding a comma is one id (one per line), not two
    people = study_form.find_elements(By.CSS_SELECTOR, "textarea.tier-people")[1]
    C.check(people.get_attribute("value") == "responder", "tier 2's researcher in its box")
    people.send_keys("\n" + COMMA_ID)
    study_form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    until(lambda d: study_form.find_element(By.CSS_SELECTOR, ".policy-result").text == "saved",
          "the policy saved")
    C.check(tier_deadlines() == [(1, 900), (2, 1200)], "the database holds tier 2's new deadline: %s"
            % tier_deadlines())
    t2 = E.sql("SELECT t.targets FROM escalation_policies p JOIN escalation_tiers t USING (policy_id) "
               "WHERE p.study_id = 'S1' AND p.site_id IS NULL AND p.severity = 'critical' AND t.tier = 2")
    C.check(t2 == [(["researcher:responder", "researcher:" + COMMA_ID],)],
            "a researcher id with a comma saved whole: %s" % t2)
    audit = E.sql("SELECT detail FROM alert_events WHERE kind = 'policy_set' AND actor = 'console:study_admin'")
    C.check(len(audit) == 1 and [t["ack_deadline_s"] for t in audit[0][0]["tiers"]] == [900, 1200],
            "an audit event records the change by the study_admin: %s" % audit)
    driver.save_screenshot(os.path.join(ART, "policy.png"))
    # on a phone's width the editor fits: no sideways scrolling
    driver.set_window_size(390, 844)
    until(lambda d: d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"),
          "the policy editor fits a phone's width")
    driver.save_screenshot(os.path.join(ART, "policy-phone.png"))
    driver.set_window_size(1280, 1000)

    # policy.c's refusal is shown next to the form; nothing changes (a tier
    # with nobody to page; deadlines out of bounds the browser refuses itself)
    study_form.find_element(By.CSS_SELECTOR, "fieldset.tier input[data-target=subscribers]").click()
    study_form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    until(lambda d: "tier 1 is empty" in study_form.find_element(By.CSS_SELECTOR, ".policy-result").text,
          "the validator's message under the form")
    C.check(tier_deadlines() == [(1, 900), (2, 1200)], "a refused policy changes nothing")

    # removing the site's policy (its id is markup): confirmed, gone from the
    # page and the tables, audited; the study-wide one stays
    forms = driver.find_elements(By.CSS_SELECTOR, "#pol-list form.policy")
    site_form = [f for f in forms if "every site" not in f.find_element(By.TAG_NAME, "h3").text][0]
    site_form.find_element(By.CSS_SELECTOR, "button.policy-remove").click()
    until(lambda d: EC.alert_is_present()(d), "the confirmation")
    driver.switch_to.alert.accept()
    until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#pol-list form.policy")) == 1 and
          "Removed" in d.find_element(By.ID, "pol-note").text, "one policy left on the page")
    C.check(E.sql("SELECT count(*) FROM escalation_policies WHERE study_id = 'S1' AND site_id = %s",
                  EVIL_SITE)[0][0] == 0 and tier_deadlines() == [(1, 900), (2, 1200)],
            "the site's policy removed, the study-wide one kept")
    C.check(E.sql("SELECT detail->>'site_id' FROM alert_events WHERE kind = 'policy_removed' "
                  "AND actor = 'console:study_admin'") == [(EVIL_SITE,)], "the removal audited")

    # the study_admin's own subscriptions page on a phone: quiet hours and
    # contact details, saved through the labelled controls (issue #15)
    driver.set_window_size(390, 844)
    driver.get(base + "/console/#subscriptions")
    until(lambda d: d.find_element(By.ID, "quiet-zone").get_attribute("value") != "" and
          d.find_element(By.ID, "contact-email").get_attribute("value") != "", "the quiet-hours and contact forms")
    for fid, v in (("quiet-start", "22:00"), ("quiet-end", "07:00")):
        # a time input's picker is the browser's own; set what a user picks
        driver.execute_script("arguments[0].value = arguments[1]", driver.find_element(By.ID, fid), v)
    z = driver.find_element(By.ID, "quiet-zone")
    z.clear()
    z.send_keys("Europe/Paris")
    driver.find_element(By.CSS_SELECTOR, "#quiet-form button[type=submit]").click()
    until(lambda d: "saved" in d.find_element(By.ID, "quiet-result").text, "quiet hours saved")
    C.check(E.sql("SELECT start_local::text, end_local::text, time_zone FROM researcher_quiet_hours "
                  "WHERE researcher_id = 'study_admin'") == [("22:00:00", "07:00:00", "Europe/Paris")],
            "quiet hours saved from the page: %s" % driver.find_element(By.ID, "quiet-result").text)
    ph = driver.find_element(By.ID, "contact-phone")
    ph.clear()
    ph.send_keys("+44 7700 900123")
    driver.find_element(By.CSS_SELECTOR, "#contact-form button[type=submit]").click()
    until(lambda d: "saved" in d.find_element(By.ID, "contact-result").text, "contact saved")
    C.check(E.sql("SELECT phone FROM researchers WHERE researcher_id = 'study_admin'") == [("+447700900123",)],
            "the phone saved from the page, spaces dropped: %s" % driver.find_element(By.ID, "contact-result").text)
    C.check(driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"),
            "no sideways scrolling on a 390 px wide phone")
    driver.save_screenshot(os.path.join(ART, "subscriptions-phone.png"))

    # the browser's console: no CSP violation, no error at all
    logs = driver.get_log("browser")
    csp = [x["message"] for x in logs if "Content Security Policy" in x["message"] or "Refused to" in x["message"]]
    # expected: the page's first question, "am I signed in?" (401 before the
    # sign-in), the browser's own favicon request (the console has none),
    # and the refused policy above (400, the answer the page shows)
    expected = ("/api/v1/session - Failed to load resource: the server responded with a status of 401",
                "/favicon.ico - Failed to load resource: the server responded with a status of 404",
                "/api/v1/studies/S1/policies - Failed to load resource: the server responded with a status of 400")
    errors = [x["message"] for x in logs if x["level"] == "SEVERE"
              and not any(e in x["message"] for e in expected)]
    C.check(not csp, "no Content-Security-Policy violation in the console: %s" % csp)
    C.check(not errors, "no error in the browser's console: %s" % errors)
    for name in ("queue.png", "alert.png", "subject-chart.png", "policy.png", "policy-phone.png",
                 "subscriptions-phone.png"):
        p = os.path.join(ART, name)
        C.check(os.path.getsize(p) > 1000, "screenshot %s saved" % p)
except TimeoutException:
    pass
finally:
    if driver is not None:
        driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
C.done()
