// The web journal's live pages: listens to /events?run=R (server-sent events from the bus) and
// appends points to the run page's plotly charts, prepends journal entries and detections, and
// shows or hides the PAUSED banner. Forms (note, resume) post with fetch, so the page stays.
// Served by journal_svc itself (no CDN); the pages work without it, only not live.
(function () {
  "use strict";
  const me = document.currentScript;
  const run = me.dataset.run;
  const FLUSH_MS = 400;          // points are drawn in batches, not one redraw per step
  const MAX_POINTS = 20000;      // per trace: a long-open page keeps the newest
  // plotly trace name -> [event kind, value of the event] (names as journal_svc/run_view.py draws them)
  const SERIES = {
    "loss": ["step", (e) => e.loss],
    "loss (smoothed)": ["step", (e) => e.loss_smooth],
    "tokens/s": ["step", (e) => e.tokens_per_s],
    "MFU": ["step", (e) => e.mfu],
    "grad norm": ["step", (e) => e.grad_norm],
    "val bpb": ["eval", (e) => (e.name === "val_bpb" ? e.value : undefined)],
    "CORE": ["eval", (e) => (e.name === "core" ? e.value : undefined)],
    "shimmer": ["shimmer", (e) => e.mean],
  };
  const LINES = { pause: "red", resume: "green", stop: "green" };

  const status = document.createElement("span");
  status.className = "meta live-status";
  status.textContent = "connecting…";
  (document.querySelector("header") || document.body).appendChild(status);

  // --- the run page's plots -----------------------------------------------------------------
  const graph = document.querySelector(".plotly-graph-div");
  let pending = {};   // trace name -> {x: [], y: []}
  let marks = [];     // {x, text, line}

  function queuePoint(name, x, y) {
    if (y === undefined) return;
    const p = pending[name] || (pending[name] = { x: [], y: [] });
    p.x.push(x);
    p.y.push(y);
  }

  function markTop() {
    const loss = graph.data.find((t) => t.name === "loss");
    const ys = loss ? loss.y.filter((y) => typeof y === "number") : [];
    return ys.length ? Math.max(...ys) : 1;
  }

  function flush() {
    if (!graph || !graph.data) return;
    const names = Object.keys(pending).filter((n) => graph.data.some((t) => t.name === n));
    if (names.length) {
      const idx = names.map((n) => graph.data.findIndex((t) => t.name === n));
      Plotly.extendTraces(graph, { x: names.map((n) => pending[n].x), y: names.map((n) => pending[n].y) },
                          idx, MAX_POINTS);
    }
    pending = {};
    if (!marks.length) return;
    const top = markTop();
    const at = graph.data.findIndex((t) => t.name === "events");
    const xs = marks.map((m) => m.x), texts = marks.map((m) => m.text), ys = marks.map(() => top);
    if (at >= 0) {
      Plotly.extendTraces(graph, { x: [xs], y: [ys], hovertext: [texts] }, [at]);
    } else {
      Plotly.addTraces(graph, { x: xs, y: ys, hovertext: texts, mode: "markers", name: "events",
                                marker: { symbol: "triangle-down", size: 10 }, hoverinfo: "text+x",
                                xaxis: "x", yaxis: "y" });
    }
    const lines = marks.filter((m) => m.line).map((m) => ({
      type: "line", xref: "x", yref: "paper", x0: m.x, x1: m.x, y0: 0, y1: 1,
      line: { dash: "dot", color: m.line } }));
    if (lines.length) Plotly.relayout(graph, { shapes: [...(graph.layout.shapes || []), ...lines] });
    marks = [];
  }

  function onPlotted(kind, e) {
    for (const [name, [k, value]] of Object.entries(SERIES)) if (k === kind) queuePoint(name, e.step, value(e));
    if (kind === "eval") {  // one trace per CORE task and per bias probe (axis "all"), named as run_view draws them
      const [head, what, axis] = (e.name || "").split(":");
      if (head === "core" && what) queuePoint(`CORE ${what}`, e.step, e.value);
      if (head === "probe" && what && !axis) queuePoint(`probe ${what}`, e.step, e.value);
    }
    if (e.step < 0) return;
    if (kind === "detection") {
      marks.push({ x: e.step, text: e.detector + " " + e.severity + ": " + e.summary.slice(0, 200) });
    } else if (kind === "mix") {
      marks.push({ x: e.step, text: "mix: " + JSON.stringify(e.weights) });
    } else if (kind === "checkpoint") {
      marks.push({ x: e.step, text: "checkpoint: " + e.reason });
    }
  }
  // a command is marked where the trainer answered it (a person's is sent at step -1), as on reload;
  // the answer can arrive first (the trainer reads the control bucket, updated before the command
  // is published), so whichever of the two comes first waits for the other
  const commands = {}, answers = {};
  function onCommand(e) {
    if (answers[e.event_id]) { markAnswered(e, answers[e.event_id]); delete answers[e.event_id]; }
    else commands[e.event_id] = e;
  }
  function onAnswer(e) {
    if (!e.command_id) return;
    if (commands[e.command_id]) { markAnswered(commands[e.command_id], e); delete commands[e.command_id]; }
    else answers[e.command_id] = e;
  }
  function markAnswered(cmd, e) {
    if (!graph) return;
    const why = [cmd.reason, cmd.who && "by " + cmd.who, cmd.note].filter(Boolean).join(" | ");
    const action = cmd.args.action + (e.outcome === "rejected" ? " rejected" : "");
    marks.push({ x: e.step, text: action + ": " + why, line: e.outcome === "applied" && LINES[cmd.args.action] });
  }
  if (graph) setInterval(flush, FLUSH_MS);

  // --- the journal's entries ------------------------------------------------------------------
  const entryForm = document.querySelector("form.entry-form");
  function prepend(e) {
    if (!entryForm) return;
    const empty = entryForm.parentNode.querySelector("p.meta");
    if (empty && empty.textContent.startsWith("No journal entries")) empty.remove();
    const key = e.group_id || e.event_id;  // a detection's revisions replace each other
    document.querySelectorAll("[data-live-key]").forEach((n) => { if (n.dataset.liveKey === key) n.remove(); });
    const box = document.createElement("div");
    box.dataset.liveKey = key;
    box.innerHTML = e.html;  // rendered and escaped by the server, like the rest of the page
    box.querySelectorAll("details").forEach((d) => { d.open = true; });  // new: shown unfolded
    entryForm.after(box);
  }

  // --- the PAUSED banner ----------------------------------------------------------------------
  const banner = document.getElementById("paused");
  function onStatus(e) {
    if (!banner) return;
    if (e.state === "paused") {
      banner.querySelector("[data-field=step]").textContent = e.step.toLocaleString("en");
      banner.querySelector("[data-field=who]").textContent = (e.detail && e.detail.who) || "unknown";
      banner.querySelector("[data-field=reason]").textContent = e.reason;
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
  }

  // --- forms post with fetch: the page is not reloaded, the bus brings the result -------------
  async function post(form, output) {
    output.textContent = "sending…";
    const r = await fetch(form.action, { method: "POST", body: new FormData(form),
                                         headers: { Accept: "application/json" }, redirect: "manual" });
    if (r.type === "opaqueredirect") return { ok: true, text: "posted" };
    const type = r.headers.get("Content-Type") || "";
    const body = type.includes("json") ? await r.json() : { text: await r.text() };
    return { ok: r.ok, text: body.text, outcome: body.outcome };
  }
  function enhance(form, onDone) {
    if (!form) return;
    const output = form.querySelector("output") || form.appendChild(document.createElement("output"));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        const result = await post(form, output);
        output.textContent = result.text;
        output.dataset.outcome = result.outcome || (result.ok ? "posted" : "error");
        if (result.ok) onDone(form);
      } catch (err) {
        output.textContent = "not sent: " + err;
      }
    });
  }
  enhance(entryForm, (f) => { f.querySelector("textarea").value = ""; });
  enhance(document.querySelector("form.resume-form"), (f) => {  // the banner goes; its answer stays
    f.querySelector("[name=note]").value = "";
    status.textContent = "live · " + f.querySelector("output").textContent;
  });

  // --- the stream -------------------------------------------------------------------------------
  const source = new EventSource("/events?run=" + encodeURIComponent(run));
  const on = (kind, fn) => source.addEventListener(kind, (m) => fn(JSON.parse(m.data)));
  source.onopen = () => { status.textContent = "live"; };
  source.onerror = () => { status.textContent = "reconnecting…"; };
  on("bye", () => { source.close(); status.textContent = "the journal stopped: reload when it is back"; });
  on("dropped", (d) => { status.textContent = "live (" + d.count + " updates dropped: reload for all)"; });
  for (const kind of ["step", "eval", "shimmer", "mix", "checkpoint"]) on(kind, (e) => onPlotted(kind, e));
  on("command", onCommand);
  on("detection", (e) => { if (e.revision <= 1) onPlotted("detection", e); prepend(e); });
  on("entry", prepend);
  on("status", (e) => { onStatus(e); onAnswer(e); });
  window.introspectLive = { source, flush };  // for the browser test and the curious
})();
