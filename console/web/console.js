// vigil console: the pages' only script. Served from the binary as a file
// (the Content-Security-Policy allows scripts from 'self' only, no inline
// code). Every value from the server is put on the page with textContent,
// never as HTML, so names, notes and evidence holding markup stay text.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  let csrf = sessionStorage.getItem("vigil_csrf") || "";
  let cursor = null;
  let current = null;
  let timer = null;
  let live = null; // the EventSource of /api/v1/alerts/stream, while it works

  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
    const r = await fetch(path, { method, headers, credentials: "same-origin",
                                  body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    return { status: r.status, data };
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function show(id) {
    for (const s of ["signin", "queue", "alert", "subject", "reset", "subscriptions", "admin", "policies"]) $(s).hidden = s !== id;
  }

  let myStudies = [];
  let adminStudies = [];

  async function start() {
    if (/^#reset\//.test(location.hash)) { show("reset"); $("new-password").focus(); return; }
    const r = await api("GET", "/api/v1/session");
    if (r.status !== 200) { signedOut(); return; }
    $("who").textContent = r.data.name || r.data.researcher_id;
    myStudies = r.data.studies.map((x) => x.study_id);
    adminStudies = r.data.studies.filter((x) => x.role === "study_admin").map((x) => x.study_id);
    $("nav-admin").hidden = adminStudies.length === 0;
    $("nav").hidden = false;
    route();
  }

  function signedOut() {
    $("nav").hidden = true;
    if (timer) clearInterval(timer);
    if (live) { live.close(); live = null; }
    show("signin");
    $("email").focus();
  }

  function route() {
    const m = location.hash.match(/^#alert\/(.+)$/);
    const sm = location.hash.match(/^#subject\/([^/]+)\/(.+)$/);
    if (location.hash === "#subscriptions") openSubscriptions();
    else if (location.hash === "#admin") openAdmin();
    else if (location.hash === "#policies") openPolicies();
    else if (m) openAlert(decodeURIComponent(m[1]));
    else if (sm) openSubject(decodeURIComponent(sm[1]), decodeURIComponent(sm[2]));
    else openQueue();
  }

  async function openQueue() {
    show("queue");
    cursor = null;
    $("queue-rows").replaceChildren();
    await loadPage();
    if (timer) clearInterval(timer);
    const reload = () => { cursor = null; $("queue-rows").replaceChildren(); loadPage(); };
    // Live updates: new alerts arrive as Server-Sent Events and reload the
    // first page at once; others' acknowledgements, resolutions and
    // retractions arrive as "change" events and update or drop their row
    // (applyChange). Polling stays as the fallback (every 15 s while the
    // stream is not open: no EventSource, or refused with 503/401) and
    // every 60 s besides.
    startLive(reload);
    let ticks = 0;
    timer = setInterval(() => {
      ticks++;
      if ($("queue").hidden) return;
      if (live && live.readyState === EventSource.OPEN && ticks % 4 !== 0) return;
      reload();
    }, 15000);
  }

  function startLive(reload) {
    if (live || typeof EventSource === "undefined") return;
    live = new EventSource("/api/v1/alerts/stream");
    let pending = null;
    live.addEventListener("alert", () => {
      if ($("queue").hidden || pending) return;
      pending = setTimeout(() => { pending = null; reload(); }, 300);
    });
    live.addEventListener("change", (m) => {
      let d = null;
      try { d = JSON.parse(m.data); } catch (e) { return; }
      applyChange(d);
    });
    // A reconnect may have missed events in between: reload once open again.
    let opened = false;
    live.addEventListener("open", () => {
      if (opened && !$("queue").hidden) reload();
      opened = true;
    });
    live.addEventListener("error", () => {
      // CLOSED: refused (the browser does not retry a 503 or 401); the
      // interval polls instead. CONNECTING: the browser reconnects itself.
      if (live && live.readyState === EventSource.CLOSED) live = null;
    });
  }

  // A lifecycle change from the stream: the row of that alert (if shown)
  // gets the new state, or leaves when the queue shows another state.
  function applyChange(d) {
    if (!d || typeof d.alert_id !== "string" || typeof d.state !== "string") return;
    const want = $("state").value;
    for (const tr of Array.from($("queue-rows").rows)) {
      if (tr.dataset.alertId !== d.alert_id) continue;
      if (want && d.state !== want) tr.remove();
      else tr.cells[5].textContent = d.state;
    }
    $("updated").textContent = "updated " + new Date().toLocaleTimeString() + ": " + d.alert_id + " " + d.state;
  }

  async function loadPage() {
    const state = $("state").value;
    let q = "/api/v1/alerts?limit=50" + (state ? "&state=" + encodeURIComponent(state) : "");
    if (cursor) q += "&cursor=" + encodeURIComponent(cursor);
    const r = await api("GET", q);
    if (r.status === 401) { signedOut(); return; }
    if (r.status !== 200) { $("updated").textContent = "could not load (" + r.status + ")"; return; }
    for (const a of r.data.alerts) {
      const tr = el("tr");
      tr.tabIndex = 0;
      tr.dataset.alertId = a.alert_id;
      const sev = el("td");
      sev.append(el("span", a.severity, "sev-" + a.severity));
      tr.append(sev, el("td", a.detected_at.replace("T", " ").slice(0, 16)),
                el("td", a.study_id + " / " + a.site_id), el("td", a.subject_id),
                el("td", a.message), el("td", a.state));
      const go = () => { location.hash = "#alert/" + encodeURIComponent(a.alert_id); };
      tr.addEventListener("click", go);
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
      $("queue-rows").append(tr);
    }
    cursor = r.data.next_cursor;
    $("more").hidden = !cursor;
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  }

  // KEEP: leave the status line as it is (the refresh after an action).
  async function openAlert(id, keep) {
    show("alert");
    current = id;
    if (!keep) $("action-result").textContent = "";
    const r = await api("GET", "/api/v1/alerts/" + encodeURIComponent(id));
    if (r.status === 401) { signedOut(); return; }
    if (r.status !== 200) { $("alert-h").textContent = "Alert not found"; return; }
    const a = r.data;
    $("alert-h").textContent = a.message;
    $("subject-link").href = "#subject/" + encodeURIComponent(a.study_id) + "/" + encodeURIComponent(a.subject_id);
    const facts = $("alert-facts");
    facts.replaceChildren();
    for (const [k, v] of [["Severity", a.severity], ["State", a.state], ["Study", a.study_id],
                          ["Site", a.site_id], ["Subject", a.subject_id], ["Rule", a.rule_id],
                          ["Observed", a.observed_at], ["Detected", a.detected_at]]) {
      facts.append(el("dt", k), el("dd", v));
    }
    const ev = $("evidence");
    ev.replaceChildren();
    for (const e of a.evidence) ev.append(el("li", [e.loinc, e.value, e.unit, e.effective_at].filter((x) => x !== undefined).join(" ")));
    const n = $("notifications");
    n.replaceChildren();
    for (const x of a.notifications) n.append(el("li", x.channel + " to " + x.researcher_id + ": " + x.state + (x.sent_at ? " at " + x.sent_at : "") + (x.deferred_until ? " (quiet hours until " + x.deferred_until + ")" : "") + (x.last_error ? " (" + x.last_error + ")" : "")));
    const evs = $("events");
    evs.replaceChildren();
    for (const x of a.events) evs.append(el("li", x.recorded_at + " " + x.kind + " by " + x.actor));
  }

  // A subject's results per analyte as SVG: values over time, the reference
  // range as a band, out-of-range points in red, the subject's alerts as
  // dashed lines. Built with createElementNS and attributes only (no markup
  // strings, no inline styles: the CSP forbids them; colours are in CSS).
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  function chart(an, alerts) {
    const W = 600, H = 200, L = 50, R = 10, T = 10, B = 30;
    const pts = an.points.filter((p) => p.value !== null);
    const times = pts.map((p) => Date.parse(p.effective_at));
    const vals = pts.map((p) => p.value);
    const last = pts.length ? pts[pts.length - 1] : null;
    const lo = last && last.ref_low !== null ? last.ref_low : null;
    const hi = last && last.ref_high !== null ? last.ref_high : null;
    let ymin = Math.min(...vals, lo !== null ? lo : Infinity), ymax = Math.max(...vals, hi !== null ? hi : -Infinity);
    if (!isFinite(ymin) || !isFinite(ymax)) { ymin = 0; ymax = 1; }
    if (ymin === ymax) { ymin -= 1; ymax += 1; }
    let t0 = Math.min(...times), t1 = Math.max(...times);
    if (t0 === t1) { t0 -= 86400000; t1 += 86400000; }
    const x = (t) => L + (W - L - R) * (t - t0) / (t1 - t0);
    const y = (v) => T + (H - T - B) * (1 - (v - ymin) / (ymax - ymin));
    const s = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "chart", role: "img" });
    s.append(svg("title", {}, an.loinc + " (" + (an.unit || "") + "): " + pts.length + " results"));
    if (lo !== null && hi !== null) s.append(svg("rect", { class: "band", x: L, width: W - L - R, y: y(hi), height: Math.max(1, y(lo) - y(hi)) }));
    s.append(svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
    s.append(svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
    s.append(svg("text", { x: 2, y: T + 10 }, ymax.toPrecision(3)));
    s.append(svg("text", { x: 2, y: H - B }, ymin.toPrecision(3)));
    s.append(svg("text", { x: L, y: H - 8 }, new Date(t0).toISOString().slice(0, 10)));
    s.append(svg("text", { x: W - R - 70, y: H - 8 }, new Date(t1).toISOString().slice(0, 10)));
    for (const a of alerts) {
      const t = Date.parse(a.observed_at);
      if (t < t0 || t > t1) continue;
      const l = svg("line", { class: "alert", x1: x(t), x2: x(t), y1: T, y2: H - B });
      l.append(svg("title", {}, a.severity + ": " + a.message));
      s.append(l);
    }
    s.append(svg("polyline", { class: "line", points: pts.map((p, i) => x(times[i]) + "," + y(p.value)).join(" ") }));
    pts.forEach((p, i) => {
      const out = (p.ref_low !== null && p.value < p.ref_low) || (p.ref_high !== null && p.value > p.ref_high);
      const c = svg("circle", { class: out ? "point out" : "point", cx: x(times[i]), cy: y(p.value), r: 4 });
      c.append(svg("title", {}, p.effective_at + ": " + p.value + " " + (an.unit || "")));
      s.append(c);
    });
    return s;
  }

  async function openSubject(study, subject) {
    show("subject");
    $("subject-h").textContent = "Subject " + subject + " (" + study + ")";
    const r = await api("GET", "/api/v1/subjects/" + encodeURIComponent(study) + "/" + encodeURIComponent(subject) + "/timeline");
    if (r.status === 401) { signedOut(); return; }
    const box = $("charts");
    box.replaceChildren();
    if (r.status !== 200) { $("subject-note").textContent = "could not load (" + r.status + ")"; return; }
    $("subject-note").textContent = r.data.analytes.length + " analytes, " + r.data.alerts.length + " alerts" + (r.data.truncated ? " (first 5000 results only)" : "");
    for (const an of r.data.analytes) {
      box.append(el("h3", an.loinc + (an.unit ? " (" + an.unit + ")" : "")), chart(an, r.data.alerts));
    }
  }

  // Self-service subscriptions: the caller's own rows, in their studies.
  async function openSubscriptions() {
    show("subscriptions");
    const sel = $("sub-study");
    sel.replaceChildren();
    for (const st of myStudies) { const o = el("option", st); o.value = st; sel.append(o); }
    const r = await api("GET", "/api/v1/subscriptions");
    if (r.status === 401) { signedOut(); return; }
    const rows = $("subs-rows");
    rows.replaceChildren();
    if (r.status !== 200) return;
    for (const x of r.data.subscriptions) {
      const tr = el("tr");
      const del = el("button", "Remove");
      del.type = "button";
      del.setAttribute("aria-label", "Remove " + x.study_id + " " + (x.site_id || "every site"));
      del.addEventListener("click", async () => {
        const q = "?study=" + encodeURIComponent(x.study_id) + (x.site_id ? "&site=" + encodeURIComponent(x.site_id) : "");
        const d = await api("DELETE", "/api/v1/subscriptions" + q);
        $("subs-result").textContent = d.status === 204 ? "removed" : ((d.data && d.data.message) || ("failed: " + d.status));
        openSubscriptions();
      });
      const td = el("td");
      td.append(del);
      tr.append(el("td", x.study_id), el("td", x.site_id || "every site"), el("td", x.min_severity),
                el("td", x.channels.join(", ")), td);
      rows.append(tr);
    }
    showMyDetails(r.data.quiet_hours);
  }

  // ---- quiet hours and contact details (issue #15) ------------------------
  // Kept apart from the rest of the page's code: the subscriptions page
  // calls showMyDetails once it has loaded, start-up calls wireMyDetails.
  function sayIn(id, r, okText) {
    $(id).textContent = r.status === 200 ? okText : ((r.data && r.data.message) || ("failed: " + r.status));
  }

  async function showMyDetails(quiet) {
    showQuiet(quiet);
    const c = await api("GET", "/api/v1/me/contact");
    if (c.status !== 200) return;
    $("contact-email").value = c.data.email || "";
    $("contact-phone").value = c.data.phone || "";
  }

  function showQuiet(quiet) {
    $("quiet-start").value = quiet ? quiet.start.slice(0, 5) : "";
    $("quiet-end").value = quiet ? quiet.end.slice(0, 5) : "";
    $("quiet-zone").value = quiet ? quiet.time_zone
      : (Intl.DateTimeFormat().resolvedOptions().timeZone || "");
    $("quiet-result").textContent = !quiet ? "No quiet hours."
      : quiet.quiet_until ? "Quiet now, until " + quiet.quiet_until + "." : "";
  }

  async function saveQuiet(quiet) {
    const r = await api("PUT", "/api/v1/subscriptions", { quiet_hours: quiet });
    if (r.status === 200) showQuiet(r.data.quiet_hours);
    const now = r.status === 200 && r.data.quiet_hours && r.data.quiet_hours.quiet_until;
    sayIn("quiet-result", r, (quiet ? "Quiet hours saved." : "Quiet hours removed.") +
          (now ? " Quiet now, until " + now + "." : ""));
  }

  function wireMyDetails() {
    const zones = $("quiet-zones");
    const names = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
    for (const z of names) { const o = el("option"); o.value = z; zones.append(o); }
    $("quiet-form").addEventListener("submit", (e) => {
      e.preventDefault();
      saveQuiet({ start: $("quiet-start").value, end: $("quiet-end").value, time_zone: $("quiet-zone").value.trim() });
    });
    $("quiet-clear").addEventListener("click", () => saveQuiet(null));
    $("contact-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const phone = $("contact-phone").value.replace(/[\s()-]/g, "");
      const r = await api("PUT", "/api/v1/me/contact", { email: $("contact-email").value.trim(), phone: phone || null });
      sayIn("contact-result", r, "Contact details saved.");
    });
  }
  // ---- end of quiet hours and contact details -------------------------------

  // A study <select> with STUDIES as options, kept (with its choice) when
  // it has them already.
  function fillStudies(sel, studies) {
    if (sel.options.length === studies.length) return;
    sel.replaceChildren();
    for (const st of studies) { const o = el("option", st); o.value = st; sel.append(o); }
  }

  // Study administration for study-admins: sites and who holds which role.
  function adminStudy() { return $("admin-study").value; }
  function adminSay(r, okStatus, okText) {
    $("admin-result").textContent = r.status === okStatus ? okText : ((r.data && r.data.message) || ("failed: " + r.status));
  }

  async function openAdmin() {
    show("admin");
    fillStudies($("admin-study"), adminStudies);
    const study = encodeURIComponent(adminStudy());
    const s = await api("GET", "/api/v1/studies/" + study + "/sites");
    if (s.status === 401) { signedOut(); return; }
    $("admin-sites").replaceChildren(...(s.status === 200 ? s.data.sites.map((x) => el("li", x.site_id + ": " + x.name)) : []));
    const p = await api("GET", "/api/v1/studies/" + study + "/researchers");
    const rows = $("admin-people");
    rows.replaceChildren();
    if (p.status !== 200) return;
    for (const x of p.data.researchers) {
      const td = el("td");
      if (x.role) {
        const b = el("button", "Remove role");
        b.type = "button";
        b.setAttribute("aria-label", "Remove the role of " + x.researcher_id);
        b.addEventListener("click", async () => {
          const r = await api("DELETE", "/api/v1/studies/" + study + "/grants/" + encodeURIComponent(x.researcher_id));
          adminSay(r, 204, "removed");
          openAdmin();
        });
        td.append(b);
      }
      const tr = el("tr");
      tr.append(el("td", x.researcher_id), el("td", x.name), el("td", x.role || "-"),
                el("td", x.subscribed ? "yes" : "no"), td);
      rows.append(tr);
    }
  }

  // ---- escalation policies -------------------------------------------------
  // Every member of a study sees its policies (responders should know who is
  // paged after them); a study_admin edits them with a form per policy:
  // targets and channels as checkboxes, deadlines in minutes. Saving sends
  // the one policy to PUT /api/v1/studies/{study}/policies, whose validation
  // (alerting/policy.c, policy_store.c) is the only one: its messages are
  // shown under the form that was saved.
  const POLICY_ROLES = ["role:site_coordinator", "role:investigator", "role:safety_physician", "role:medical_monitor"];
  const POLICY_CHANNELS = ["email", "sms", "subscribed"];
  let polSeq = 0;

  function polStudy() { return $("pol-study").value; }

  // Seconds as minutes, exact enough that saving a form unchanged gives the
  // same seconds back (61 s: 1.017 min -> 61 s).
  function minutes(s) { return Math.round(s / 0.06) / 1000; }

  function tierText(t) {
    return "Tier " + t.tier + ": " + t.targets.join(", ") + " by " + t.channels.join(", ") +
      "; " + minutes(t.ack_deadline_s) + " min to acknowledge";
  }

  function policyTitle(p) {
    return p.severity + " alerts, " + (p.site_id ? "site " + p.site_id : "every site");
  }

  // A labelled input: returns [label, input].
  function polField(text, type, value) {
    const id = "pol-f" + (++polSeq);
    const i = el("input");
    i.id = id;
    i.type = type;
    if (type === "checkbox") i.checked = !!value;
    else if (value !== undefined && value !== null) i.value = String(value);
    const l = el("label", text);
    l.htmlFor = id;
    return [l, i];
  }

  function policyView(p) {
    const box = el("article", undefined, "policy");
    box.append(el("h3", policyTitle(p)));
    const ol = el("ul");
    for (const t of p.tiers) ol.append(el("li", tierText(t)));
    if (p.tiers.length) ol.append(el("li", "then the last tier again every " + minutes(p.repeat_last_s) + " min until acknowledged"));
    else ol.append(el("li", p.digest ? "no escalation; a daily digest e-mail of unacknowledged alerts" : "no escalation"));
    box.append(ol);
    return box;
  }

  function tierEditor(t, n) {
    const fs = el("fieldset", undefined, "tier");
    fs.append(el("legend", "Tier " + n));
    const targets = el("fieldset");
    targets.append(el("legend", "Who"));
    for (const name of ["subscribers"].concat(POLICY_ROLES)) {
      const [l, i] = polField(name.replace(/^role:/, "").replace(/_/g, " "), "checkbox", t.targets.includes(name));
      i.dataset.target = name;
      l.prepend(i);
      targets.append(l);
    }
    // One researcher id per line: an id may hold a comma, never a newline.
    const people = t.targets.filter((x) => x.startsWith("researcher:")).map((x) => x.slice(11));
    const pid = "pol-f" + (++polSeq);
    const pi = el("textarea");
    pi.id = pid;
    pi.rows = Math.max(1, people.length);
    pi.value = people.join("\n");
    pi.className = "tier-people";
    const pl = el("label", "Researchers (ids, one per line)");
    pl.htmlFor = pid;
    pl.className = "block";
    targets.append(pl, pi);
    const channels = el("fieldset");
    channels.append(el("legend", "How"));
    for (const name of POLICY_CHANNELS) {
      const [l, i] = polField(name === "subscribed" ? "as each subscribed" : name, "checkbox", t.channels.includes(name));
      i.dataset.channel = name;
      l.prepend(i);
      channels.append(l);
    }
    const [dl, di] = polField("Minutes to acknowledge", "number", minutes(t.ack_deadline_s));
    dl.className = "block";
    di.className = "tier-deadline";
    di.min = "1";
    di.max = "1440";
    di.step = "any";
    di.required = true;
    const rm = el("button", "Remove tier " + n);
    rm.type = "button";
    rm.addEventListener("click", () => { const f = fs.closest("form"); fs.remove(); renumberTiers(f); });
    fs.append(targets, channels, dl, di, rm);
    return fs;
  }

  function renumberTiers(form) {
    form.querySelectorAll("fieldset.tier").forEach((fs, k) => {
      fs.querySelector("legend").textContent = "Tier " + (k + 1);
      fs.querySelector(":scope > button").textContent = "Remove tier " + (k + 1);
    });
  }

  // The form's policy in the file format of `vigil policy set` (policy.h).
  function policyOfForm(form, p) {
    const body = { study: polStudy(), severity: p.severity, tiers: [] };
    if (p.site_id) body.site = p.site_id;
    const rep = Number(form.querySelector(".policy-repeat").value);
    if (p.severity === "critical") body.repeat_last = Math.round(rep * 60);
    if (p.severity === "warning") body.digest = form.querySelector(".policy-digest").checked;
    for (const fs of form.querySelectorAll("fieldset.tier")) {
      const targets = Array.from(fs.querySelectorAll("input[data-target]:checked"), (i) => i.dataset.target);
      for (const id of fs.querySelector(".tier-people").value.split("\n")) {
        if (id.trim()) targets.push("researcher:" + id.trim());
      }
      const channels = Array.from(fs.querySelectorAll("input[data-channel]:checked"), (i) => i.dataset.channel);
      body.tiers.push({ targets, channels, ack_deadline: Math.round(Number(fs.querySelector(".tier-deadline").value) * 60) });
    }
    return body;
  }

  // P is stored (STORED): it gets a Remove button too.
  function policyEditor(p, stored) {
    const form = el("form", undefined, "policy");
    form.append(el("h3", policyTitle(p)));
    const tiers = el("div");
    p.tiers.forEach((t, k) => tiers.append(tierEditor(t, k + 1)));
    form.append(tiers);
    if (p.severity === "critical") {
      const add = el("button", "Add a tier");
      add.type = "button";
      add.addEventListener("click", () => {
        tiers.append(tierEditor({ targets: [], channels: ["email"], ack_deadline_s: 900 }, tiers.children.length + 1));
      });
      const [rl, ri] = polField("Then repeat the last tier every (minutes)", "number", minutes(p.repeat_last_s));
      ri.className = "policy-repeat";
      ri.min = "1";
      ri.max = "1440";
      ri.step = "any";
      form.append(add, rl, ri);
    } else {
      const [dl, di] = polField("Daily digest e-mail of unacknowledged warnings", "checkbox", p.digest);
      di.className = "policy-digest";
      dl.prepend(di);
      form.append(dl);
    }
    const save = el("button", "Save " + policyTitle(p));
    save.type = "submit";
    const result = el("p", undefined, "policy-result");
    result.setAttribute("role", "alert");
    form.append(save);
    if (stored) {
      // Removing it: its alerts follow the study-wide or built-in policy.
      const del = el("button", "Remove " + policyTitle(p));
      del.type = "button";
      del.className = "policy-remove";
      del.addEventListener("click", async () => {
        if (!window.confirm("Remove the policy for " + policyTitle(p) + "? Its alerts then follow the " +
                            (p.site_id ? "study-wide" : "built-in") + " policy.")) return;
        const q = "?severity=" + encodeURIComponent(p.severity) + (p.site_id ? "&site=" + encodeURIComponent(p.site_id) : "");
        const r = await api("DELETE", "/api/v1/studies/" + encodeURIComponent(polStudy()) + "/policies" + q);
        if (r.status === 401) { signedOut(); return; }
        if (r.status === 204) { await openPolicies(); $("pol-note").textContent = "Removed: " + policyTitle(p) + "."; return; }
        result.className = "policy-result error";
        result.textContent = (r.data && r.data.message) || ("failed: " + r.status);
      });
      form.append(del);
    }
    form.append(result);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const r = await api("PUT", "/api/v1/studies/" + encodeURIComponent(polStudy()) + "/policies", policyOfForm(form, p));
      if (r.status === 401) { signedOut(); return; }
      result.className = "policy-result" + (r.status === 200 ? "" : " error");
      result.textContent = r.status === 200 ? "saved" : ((r.data && r.data.message) || ("failed: " + r.status));
    });
    return form;
  }

  async function openPolicies() {
    show("policies");
    fillStudies($("pol-study"), myStudies);
    const list = $("pol-list");
    list.replaceChildren();
    $("pol-note").textContent = "";
    const r = await api("GET", "/api/v1/studies/" + encodeURIComponent(polStudy()) + "/policies");
    if (r.status === 401) { signedOut(); return; }
    if (r.status !== 200) { $("pol-note").textContent = "could not load (" + r.status + ")"; return; }
    const edit = adminStudies.includes(polStudy());
    $("pol-new").hidden = !edit;
    if (r.data.defaults) {
      $("pol-note").textContent = "No policy of the study's own: the built-in one applies (critical: the subscribers at once, " +
        "the safety physician after 15 minutes, again every 15 minutes until acknowledged; warning: no escalation)." +
        (edit ? " Add one below." : "");
    } else if (!edit) {
      $("pol-note").textContent = "Read only: study administrators change these.";
    }
    for (const p of r.data.policies) list.append(edit ? policyEditor(p, true) : policyView(p));
  }

  function initPolicies() {
    $("pol-study").addEventListener("change", openPolicies);
    $("pol-new").addEventListener("submit", (e) => {
      e.preventDefault();
      const p = { site_id: $("pol-new-site").value.trim() || null, severity: $("pol-new-severity").value,
                  repeat_last_s: 900, digest: false, tiers: [] };
      if (p.severity === "critical") p.tiers.push({ targets: ["subscribers"], channels: ["subscribed"], ack_deadline_s: 900 });
      const f = policyEditor(p);
      $("pol-list").append(f);
      f.querySelector("input").focus();
    });
  }

  async function change(action) {
    const body = { note: $("note").value || undefined };
    if (action === "resolve") body.category = $("category").value;
    const r = await api("POST", "/api/v1/alerts/" + encodeURIComponent(current) + "/" + action, body);
    $("action-result").textContent = r.status === 200 ? r.data.result : ((r.data && r.data.message) || ("failed: " + r.status));
    if (r.status === 200) openAlert(current, true);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("signin-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const r = await api("POST", "/api/v1/session", { email: $("email").value, password: $("password").value });
      $("password").value = "";
      if (r.status === 200) {
        csrf = r.data.csrf_token;
        sessionStorage.setItem("vigil_csrf", csrf);
        $("signin-error").textContent = "";
        start();
      } else {
        $("signin-error").textContent = (r.data && r.data.message) || ("sign-in failed: " + r.status);
      }
    });
    $("forgot").addEventListener("click", async () => {
      const r = await api("POST", "/api/v1/password-reset", { email: $("email").value });
      $("signin-error").textContent = r.status === 202 ? "If that address has an account, a link is on its way." : ((r.data && r.data.message) || ("failed: " + r.status));
    });
    $("reset-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const token = location.hash.replace(/^#reset\//, "");
      const r = await api("POST", "/api/v1/password-reset/confirm", { token, password: $("new-password").value });
      $("new-password").value = "";
      if (r.status === 204) { $("reset-result").textContent = "Done: sign in with the new password."; location.hash = ""; signedOut(); }
      else $("reset-result").textContent = (r.data && r.data.message) || ("failed: " + r.status);
    });
    $("signout").addEventListener("click", async () => {
      await api("DELETE", "/api/v1/session");
      csrf = "";
      sessionStorage.removeItem("vigil_csrf");
      signedOut();
    });
    $("state").addEventListener("change", openQueue);
    $("nav-queue").addEventListener("click", (e) => { e.preventDefault(); location.hash = ""; route(); });
    $("admin-study").addEventListener("change", openAdmin);
    $("site-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const r = await api("PUT", "/api/v1/studies/" + encodeURIComponent(adminStudy()) + "/sites/" +
                          encodeURIComponent($("site-id").value), { name: $("site-name").value });
      adminSay(r, 200, "site saved");
      if (r.status === 200) openAdmin();
    });
    $("grant-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const r = await api("PUT", "/api/v1/studies/" + encodeURIComponent(adminStudy()) + "/grants/" +
                          encodeURIComponent($("grant-researcher").value), { role: $("grant-role").value });
      adminSay(r, 200, "role granted");
      if (r.status === 200) openAdmin();
    });
    $("subs-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const channels = [];
      if ($("sub-email").checked) channels.push("email");
      if ($("sub-sms").checked) channels.push("sms");
      const r = await api("PUT", "/api/v1/subscriptions", { study_id: $("sub-study").value,
        site_id: $("sub-site").value || null, min_severity: $("sub-severity").value, channels });
      $("subs-result").textContent = r.status === 200 ? "saved" : ((r.data && r.data.message) || ("failed: " + r.status));
      if (r.status === 200) openSubscriptions();
    });
    wireMyDetails();
    $("more").addEventListener("click", loadPage);
    $("back").addEventListener("click", (e) => { e.preventDefault(); location.hash = ""; });
    $("subject-back").addEventListener("click", (e) => { e.preventDefault(); location.hash = ""; });
    $("ack").addEventListener("click", () => change("ack"));
    $("resolve").addEventListener("click", () => change("resolve"));
    initPolicies();
    window.addEventListener("hashchange", route);
    start();
  });
})();
