// Live dashboard for the Sharing Bus views: polls the JSON API every 2 s. No framework, no CDN.
// Everything from the API is inserted with textContent (never innerHTML), so data cannot inject markup.
"use strict";
(() => {
  const POLL_MS = 2000;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  let catalogue = null; // name -> factor

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }

  async function getJSON(url) {
    const r = await fetch(url, { cache: "no-store", headers: { Accept: "application/json" } });
    let body = {};
    try { body = await r.json(); } catch (e) { body = {}; }
    return { status: r.status, body };
  }

  function label(name) { return (catalogue && catalogue[name] && catalogue[name].label) || name; }
  function kind(name) { return (catalogue && catalogue[name] && catalogue[name].kind) || "R"; }

  function cell(value, max, area, factor, extra) {
    const td = el("td", { class: "cell " + (extra || ""), "data-area": area, "data-factor": factor });
    if (value === null || value === undefined) {
      td.classList.add("sup");
      td.textContent = "*";
      td.title = "suppressed";
    } else if (value === 0) {
      td.classList.add("zero");
      td.textContent = "0";
    } else {
      td.textContent = String(value);
      if (!extra) {
        const a = 0.12 + 0.78 * Math.min(1, value / Math.max(1, max));
        const rgb = kind(factor) === "P" ? "22, 128, 84" : "201, 42, 42";
        td.style.background = `rgba(${rgb}, ${a.toFixed(2)})`;
        if (a > 0.55) td.style.color = "#fff";
      }
    }
    return td;
  }

  function renderHeat(t) {
    $("week").textContent = t.week || "(no data yet)";
    $("threshold").textContent = String(t.threshold);
    const table = $("heat");
    const max = Math.max(1, ...t.cells.flat().filter((v) => typeof v === "number"));
    const domains = el("tr", {}, el("th", {}));
    let prev = null;
    let span = null;
    for (const f of t.cols) {
      const d = (catalogue && catalogue[f] && catalogue[f].domain) || "";
      if (d !== prev) { span = el("th", { class: "domain", colspan: "1", text: d }); domains.append(span); prev = d; }
      else span.setAttribute("colspan", String(Number(span.getAttribute("colspan")) + 1));
    }
    domains.append(el("th", {}));
    const heads = el("tr", {}, el("th", { class: "area", text: "Area" }));
    for (const f of t.cols) heads.append(el("th", { class: "factor " + kind(f), title: f }, el("span", { text: label(f) })));
    heads.append(el("th", { class: "factor total" }, el("span", { text: "All factors" })));
    const body = el("tbody");
    t.rows.forEach((area, i) => {
      const tr = el("tr", {}, el("th", { class: "area", text: area }));
      t.cols.forEach((f, j) => tr.append(cell(t.cells[i][j], max, area, f)));
      tr.append(cell(t.row_totals[i], max, area, "ALL", "total"));
      body.append(tr);
    });
    const foot = el("tr", {}, el("th", { class: "area total", text: "All areas" }));
    t.cols.forEach((f, j) => foot.append(cell(t.col_totals[j], max, "ALL", f, "total")));
    foot.append(cell(t.total, max, "ALL", "ALL", "total"));
    body.append(foot);
    table.replaceChildren(el("thead", {}, domains, heads), body);
  }

  function sparkline(series) {
    const w = 180, h = 30, pad = 3;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("preserveAspectRatio", "none");
    const values = series.map((p) => p[1]);
    const max = Math.max(1, ...values.filter((v) => typeof v === "number"));
    const x = (i) => (series.length < 2 ? w / 2 : pad + (i * (w - 2 * pad)) / (series.length - 1));
    const y = (v) => h - pad - (v / max) * (h - 2 * pad);
    let run = [];
    const flush = () => {
      if (run.length) {
        const line = document.createElementNS(SVG, "polyline");
        line.setAttribute("points", (run.length === 1 ? [run[0], [run[0][0] + 0.01, run[0][1]]] : run).map((p) => p.join(",")).join(" "));
        svg.append(line);
      }
      run = [];
    };
    values.forEach((v, i) => {
      if (typeof v === "number") run.push([x(i).toFixed(1), y(v).toFixed(1)]);
      else {
        flush();
        const gap = document.createElementNS(SVG, "rect");
        gap.setAttribute("class", "gap");
        gap.setAttribute("x", (x(i) - 1).toFixed(1));
        gap.setAttribute("y", String(h - 4));
        gap.setAttribute("width", "2");
        gap.setAttribute("height", "4");
        svg.append(gap);
      }
    });
    flush();
    return svg;
  }

  function renderTrends(trends) {
    const box = $("sparks");
    const cards = [];
    for (const [name, series] of Object.entries(trends)) {
      const last = series.length ? series[series.length - 1][1] : 0;
      const value = last === null ? "*" : String(last);
      cards.push(
        el("div", { class: "spark " + kind(name), "data-factor": name, title: `${label(name)}: weekly total (* = suppressed)` },
          el("div", { class: "label" }, el("span", { class: "value", text: value }), label(name)),
          sparkline(series)),
      );
    }
    box.replaceChildren(...cards);
  }

  function renderCohort(resp) {
    const section = $("cohort");
    if (resp.status !== 200) { section.hidden = true; $("cohort-table").replaceChildren(); return; }
    section.hidden = false;
    const head = el("tr", {}, el("th", { text: "#" }), el("th", { text: "Person token" }), el("th", { text: "Score" }), el("th", { text: "Why" }));
    const rows = resp.body.cohort.map((p, i) =>
      el("tr", { "data-token": p.person_token },
        el("td", { text: String(i + 1) }),
        el("td", { class: "token", text: p.person_token }),
        el("td", { class: "score", text: Number(p.score).toFixed(1) }),
        el("td", { class: "why", text: (p.explanation || []).slice(0, 2).join("; ") })));
    $("cohort-table").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
  }

  function renderHealth(h) {
    const items = [];
    for (const [k, v] of Object.entries(h)) {
      if (k === "tier" || k === "recipient") continue;
      items.push(el("dt", { text: k.replaceAll("_", " ") }), el("dd", { text: v === null ? "—" : typeof v === "object" ? JSON.stringify(v) : String(v) }));
    }
    $("health-list").replaceChildren(...items);
    const ok = h.status === "ok";
    $("status").textContent = ok ? "pipeline ok" : `pipeline ${h.status || "unknown"}`;
    $("status").className = "pill " + (ok ? "ok" : "bad");
  }

  async function tick() {
    try {
      if (!catalogue) {
        const f = await getJSON("/api/factors");
        if (f.status === 200) catalogue = Object.fromEntries(f.body.factors.map((x) => [x.name, x]));
      }
      const [areas, trends, health, cohort] = await Promise.all([
        getJSON("/api/areas"), getJSON("/api/trends"), getJSON("/api/health"), getJSON("/api/cohort?n=15"),
      ]);
      if (health.status === 401) {  // the session expired or the token was refused: sign in again
        $("status").textContent = "signed out: open a new login link";
        $("status").className = "pill bad";
        return;
      }
      const tier = cohort.body.tier || areas.body.tier || health.body.tier || "aggregate";
      $("tier").textContent = `tier ${tier}`;
      $("areas-denied").hidden = areas.status !== 403;
      $("heat").hidden = areas.status !== 200;
      if (areas.status === 200) renderHeat(areas.body);
      if (trends.status === 200) renderTrends(trends.body.trends);
      if (health.status === 200) renderHealth(health.body);
      renderCohort(cohort);
      $("updated").textContent = new Date().toLocaleTimeString();
      document.body.dataset.tier = tier;
      document.body.dataset.ticks = String(Number(document.body.dataset.ticks || 0) + 1);
    } catch (e) {
      $("status").textContent = "offline";
      $("status").className = "pill bad";
    } finally {
      setTimeout(tick, POLL_MS);
    }
  }

  tick();
})();
