// The cell browser: sortable, filterable table of every cell; a row opens the cell's videos side
// by side, played in sync. Plain DOM, no library; data from the JSON block #cells-data.
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("cells-data").textContent);
  var $ = function (id) { return document.getElementById(id); };
  var state = { sort: null, dir: 1, delta: false };
  var num = function (v) { return v === "inf" ? Infinity : v === "-inf" ? -Infinity : v; };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(v) {
    v = num(v);
    if (v === null || v === undefined || Number.isNaN(v)) return "—";
    if (v === Infinity) return "∞";
    if (v === -Infinity) return "−∞";
    var a = Math.abs(v);
    if (v !== 0 && (a >= 1e5 || a < 1e-3)) return v.toPrecision(3);
    return a < 1000 ? String(Number(v.toPrecision(4))) : v.toFixed(0);
  }
  function shown(r, key) { return state.delta ? r.d[key] : num(r.v[key]); }
  function value(r, key) {
    if (key === "label" || key === "clip" || key === "status") return r[key];
    if (key === "seed") return r.seed;
    return shown(r, key);
  }

  // ---- controls ------------------------------------------------------------------------
  function fill(select, values) {
    select.appendChild(el("option", { value: "" }, "all"));
    values.forEach(function (v) { select.appendChild(el("option", { value: v }, v)); });
  }
  fill($("f-label"), D.labels);
  fill($("f-clip"), D.clips);
  fill($("f-status"), ["ok", "failed"]);
  D.columns.forEach(function (c) { $("f-metric").appendChild(el("option", { value: c.key }, c.title)); });
  if (D.baseline) {
    $("f-delta-wrap").hidden = false;
  }

  var head = $("cells-head");
  var fixed = [["label", "label"], ["clip", "clip"], ["seed", "seed"], ["status", "status"]];
  var tr = el("tr");
  fixed.concat(D.columns.map(function (c) { return [c.key, c.title + (c.arrow ? " " + c.arrow : "")]; }))
    .forEach(function (kv) {
      var th = el("th", { "data-key": kv[0], "class": fixed.some(function (f) { return f[0] === kv[0]; }) ? "" : "num",
                          title: "sort by " + kv[1] }, kv[1]);
      th.addEventListener("click", function () {
        state.dir = state.sort === kv[0] ? -state.dir : 1;
        state.sort = kv[0];
        render();
      });
      tr.appendChild(th);
    });
  head.appendChild(tr);

  ["f-label", "f-clip", "f-status", "f-metric", "f-min", "f-max"].forEach(function (id) {
    $(id).addEventListener("input", render);
    $(id).addEventListener("change", render);
  });
  $("f-delta").addEventListener("change", function () { state.delta = this.checked; render(); });

  function visible() {
    var lab = $("f-label").value, clip = $("f-clip").value, st = $("f-status").value;
    var mk = $("f-metric").value, lo = parseFloat($("f-min").value), hi = parseFloat($("f-max").value);
    return D.rows.filter(function (r) {
      if (lab && r.label !== lab) return false;
      if (clip && r.clip !== clip) return false;
      if (st && r.status !== st) return false;
      if (mk && (!Number.isNaN(lo) || !Number.isNaN(hi))) {
        var v = shown(r, mk);
        if (v === null || v === undefined) return false;
        if (!Number.isNaN(lo) && v < lo) return false;
        if (!Number.isNaN(hi) && v > hi) return false;
      }
      return true;
    });
  }

  function compare(a, b) {
    var x = value(a, state.sort), y = value(b, state.sort);
    var xm = x === null || x === undefined, ym = y === null || y === undefined;
    if (xm || ym) return xm && ym ? 0 : xm ? 1 : -1;  // missing values last, either direction
    if (typeof x === "string") return state.dir * x.localeCompare(y);
    return state.dir * (x < y ? -1 : x > y ? 1 : 0);
  }

  function render() {
    var rows = visible();
    if (state.sort) rows.sort(compare);
    var body = $("cells-body");
    body.textContent = "";
    rows.forEach(function (r) {
      var tr = el("tr", { "data-i": r.i, "class": r.status === "failed" ? "failed-row" : "" });
      tr.appendChild(el("td", { "class": "label" }, r.label));
      tr.appendChild(el("td", { "class": "label" }, r.clip));
      tr.appendChild(el("td", { "class": "num" }, r.seed));
      tr.appendChild(el("td", { "class": r.status === "failed" ? "failed" : "" }, r.status));
      D.columns.forEach(function (c) {
        var v = shown(r, c.key);
        var txt = state.delta && v !== undefined && v !== null && v > 0 ? "+" + fmt(v) : fmt(v);
        tr.appendChild(el("td", { "class": "num", "data-key": c.key, "data-value": v === undefined || v === null ? "" : String(v) }, txt));
      });
      tr.addEventListener("click", function () { open(r); });
      body.appendChild(tr);
    });
    Array.prototype.forEach.call(head.querySelectorAll("th"), function (th) {
      th.classList.toggle("sorted", th.getAttribute("data-key") === state.sort);
      th.setAttribute("data-dir", th.getAttribute("data-key") === state.sort ? (state.dir > 0 ? "asc" : "desc") : "");
    });
    $("cells-count").textContent = rows.length + " of " + D.rows.length + " cells" +
      (state.delta ? " · values are differences to " + D.baseline + " (same clip and seed)" : "");
  }

  // ---- the cell panel: videos in sync ----------------------------------------------------
  var players = [], fps = 8, frames = 1, raf = 0;

  function frameOf(t) { return Math.min(frames - 1, Math.floor(t * fps + 1e-6)); }
  function showFrame() {
    if (players.length) $("p-frame").textContent = "frame " + (frameOf(players[0].currentTime) + 1) + " / " + frames;
  }
  function follow() {
    // the first video leads; the others are pulled back when they drift by half a frame
    var lead = players[0];
    players.slice(1).forEach(function (p) {
      var t = p.duration ? lead.currentTime % p.duration : lead.currentTime;
      if (Math.abs(p.currentTime - t) > 0.5 / fps) p.currentTime = t;
      if (lead.paused !== p.paused) { if (lead.paused) p.pause(); else p.play().catch(function () {}); }
    });
    showFrame();
    raf = lead.paused ? 0 : requestAnimationFrame(follow);
  }
  function play() {
    Promise.all(players.map(function (p) { return p.play(); })).then(function () {
      if (!raf) raf = requestAnimationFrame(follow);
    }).catch(function () {});
    $("p-play").textContent = "pause";
  }
  function pause() {
    players.forEach(function (p) { p.pause(); });
    if (players.length) seek(frameOf(players[0].currentTime));
    $("p-play").textContent = "play";
  }
  function seek(frame) {
    var t = (frame + 0.5) / fps;  // mid-frame: no rounding puts it on the previous frame
    players.forEach(function (p) { p.currentTime = p.duration ? t % p.duration : t; });
    showFrame();
  }
  function step(k) {
    if (!players.length) return;
    players.forEach(function (p) { p.pause(); });
    $("p-play").textContent = "play";
    var f = frameOf(players[0].currentTime) + k;
    seek(((f % frames) + frames) % frames);
  }

  $("p-play").addEventListener("click", function () {
    if (players.length && players[0].paused) play(); else pause();
  });
  $("p-prev").addEventListener("click", function () { step(-1); });
  $("p-next").addEventListener("click", function () { step(1); });
  $("p-loop").addEventListener("change", function () {
    var on = this.checked;
    players.forEach(function (p) { p.loop = on; });
  });
  $("p-close").addEventListener("click", function () { pause(); $("cell-panel").hidden = true; });

  function open(r) {
    pause();
    players = [];
    var box = $("p-videos");
    box.textContent = "";
    var meta = null;
    r.videos.forEach(function (tv) {
      var fig = el("figure");
      fig.appendChild(el("figcaption", {}, tv[0]));
      var v = tv[1] && D.videos[tv[1]];
      if (v) {
        var vid = el("video", { muted: "", playsinline: "", preload: "auto", "data-title": tv[0] });
        vid.muted = true;
        vid.loop = $("p-loop").checked;
        vid.src = v.src;
        vid.addEventListener("ended", function () { if (vid === players[0]) pause(); });
        fig.appendChild(vid);
        players.push(vid);
        meta = meta || v;
      } else {
        var why = tv[0] === r.label && r.status === "failed" ? "failed: " + r.reason : "no video saved";
        fig.appendChild(el("div", { "class": "novideo" }, why));
      }
      box.appendChild(fig);
    });
    fps = meta ? meta.fps : 8;
    frames = meta ? meta.frames : 1;
    $("p-title").textContent = r.label + " · " + r.clip + " · seed " + r.seed;
    $("p-reason").textContent = r.status === "failed" ? "This cell failed: " + r.reason : "";
    $("p-reason").hidden = r.status !== "failed";
    var nums = $("p-numbers");
    nums.textContent = "";
    D.columns.forEach(function (c) {
      var tr = el("tr");
      tr.appendChild(el("th", {}, c.title + (c.arrow ? " " + c.arrow : "")));
      tr.appendChild(el("td", { "class": "num" }, fmt(r.v[c.key])));
      if (D.baseline) {
        var d = r.d[c.key];
        tr.appendChild(el("td", { "class": "num ci", title: "minus " + D.baseline }, d === undefined ? "" : (d > 0 ? "+" : "") + fmt(d)));
      }
      nums.appendChild(tr);
    });
    Object.keys(r.errors).forEach(function (k) {
      var tr = el("tr");
      tr.appendChild(el("th", {}, k));
      tr.appendChild(el("td", { "class": "failed", colspan: 2 }, r.errors[k]));
      nums.appendChild(tr);
    });
    $("p-controls").hidden = players.length === 0;
    $("cell-panel").hidden = false;
    $("cell-panel").setAttribute("data-i", r.i);
    showFrame();
    $("cell-panel").scrollIntoView({ block: "nearest" });
  }

  render();
  window.motiongridCells = { frameOf: function (t) { return frameOf(t); } };
})();
