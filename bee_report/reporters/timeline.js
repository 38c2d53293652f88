"use strict";
// bee timeline: a heat map of samples over time (FlameScope-style) and a flame graph of
// the range dragged out on it. The page defines `D` (the data, see timeline.py) and `bee`
// (flame graph constants) and includes flamegraph.js (zoom, search) before this script.
var timeline = (function () {
  var N = D.n, res = D.res_ns, nS = D.ss.length, off = D.off, W = D.w;
  var B = new Int32Array(D.b.length);  // absolute bucket of every entry
  for (var i = 0; i < nS; i++) {
    var prev = 0;
    for (var j = off[i]; j < off[i + 1]; j++) { prev += D.b[j]; B[j] = prev; }
  }
  var unit = D.unit, SEC = 1e9;
  // the flame graph fits the window (at most the --width asked for)
  bee.width = Math.max(320, Math.min(bee.width, (document.documentElement.clientWidth || 1200) - 16));
  var rpc = res < SEC ? Math.max(1, Math.floor(SEC / res)) : 1;  // buckets per column
  var cols = Math.max(1, Math.ceil(N / rpc));
  var L = 62, T = 18;  // room for row labels and the time axis
  // cell width: fill the window when there are few columns, at least 1 px each
  var room = Math.max(300, (window.innerWidth || 1200) - L - 40);
  var cw = Math.max(1, Math.min(60, Math.floor(room / cols)));
  if (cols > room) cw = cols <= 4000 ? 3 : cols <= 16000 ? 2 : 1;  // scroll sideways
  var canvas = document.getElementById("heat"), ctx = canvas.getContext("2d");
  var view = "time", rows = [], rowOf = null, ch = 1, base = null, max = 1;
  var sel = null, drag = null, logscale = true;

  // ---- the heat map ----
  function bucketTotals() {
    var t = new Float64Array(N);
    for (var j = 0; j < B.length; j++) t[B[j]] += W[j];
    return t;
  }
  var totals = bucketTotals();

  // Rows of the thread and CPU views: the heaviest first, at most 64 drawn.
  function groupRows(kind) {
    var weight = new Map();
    for (var i = 0; i < nS; i++) {
      var k = kind === "thread" ? D.st[i] : D.sc[i], s = 0;
      for (var j = off[i]; j < off[i + 1]; j++) s += W[j];
      weight.set(k, (weight.get(k) || 0) + s);
    }
    var keys = Array.from(weight.keys()).sort(function (a, b) {
      return weight.get(b) - weight.get(a) || a - b;
    }).slice(0, 64);
    var map = new Map();
    keys.forEach(function (k, r) { map.set(k, r); });
    return { keys: keys, map: map };
  }

  function label(k) {
    if (view === "cpu") return "cpu " + k;
    var t = D.threads[k];
    return t[1] + " " + (t[3] || t[2]);
  }

  function color(v) {
    if (v <= 0) return "#ffffff";
    var x = logscale ? Math.log(1 + v) / Math.log(1 + max) : v / max;
    x = Math.min(1, Math.max(0.04, x));
    var r = Math.round(255 - 75 * x), g = Math.round(235 - 235 * x), b = Math.round(220 - 220 * x);
    return "rgb(" + r + "," + g + "," + b + ")";
  }

  function layout() {
    if (view === "time") {
      rows = [];
      ch = Math.max(3, Math.min(20, Math.floor(320 / rpc)));
      canvas.height = T + rpc * ch;
    } else {
      var g = groupRows(view);
      rows = g.keys;
      rowOf = g.map;
      ch = 14;
      canvas.height = T + Math.max(1, rows.length) * ch;
    }
    canvas.width = L + cols * cw;
  }

  function drawBase() {
    layout();
    var cells, i, j;
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (view === "time") {
      cells = totals;
    } else {
      cells = new Float64Array(Math.max(1, rows.length) * cols);
      for (i = 0; i < nS; i++) {
        var r = rowOf.get(view === "thread" ? D.st[i] : D.sc[i]);
        if (r === undefined) continue;
        for (j = off[i]; j < off[i + 1]; j++) cells[r * cols + Math.floor(B[j] / rpc)] += W[j];
      }
    }
    max = 0;
    for (i = 0; i < cells.length; i++) if (cells[i] > max) max = cells[i];
    max = max || 1;
    for (i = 0; i < cells.length; i++) {
      if (!cells[i]) continue;
      ctx.fillStyle = color(cells[i]);
      if (view === "time") {
        ctx.fillRect(L + Math.floor(i / rpc) * cw, T + (i % rpc) * ch, cw, ch);
      } else {
        ctx.fillRect(L + (i % cols) * cw, T + Math.floor(i / cols) * ch, cw, ch);
      }
    }
    // axes: seconds along the top, row labels on the left
    ctx.fillStyle = "#404040";
    ctx.font = "10px Verdana, sans-serif";
    var step = Math.max(1, Math.ceil(60 / cw));
    var nice = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
    for (i = 0; i < nice.length && nice[i] < step; i++);
    step = nice[Math.min(i, nice.length - 1)];
    for (var c = 0; c < cols; c += step) {
      ctx.fillRect(L + c * cw, T - 4, 1, 4);
      ctx.fillText(fmtSeconds(c * rpc * res / SEC), L + c * cw + 2, T - 6);
    }
    if (view === "time") {
      var every = Math.max(1, Math.ceil(12 / ch));
      for (var r2 = 0; r2 < rpc; r2 += every) {
        ctx.fillText(Math.round(r2 * res / 1e6) + " ms", 2, T + r2 * ch + Math.min(ch, 10));
      }
    } else {
      for (var r3 = 0; r3 < rows.length; r3++) {
        ctx.fillText(label(rows[r3]).substring(0, 10), 2, T + r3 * ch + 10);
      }
    }
    base = ctx.getImageData(0, 0, canvas.width, canvas.height);
    document.getElementById("legend").textContent = "columns: " +
      fmtSeconds(rpc * res / SEC) + " s each; colour: " + unit + " per cell (max " +
      commas(max) + ")";
  }

  // 1234567 -> "1,234,567" (toLocaleString is far too slow for thousands of frames)
  function commas(v) {
    return String(Math.round(v)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  function fmtSeconds(s) {
    var t = s.toFixed(3).replace(/\.?0+$/, "");
    return t === "" ? "0" : t;
  }

  // The bucket (and row) under a canvas position; clamped to the drawn area.
  function at(e) {
    var rect = canvas.getBoundingClientRect();
    var x = e.clientX - rect.left - L, y = e.clientY - rect.top - T;
    var c = Math.min(cols - 1, Math.max(0, Math.floor(x / cw)));
    var nrows = view === "time" ? rpc : Math.max(1, rows.length);
    var r = Math.min(nrows - 1, Math.max(0, Math.floor(y / ch)));
    if (view === "time") return { b: Math.min(N - 1, c * rpc + r), row: null, c: c };
    return { b: c * rpc, row: r, c: c };
  }

  function overlay() {
    ctx.putImageData(base, 0, 0);
    if (!sel) return;
    ctx.fillStyle = "rgba(30,80,230,0.55)";
    ctx.strokeStyle = "rgb(20,40,160)";
    ctx.lineWidth = 1;
    if (view === "time") {
      var c0 = Math.floor(sel.b0 / rpc), c1 = Math.floor(sel.b1 / rpc);
      for (var c = c0; c <= c1; c++) {
        var r0 = c === c0 ? sel.b0 % rpc : 0, r1 = c === c1 ? sel.b1 % rpc : rpc - 1;
        ctx.fillRect(L + c * cw, T + r0 * ch, cw, (r1 - r0 + 1) * ch);
        if (cw >= 4) ctx.strokeRect(L + c * cw + 0.5, T + r0 * ch + 0.5, cw - 1, (r1 - r0 + 1) * ch - 1);
      }
    } else {
      ctx.fillRect(L + Math.floor(sel.b0 / rpc) * cw, T + sel.r0 * ch,
                   (Math.floor(sel.b1 / rpc) - Math.floor(sel.b0 / rpc) + 1) * cw,
                   (sel.r1 - sel.r0 + 1) * ch);
    }
  }

  function selectionFrom(a, b) {
    if (view === "time") {
      return { b0: Math.min(a.b, b.b), b1: Math.max(a.b, b.b) };
    }
    var c0 = Math.min(a.c, b.c), c1 = Math.max(a.c, b.c);
    return { b0: c0 * rpc, b1: Math.min(N - 1, (c1 + 1) * rpc - 1),
             r0: Math.min(a.row, b.row), r1: Math.max(a.row, b.row) };
  }

  canvas.addEventListener("mousedown", function (e) {
    drag = at(e);
    sel = selectionFrom(drag, drag);
    overlay();
    e.preventDefault();
  });
  canvas.addEventListener("mousemove", function (e) {
    var p = at(e), t0 = (D.first + p.b) * res / SEC;
    var v = view === "time" ? totals[p.b] : null;
    document.getElementById("hover").textContent = fmtSeconds(t0) + " s" +
      (view === "time" ? " to " + fmtSeconds(t0 + res / SEC) + " s: " +
       commas(v) + " " + unit : ", " + label(rows[p.row] || 0));
    if (drag) { sel = selectionFrom(drag, p); overlay(); }
  });
  window.addEventListener("mouseup", function (e) {
    if (!drag) return;
    sel = selectionFrom(drag, at(e));
    drag = null;
    overlay();
    draw();
  });

  // ---- the flame graph of the selection ----
  var nodeFrame = [0], nodeParent = [-1], nodeDepth = [0], kids = [new Map()];
  var stackLeaf = new Int32Array(D.stacks.length);
  D.stacks.forEach(function (ids, s) {
    var n = 0;
    for (var d = 0; d < ids.length; d++) {
      var k = kids[n].get(ids[d]);
      if (k === undefined) {
        k = nodeFrame.length;
        nodeFrame.push(ids[d]);
        nodeParent.push(n);
        nodeDepth.push(d + 1);
        kids.push(new Map());
        kids[n].set(ids[d], k);
      }
      n = k;
    }
    stackLeaf[s] = n;
  });
  var sorted = kids.map(function (m) {
    return Array.from(m.values()).sort(function (a, b) {
      var fa = D.frames[nodeFrame[a]], fb = D.frames[nodeFrame[b]];
      return fa[0] < fb[0] ? -1 : fa[0] > fb[0] ? 1 : fa[1] < fb[1] ? -1 : fa[1] > fb[1] ? 1 : 0;
    });
  });

  function lowerBound(lo, hi, b) {
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (B[mid] < b) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  // Weight per stack in the selection (every series when there is none).
  function stackValues() {
    var v = new Float64Array(D.stacks.length);
    var b0 = sel ? sel.b0 : 0, b1 = sel ? sel.b1 : N - 1;
    for (var i = 0; i < nS; i++) {
      if (sel && view !== "time") {
        var r = rowOf.get(view === "thread" ? D.st[i] : D.sc[i]);
        if (r === undefined || r < sel.r0 || r > sel.r1) continue;
      }
      var lo = off[i], hi = off[i + 1];
      if (lo === hi || B[hi - 1] < b0 || B[lo] > b1) continue;
      var s = 0;
      for (var j = lowerBound(lo, hi, b0); j < hi && B[j] <= b1; j++) s += W[j];
      v[D.ss[i]] += s;
    }
    return v;
  }

  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;");
  }

  function draw() {
    var v = stackValues(), val = new Float64Array(nodeFrame.length), s, n;
    for (s = 0; s < v.length; s++) {
      if (!v[s]) continue;
      for (n = stackLeaf[s]; n >= 0; n = nodeParent[n]) val[n] += v[s];
    }
    var total = val[0], full = bee.width - 2 * bee.xpad;
    var minv = bee.minwidth * total / full, out = [], maxDepth = 0;
    var todo = [[0, 0]];
    var placed = [];
    while (todo.length) {
      var item = todo.pop(), node = item[0], o = item[1];
      placed.push([node, o]);
      if (nodeDepth[node] > maxDepth) maxDepth = nodeDepth[node];
      var ks = sorted[node], x = o, next = [];
      for (var k = 0; k < ks.length; k++) {
        var c = ks[k];
        if (val[c] > 0 && val[c] >= minv) next.push([c, x]);
        x += val[c];
      }
      for (k = next.length - 1; k >= 0; k--) todo.push(next[k]);
    }
    var FH = bee.frameheight, top = 34, bottom = 34;
    var height = top + (maxDepth + 1) * FH + bottom, scale = total > 0 ? full / total : 0;
    var floor = height - bottom;
    for (var p = 0; p < placed.length && total > 0; p++) {
      n = placed[p][0];
      var off0 = placed[p][1], value = val[n], f = D.frames[nodeFrame[n]];
      var x0 = bee.xpad + off0 * scale, w = value * scale;
      var y = floor - (nodeDepth[n] + 1) * FH + bee.framepad;
      var pct = (100 * value / total).toFixed(2);
      var info = n === 0 ? "all (" + commas(value) + " " + unit +
        ", 100%)" : f[0] + f[1] + " (" +
        commas(value) + " " + unit + ", " + pct + "%)";
      var color = f[2];
      out.push('<g class="f" data-n="' + esc(f[0]) + '" data-o="' + off0 + '" data-v="' +
        value + '"><title>' + esc(info) + '</title><rect x="' + x0.toFixed(1) + '" y="' + y +
        '" width="' + w.toFixed(1) + '" height="' + (FH - bee.framepad) + '" fill="' + color +
        '" rx="2" ry="2"/><text x="' + (x0 + 3).toFixed(1) + '" y="' + (y + 10.5).toFixed(1) +
        '">' + esc(fit(f[0], w)) + "</text></g>");
    }
    var svg = document.getElementById("flame");
    svg.setAttribute("width", bee.width);
    svg.setAttribute("height", height);
    document.getElementById("search").setAttribute("x", bee.width - bee.xpad);
    document.getElementById("matched").setAttribute("x", bee.width - bee.xpad);
    document.getElementById("details").setAttribute("y", height - 12);
    document.getElementById("matched").setAttribute("y", height - 12);
    document.getElementById("frames").innerHTML = out.join("");
    bee.total = total;
    collect();
    if (searching !== null) search(searching);
    showRange(total);
  }

  // The selection as options for `bee report`.
  function cli() {
    if (!sel) return "";
    var t0 = (D.first + sel.b0) * res / SEC, t1 = (D.first + sel.b1 + 1) * res / SEC;
    var opts = "--from " + fmtSeconds(t0) + " --to " + fmtSeconds(t1);
    if (view !== "time") {
      var flag = view === "thread" ? " --tid " : " --cpu ";
      for (var r = sel.r0; r <= sel.r1 && r < rows.length; r++) {
        opts += flag + (view === "thread" ? D.threads[rows[r]][1] : rows[r]);
      }
    }
    return opts;
  }

  function showRange(total) {
    var el = document.getElementById("range");
    var amount = commas(total) + " " + unit;
    if (!sel) {
      el.textContent = "Whole recording (" + amount + "). Drag over the heat map to select a range.";
      return;
    }
    var t0 = (D.first + sel.b0) * res / SEC, t1 = (D.first + sel.b1 + 1) * res / SEC;
    var iso = function (t) { return new Date(D.origin_ms + t * 1000).toISOString(); };
    el.innerHTML = "Selected: <code id=\"cli\">" + esc(cli()) + "</code> (" + iso(t0) +
      " to " + iso(t1) + ", " + esc(amount) + ")";
  }

  function redraw() {
    drawBase();
    overlay();
    draw();
  }

  document.getElementById("view").addEventListener("change", function (e) {
    view = e.target.value;
    sel = null;
    redraw();
  });
  document.getElementById("logscale").addEventListener("change", function (e) {
    logscale = e.target.checked;
    drawBase();
    overlay();
  });
  document.getElementById("subtitle").textContent = D.subtitle + " — starts " + D.origin_iso;
  bind();
  redraw();
  // time from navigation to a drawn page, for bench/timeline_open.py
  document.body.setAttribute("data-ready-ms", performance.now().toFixed(0));
  return {
    // For tests and scripting: select buckets [b0, b1] as a drag would.
    select: function (b0, b1) { sel = { b0: b0, b1: b1, r0: 0, r1: rows.length - 1 }; overlay(); draw(); },
    cli: cli,
    cell: function (b) {  // page coordinates of the centre of bucket b's cell (time view)
      var rect = canvas.getBoundingClientRect();
      return [rect.left + L + Math.floor(b / rpc) * cw + cw / 2,
              rect.top + T + (b % rpc) * ch + ch / 2];
    },
  };
})();
