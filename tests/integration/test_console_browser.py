"""The console's pages in a real browser: Debian's chromium, headless, driven
by Selenium through chromium-driver, against a real `vigil console`.

A responder signs in through the page's form, sees the open-alert queue,
opens an alert, acknowledges it with the button (the page sends the CSRF
token it got at sign-in), sees the alert's state become acknowledged and
the open queue drop it, then opens the subject's page and checks that the
SVG chart is drawn: one circle per result, out-of-range ones marked, the
reference band, the alert line. The browser's console must hold no
Content-Security-Policy violation (nor any other error). Screenshots of the
queue, the alert and the chart are saved under build/artifacts/console/
(the directory is printed). Every wait is a WebDriverWait with a deadline.

Never skipped: without chromium or chromium-driver the test fails and says
which Debian package is missing.
"""
import os
import shutil
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
for old in ("failed.png", "queue.png", "alert.png", "subject-chart.png", "subject.png"):
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
    # (the page's "acknowledged" status line is cleared at once by the
    # alert's reload, so the state shown is what is waited for)
    until(lambda d: state_of_alert() == "acknowledged", "the alert's state becomes acknowledged")
    C.check(E.sql("SELECT state FROM alert_lifecycle WHERE alert_id = 'b1'") == [("acknowledged",)],
            "the database has b1 acknowledged")
    C.check(any("ack" in li.text and "responder" in li.text
                for li in driver.find_elements(By.CSS_SELECTOR, "#events li")),
            "the events list the acknowledgement by the responder")
    driver.save_screenshot(os.path.join(ART, "alert.png"))

    # back to the queue: the open queue drops it, "all" shows it acknowledged
    driver.find_element(By.ID, "back").click()
    until(lambda d: [r[4] for r in queue_rows()] == ["sodium low"], "the open queue without b1")
    Select(driver.find_element(By.ID, "state")).select_by_value("")
    until(lambda d: ["potassium 6.3 above 5.1", "acknowledged"] in [[r[4], r[5]] for r in queue_rows()],
          "the whole queue shows b1 acknowledged")

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

    # my subscriptions on a phone: quiet hours and contact details, saved
    # through the labelled controls (issue #15)
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
                  "WHERE researcher_id = 'responder'") == [("22:00:00", "07:00:00", "Europe/Paris")],
            "quiet hours saved from the page: %s" % driver.find_element(By.ID, "quiet-result").text)
    ph = driver.find_element(By.ID, "contact-phone")
    ph.clear()
    ph.send_keys("+44 7700 900123")
    driver.find_element(By.CSS_SELECTOR, "#contact-form button[type=submit]").click()
    until(lambda d: "saved" in d.find_element(By.ID, "contact-result").text, "contact saved")
    C.check(E.sql("SELECT phone FROM researchers WHERE researcher_id = 'responder'") == [("+447700900123",)],
            "the phone saved from the page, spaces dropped: %s" % driver.find_element(By.ID, "contact-result").text)
    C.check(driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"),
            "no sideways scrolling on a 390 px wide phone")
    driver.save_screenshot(os.path.join(ART, "subscriptions-phone.png"))

    # the browser's console: no CSP violation, no error at all
    logs = driver.get_log("browser")
    csp = [x["message"] for x in logs if "Content Security Policy" in x["message"] or "Refused to" in x["message"]]
    # expected: the page's first question, "am I signed in?" (401 before the
    # sign-in), and the browser's own favicon request (the console has none)
    expected = ("/api/v1/session - Failed to load resource: the server responded with a status of 401",
                "/favicon.ico - Failed to load resource: the server responded with a status of 404")
    errors = [x["message"] for x in logs if x["level"] == "SEVERE"
              and not any(e in x["message"] for e in expected)]
    C.check(not csp, "no Content-Security-Policy violation in the console: %s" % csp)
    C.check(not errors, "no error in the browser's console: %s" % errors)
    for name in ("queue.png", "alert.png", "subject-chart.png", "subscriptions-phone.png"):
        p = os.path.join(ART, name)
        C.check(os.path.getsize(p) > 1000, "screenshot %s saved" % p)
except TimeoutException:
    pass
finally:
    if driver is not None:
        driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
C.done()
