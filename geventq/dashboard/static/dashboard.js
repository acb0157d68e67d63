// geventq dashboard: live updates by polling the JSON API. No framework, no build step.
// Everything from the server is put in the page as text (textContent), never as HTML.
"use strict";

(function () {
  const POLL_MS = 2000;
  const body = document.body;
  const root = body.dataset.root || "/";
  const STATES = ["queued", "started", "scheduled", "deferred", "failed", "finished", "canceled"];

  function el(tag, text, attrs) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    return node;
  }
  function link(href, text) { return el("a", text, { href: href }); }
  function queueUrl(name) { return root + "queues/" + encodeURIComponent(name); }
  function jobUrl(id) { return root + "jobs/" + encodeURIComponent(id); }
  function number(n) { return Number(n || 0).toLocaleString("en-US"); }
  function rate(perMinute) {  // jobs per minute, as show_rate() in display.py
    if (perMinute === null || perMinute === undefined) return "\u2014";
    if (perMinute < 10) return String(Number(perMinute.toFixed(1)));
    return number(Math.round(perMinute));
  }
  function duration(seconds) {
    if (!seconds) return "";
    if (seconds < 60) return seconds < 10 ? seconds.toFixed(2) + " s" : Math.round(seconds) + " s";
    const s = Math.floor(seconds);
    const parts = [[Math.floor(s / 86400), "d"], [Math.floor(s % 86400 / 3600), "h"],
                   [Math.floor(s % 3600 / 60), "m"], [s % 60, "s"]].filter(p => p[0]);
    return parts.slice(0, 2).map(p => p[0] + p[1]).join(" ");
  }
  function status(text, offline) {
    const node = document.getElementById("live-status");
    if (!node) return;
    node.hidden = false;
    node.textContent = text;
    node.classList.toggle("offline", !!offline);
  }
  function fillBody(table, rows, empty, columns) {
    const tbody = document.querySelector(table + " tbody");
    if (!tbody) return;
    tbody.replaceChildren();
    if (!rows.length) {
      const tr = el("tr");
      tr.appendChild(el("td", empty, { colspan: String(columns), class: "muted" }));
      tbody.appendChild(tr);
    }
    for (const cells of rows) {
      const tr = el("tr");
      for (const cell of cells) tr.appendChild(cell);
      tbody.appendChild(tr);
    }
  }
  function cell(content, cls) {
    const td = el("td", typeof content === "string" || typeof content === "number" ? content : null);
    if (content instanceof Node) td.appendChild(content);
    if (cls) td.className = cls;
    return td;
  }

  function renderOverview(data) {
    fillBody("#queues", data.queues.map(q => {
      const cells = [cell(link(queueUrl(q.name), q.name), "name")];
      for (const state of STATES) {
        const value = number(q[state]);
        const content = state === "queued" ? value : link(queueUrl(q.name) + "/" + state, value);
        cells.push(cell(content, state + (q[state] ? " nonzero" : "")));
      }
      cells.push(cell(q.queued ? duration(q.oldest_job_age) : ""));
      cells.push(cell(rate(q.finished_per_minute), "rate finished"));
      cells.push(cell(rate(q.failed_per_minute), "rate failed" + (q.failed_per_minute ? " nonzero" : "")));
      cells.push(cell(q.paused ? "yes" : "no", q.paused ? "paused yes" : "paused"));
      return cells;
    }), "no queues yet", 12);
    fillBody("#pools", data.pools.map(p => [
      cell(p.name || "(no pool)", "name"), cell(p.workers), cell(p.busy), cell(p.free), cell(p.hub_blocked),
    ]), "no workers", 5);
    fillBody("#workers", data.workers.map(w => {
      const name = cell(w.name, "name");
      name.appendChild(el("div", w.hostname + " pid " + w.pid, { class: "muted" }));
      const slots = el("td");
      slots.appendChild(el("meter", null, { min: "0", max: String(w.slots || 1), value: String(w.busy) }));
      slots.appendChild(document.createTextNode(" " + w.busy + " / " + w.free));
      const ids = el("td", null, { class: "ids" });
      for (const id of w.current_job_ids) { ids.appendChild(link(jobUrl(id), id)); ids.appendChild(document.createTextNode(" ")); }
      if (w.busy > w.current_job_ids.length) ids.appendChild(el("span", "+" + (w.busy - w.current_job_ids.length) + " more", { class: "muted" }));
      const state = el("td");
      state.appendChild(el("span", w.state, { class: "state state-" + w.state }));
      return [name, state, cell(w.queues.join(", ")), cell(w.pool), slots, cell(w.hub_blocked), ids];
    }), "no live workers", 7);
    const banner = document.getElementById("suspended");
    if (banner) banner.hidden = !data.suspended;
  }

  function renderJob(job) {
    const badge = document.getElementById("job-status");
    if (badge && badge.textContent !== job.status) {
      // a new status may bring a result, a traceback or other buttons: reload the page
      window.location.reload();
      return false;
    }
    for (const name of ["created_at", "enqueued_at", "started_at", "ended_at"]) {
      const node = document.getElementById("job-" + name);
      if (node && job[name]) node.textContent = job[name].slice(0, 19).replace("T", " ") + " UTC";
    }
    const progress = document.getElementById("job-progress");
    if (progress && job.progress) {
      const percent = String(Number(Number(job.progress.percent).toFixed(1)));  // as job.html shows it
      progress.replaceChildren(el("progress", null, { max: "100", value: percent }),
        document.createTextNode(" " + percent + "% " + (job.progress.message || "")));
    }
    return true;
  }

  function poll(url, render) {
    let timer = null;
    async function tick() {
      try {
        const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!response.ok) throw new Error("HTTP " + response.status);
        if (render(await response.json()) === false) return;
        status("live · updated " + new Date().toLocaleTimeString());
      } catch (err) {
        status("not updating: " + err.message, true);
      }
      timer = setTimeout(tick, POLL_MS);
    }
    timer = setTimeout(tick, POLL_MS);
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) { clearTimeout(timer); } else { clearTimeout(timer); tick(); }
    });
  }

  // forms that change something ask first
  document.addEventListener("submit", (event) => {
    const question = event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });

  if (body.dataset.liveOverview) poll(body.dataset.liveOverview, renderOverview);
  if (body.dataset.liveJob) poll(body.dataset.liveJob, renderJob);
})();
