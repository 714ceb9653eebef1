// adainf report page (report::html): renders the runs table, the sweep tables, the curves and
// the previews from the JSON block #adainf-data. No network; inlined into every page.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("adainf-data").textContent);
  const runs = D.runs;
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];
  const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  const fmt = (v, d) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));
  const el = (id) => document.getElementById(id);

  // ---- SVG curves ------------------------------------------------------------------------
  function extent(series, i) {
    let lo = Infinity, hi = -Infinity;
    for (const s of series) for (const p of s.points) { if (p[i] < lo) lo = p[i]; if (p[i] > hi) hi = p[i]; }
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    if (hi === lo) { hi = lo + 1; }
    return [lo, hi];
  }
  function polyline(points, sx, sy, color, width) {
    const pts = points.map((p) => sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1)).join(" ");
    return '<polyline fill="none" stroke="' + color + '" stroke-width="' + width + '" points="' + pts + '"/>';
  }
  // A chart of several series with its axis ranges written at the corners.
  function chart(series, title, w, h) {
    const m = { l: 44, r: 8, t: 16, b: 18 };
    const [x0, x1] = extent(series, 0), [y0, y1] = extent(series, 1);
    const sx = (x) => m.l + ((x - x0) / (x1 - x0)) * (w - m.l - m.r);
    const sy = (y) => h - m.b - ((y - y0) / (y1 - y0)) * (h - m.t - m.b);
    let out = '<svg class="chart" width="' + w + '" height="' + h + '" viewBox="0 0 ' + w + " " + h + '" role="img">';
    out += "<title>" + esc(title) + "</title>";
    out += '<rect x="' + m.l + '" y="' + m.t + '" width="' + (w - m.l - m.r) + '" height="' + (h - m.t - m.b) + '" fill="none" stroke="#d0d5dd"/>';
    out += '<text x="' + m.l + '" y="11">' + esc(title) + "</text>";
    out += '<text x="' + (m.l - 3) + '" y="' + (m.t + 8) + '" text-anchor="end">' + y1.toPrecision(3) + "</text>";
    out += '<text x="' + (m.l - 3) + '" y="' + (h - m.b) + '" text-anchor="end">' + y0.toPrecision(3) + "</text>";
    out += '<text x="' + m.l + '" y="' + (h - 4) + '">' + x0 + "</text>";
    out += '<text x="' + (w - m.r) + '" y="' + (h - 4) + '" text-anchor="end">step ' + x1 + "</text>";
    for (const s of series) {
      if (s.points.length === 1) {
        out += '<circle cx="' + sx(s.points[0][0]).toFixed(1) + '" cy="' + sy(s.points[0][1]).toFixed(1) + '" r="2.5" fill="' + s.color + '"/>';
      } else if (s.points.length > 1) {
        out += polyline(s.points, sx, sy, s.color, 1.2);
      }
    }
    return out + "</svg>";
  }
  function sparkline(points) {
    if (!points.length) return "";
    const w = 90, h = 22;
    const [x0, x1] = extent([{ points }], 0), [y0, y1] = extent([{ points }], 1);
    const sx = (x) => 1 + ((x - x0) / (x1 - x0)) * (w - 2);
    const sy = (y) => h - 1 - ((y - y0) / (y1 - y0)) * (h - 2);
    return '<svg class="spark" width="' + w + '" height="' + h + '">' + polyline(points, sx, sy, "#1f77b4", 1) + "</svg>";
  }

  // ---- the runs table --------------------------------------------------------------------
  const COLUMNS = [
    { key: "id", label: "run", cls: "id", text: (r) => esc(r.id.slice(0, 8)), title: (r) => r.id },
    { key: "state", label: "state", text: (r) => '<span class="state state-' + r.state + '">' + r.state + "</span>" + (r.error ? '<div class="error">' + esc(r.error) + "</div>" : "") },
    { key: "setting", label: "setting", cls: "setting", text: (r) => esc(r.setting) },
    { key: "method", label: "method", text: (r) => esc(r.method) },
    { key: "tags", label: "tags", cls: "tags", text: (r) => esc(r.tags) },
    { key: "data", label: "data", cls: "data", text: (r) => esc(r.data) },
    { key: "step", label: "steps", cls: "num", text: (r) => r.step + "/" + r.steps },
    { key: "probe", label: "probe", cls: "num", text: (r) => fmt(r.probe, 4) },
    { key: "knn", label: "kNN", cls: "num", text: (r) => fmt(r.knn, 4) },
    { key: "seconds", label: "wall s", cls: "num", text: (r) => fmt(r.seconds, 1) },
    { key: "loss", label: "loss", cls: "num", text: (r) => fmt(r.loss, 4) },
    { key: null, label: "loss curve", text: (r) => sparkline(r.loss_curve) },
  ];
  const rowHtml = runs.map((r, i) => {
    let tr = '<tr data-i="' + i + '" data-id="' + esc(r.id) + '" data-state="' + r.state + '">';
    for (const c of COLUMNS) {
      tr += "<td" + (c.cls ? ' class="' + c.cls + '"' : "") + (c.title ? ' title="' + esc(c.title(r)) + '"' : "") + ">" + c.text(r) + "</td>";
    }
    return tr + "</tr>";
  });
  const haystack = runs.map((r) => [r.id, r.state, r.setting, r.method, r.tags, r.data, r.error || ""].join(" ").toLowerCase());
  const state = { key: null, dir: 1, filter: "", open: {} };
  try {
    const saved = JSON.parse(sessionStorage.getItem("adainf-report") || "null");
    if (saved) Object.assign(state, saved);
  } catch (e) { /* storage unavailable: start fresh */ }

  function order() {
    const idx = runs.map((_, i) => i);
    if (state.key) {
      const k = state.key, dir = state.dir;
      idx.sort((a, b) => {
        const va = runs[a][k], vb = runs[b][k];
        const na = va === null || va === undefined, nb = vb === null || vb === undefined;
        if (na || nb) return na === nb ? a - b : na ? 1 : -1;
        if (typeof va === "number" && typeof vb === "number") return (va - vb) * dir || a - b;
        return String(va).localeCompare(String(vb)) * dir || a - b;
      });
    }
    const terms = state.filter.toLowerCase().split(/\s+/).filter(Boolean);
    return idx.filter((i) => terms.every((t) => haystack[i].includes(t)));
  }
  function detailHtml(r) {
    let out = '<tr class="detail" data-detail="' + esc(r.id) + '"><td colspan="' + COLUMNS.length + '"><div>run <code>' + esc(r.id) + "</code> · " + esc(r.data) + "</div>";
    if (r.error) out += '<div class="error">' + esc(r.error) + "</div>";
    out += '<div class="charts">';
    if (r.loss_curve.length) out += "<figure>" + chart([{ points: r.loss_curve, color: COLORS[0] }], "loss", 360, 180) + "</figure>";
    if (r.probe_curve.length) out += "<figure>" + chart([{ points: r.probe_curve, color: COLORS[2] }], "probe accuracy", 360, 180) + "</figure>";
    if (r.preview !== null && D.previews[r.preview]) out += '<figure class="previews"><img alt="augmentation preview" src="' + D.previews[r.preview].uri + '"><figcaption>original | view 1 | view 2</figcaption></figure>';
    return out + "</div></td></tr>";
  }
  function renderBody() {
    const shown = order();
    let html = "";
    for (const i of shown) {
      html += rowHtml[i];
      if (state.open[runs[i].id]) html += detailHtml(runs[i]);
    }
    document.querySelector("#runs tbody").innerHTML = html;
    for (const th of document.querySelectorAll("#runs th")) {
      th.classList.toggle("asc", th.dataset.key === state.key && state.dir === 1);
      th.classList.toggle("desc", th.dataset.key === state.key && state.dir === -1);
    }
    el("counts").textContent = shown.length + " of " + runs.length + " run(s) shown · " + counts();
  }
  function counts() {
    const c = {};
    for (const r of runs) c[r.state] = (c[r.state] || 0) + 1;
    return Object.keys(c).sort().map((k) => c[k] + " " + k).join(", ");
  }
  function save() {
    try { sessionStorage.setItem("adainf-report", JSON.stringify(state)); } catch (e) { /* ignore */ }
  }

  el("source").textContent = D.source + " · written " + new Date(D.generated * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  if (D.live) el("live").textContent = D.live + " (this page reloads every 5 s)";
  let head = "<tr>";
  for (const c of COLUMNS) head += "<th" + (c.key ? ' class="sortable" data-key="' + c.key + '"' : "") + ">" + c.label + "</th>";
  document.querySelector("#runs thead").innerHTML = head + "</tr>";
  document.querySelector("#runs thead").addEventListener("click", (ev) => {
    const th = ev.target.closest("th");
    if (!th || !th.dataset.key) return;
    if (state.key === th.dataset.key) state.dir = -state.dir;
    else { state.key = th.dataset.key; state.dir = 1; }
    save();
    renderBody();
  });
  el("filter").value = state.filter;
  el("filter").addEventListener("input", (ev) => { state.filter = ev.target.value; save(); renderBody(); });
  document.querySelector("#runs tbody").addEventListener("click", (ev) => {
    const td = ev.target.closest("td.id");
    if (!td) return;
    const id = td.parentElement.dataset.id;
    if (state.open[id]) delete state.open[id]; else state.open[id] = true;
    save();
    renderBody();
  });
  renderBody();
  document.body.dataset.ready = String(performance.now());

  // ---- sweep tables ----------------------------------------------------------------------
  const sweep = el("sweep");
  if (!D.tables.length) sweep.insertAdjacentHTML("beforeend", '<p class="note">No finished runs yet.</p>');
  for (const t of D.tables) {
    let html = "<h3>" + esc(t.title) + '</h3><table class="sweep"><thead><tr>' + t.columns.map((c) => "<th>" + esc(c) + "</th>").join("") + "</tr></thead><tbody>";
    for (const row of t.rows) html += "<tr>" + row.map((c) => "<td>" + esc(c) + "</td>").join("") + "</tr>";
    sweep.insertAdjacentHTML("beforeend", html + "</tbody></table>");
  }

  // ---- curves per setting (drawn after the table, a few settings at a time) --------------
  const settings = [];
  const bySetting = {};
  runs.forEach((r) => {
    if (!(r.setting in bySetting)) { bySetting[r.setting] = []; settings.push(r.setting); }
    bySetting[r.setting].push(r);
  });
  const curves = el("curves");
  let next = 0;
  function drawSome() {
    const stop = Math.min(settings.length, next + 8);
    let html = "";
    for (; next < stop; next++) {
      const s = settings[next], members = bySetting[s];
      const loss = members.filter((r) => r.loss_curve.length).map((r, i) => ({ points: r.loss_curve, color: COLORS[i % COLORS.length] }));
      const probe = members.filter((r) => r.probe_curve.length).map((r, i) => ({ points: r.probe_curve, color: COLORS[i % COLORS.length] }));
      html += '<h3>' + esc(s) + ' <span class="note">(' + members.length + " run(s))</span></h3><div class=\"charts\">";
      if (loss.length) html += "<figure>" + chart(loss, "loss · " + s, 420, 200) + "</figure>";
      if (probe.length) html += "<figure>" + chart(probe, "probe accuracy · " + s, 420, 200) + "</figure>";
      if (!loss.length && !probe.length) html += '<p class="note">no metrics logged yet</p>';
      html += "</div>";
    }
    curves.insertAdjacentHTML("beforeend", html);
    if (next < settings.length) setTimeout(drawSome, 0);
    else document.body.dataset.curves = "drawn";
  }
  if (settings.length) setTimeout(drawSome, 0); else document.body.dataset.curves = "drawn";

  // ---- previews --------------------------------------------------------------------------
  const pv = el("previews");
  if (!D.previews.length) pv.insertAdjacentHTML("beforeend", '<p class="note">No previews (runs write preview.png when they start).</p>');
  let phtml = '<div class="charts previews">';
  for (const p of D.previews) phtml += '<figure><img alt="augmentation preview" src="' + p.uri + '"><figcaption>' + esc(p.settings.join(", ")) + " · original | view 1 | view 2</figcaption></figure>";
  pv.insertAdjacentHTML("beforeend", phtml + "</div>");
  if (D.previews_left_out) pv.insertAdjacentHTML("beforeend", '<p class="note">' + D.previews_left_out + " run(s) with other previews are not embedded (the page keeps at most " + D.previews.length + ").</p>");

  if (D.live) window.addEventListener("beforeunload", () => { state.scroll = window.scrollY; save(); });
  if (D.live && state.scroll) window.scrollTo(0, state.scroll);
})();
