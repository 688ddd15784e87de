// Tasklane dashboard: the throughput chart (uPlot) and a job's live progress (Server-Sent Events).
(function () {
  "use strict";

  function drawChart(el, data) {
    const series = [data.minutes, data.succeeded, data.failed];
    const opts = {
      width: Math.max(320, el.clientWidth || 900), height: 220,
      scales: { x: { time: true } },
      series: [{}, { label: "succeeded", stroke: "#12804a", fill: "rgba(18,128,74,.08)" },
                   { label: "failed", stroke: "#c01048", fill: "rgba(192,16,72,.08)" }],
    };
    el.textContent = "";
    return new uPlot(opts, series, el);
  }

  function startChart() {
    const el = document.getElementById("throughput-chart");
    const source = document.getElementById("throughput-data");
    if (!el || !source || typeof uPlot === "undefined") return;
    let plot = drawChart(el, JSON.parse(source.textContent));
    // Once a minute a new bucket opens; fetch the series again (same origin, session cookie).
    setInterval(function () {
      fetch(el.dataset.url, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) { if (data) plot.setData([data.minutes, data.succeeded, data.failed]); });
    }, 60000);
  }

  function showProgress(job) {
    const p = job.progress || {};
    const box = document.getElementById("job-progress");
    if (box) {
      const bar = box.querySelector("progress");
      const text = box.querySelector(".progress-text");
      const pct = p.total ? (100 * (p.current || 0)) / p.total : 0;
      if (bar) bar.value = pct;
      if (text) text.textContent = (p.current ?? "—") + " / " + (p.total ?? "—");
    }
    const msg = document.getElementById("job-progress-message");
    if (msg) msg.textContent = p.message || "";
    const state = document.querySelector("#job-state .state");
    if (state && job.state) { state.textContent = job.state; state.className = "state state-" + job.state; }
  }

  function followJob() {
    const card = document.getElementById("job");
    if (!card || !card.dataset.events || typeof EventSource === "undefined") return;
    const events = new EventSource(card.dataset.events);
    const update = function (e) { showProgress(JSON.parse(e.data)); };
    events.addEventListener("state", update);
    events.addEventListener("progress", update);
    events.addEventListener("end", function (e) {
      events.close();
      showProgress(JSON.parse(e.data));
      refreshKeepingNotices();
    });
  }

  // The job is final: show its result or error and the Retry button. Only the content is
  // swapped, so a notice the page opened with ("Cancel requested") stays; a reload would
  // drop it, often before anyone could read it.
  function refreshKeepingNotices() {
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.text(); })
      .then(function (html) {
        const fresh = new DOMParser().parseFromString(html, "text/html").querySelector("main");
        const main = document.querySelector("main");
        if (!fresh || !main) { window.location.reload(); return; }
        main.querySelectorAll(":scope > :not(.flash)").forEach(function (el) { el.remove(); });
        fresh.querySelectorAll(":scope > :not(.flash)").forEach(function (el) {
          main.appendChild(document.importNode(el, true));
        });
      })
      .catch(function () { window.location.reload(); });
  }

  document.addEventListener("DOMContentLoaded", function () { startChart(); followJob(); });
})();
