"use strict";
// bee flame graph interactivity: click to zoom, Reset Zoom, Search (regex; also ?s=REGEX,
// Ctrl-F or F3), and a details line. The renderer defines `bee` (layout constants) before
// this script. Each frame is a flat <g class="f" data-n=label data-o=offset data-v=count>
// holding <title>, <rect>, <text>, in depth-first order; offsets and counts are in samples,
// so containment (hence ancestry) is exact.
var nodes = [], details, matched, unzoombtn, searchbtn, searching = null, zoomed = null;

function init(evt) {
  bind();
  collect();
  var s = new URLSearchParams(window.location.search).get("s");
  if (s) search(s);
}

// (Re)read the frames drawn in #frames; the timeline page calls it after each redraw.
function collect() {
  nodes = [];
  zoomed = null;
  unzoombtn.classList.add("hide");
  var all = document.querySelectorAll("#frames > g.f");
  for (var i = 0; i < all.length; i++) {
    var f = all[i], r = f.children[1], t = f.children[2];
    f._i = i;
    f._o = +f.getAttribute("data-o");
    f._v = +f.getAttribute("data-v");
    f._x = r.getAttribute("x");
    f._w = r.getAttribute("width");
    f._tx = t.getAttribute("x");
    f._t = t.textContent;
    f._fill = r.getAttribute("fill");
    nodes.push(f);
  }
}

// Event handlers, once: they delegate from #frames, so redrawn frames need none.
function bind() {
  details = document.getElementById("details").firstChild;
  matched = document.getElementById("matched").firstChild;
  unzoombtn = document.getElementById("unzoom");
  searchbtn = document.getElementById("search");
  var g = document.getElementById("frames");
  g.addEventListener("click", function (e) {
    var f = frameOf(e.target);
    if (f) zoom(f);
  });
  g.addEventListener("mouseover", function (e) {
    var f = frameOf(e.target);
    if (f) details.nodeValue = "Function: " + f.children[0].textContent;
  });
  g.addEventListener("mouseout", function () { details.nodeValue = " "; });
  unzoombtn.addEventListener("click", unzoom);
  searchbtn.addEventListener("click", searchPrompt);
  window.addEventListener("keydown", function (e) {
    if (e.keyCode === 114 || ((e.ctrlKey || e.metaKey) && e.keyCode === 70)) {
      e.preventDefault();
      searchPrompt();
    } else if (e.key === "Escape") {
      unzoom();
    }
  });
}

function frameOf(el) {
  while (el && el.classList && !el.classList.contains("f")) el = el.parentNode;
  return el && el.classList ? el : null;
}

function fit(label, w) {
  var chars = Math.floor((w - 6) / (bee.fontsize * bee.fontwidth));
  if (chars < 3) return "";
  return label.length <= chars ? label : label.substring(0, chars - 2) + "..";
}

function place(f, x, w) {
  var r = f.children[1], t = f.children[2];
  r.setAttribute("x", x.toFixed(1));
  r.setAttribute("width", w.toFixed(1));
  t.setAttribute("x", (x + 3).toFixed(1));
  t.textContent = fit(f.getAttribute("data-n"), w);
}

function restore() {
  for (var i = 0; i < nodes.length; i++) {
    var f = nodes[i], r = f.children[1], t = f.children[2];
    f.classList.remove("hide", "parent");
    r.setAttribute("x", f._x);
    r.setAttribute("width", f._w);
    t.setAttribute("x", f._tx);
    t.textContent = f._t;
  }
}

// Zoom so that `node` fills the width: its ancestors span the width (faded), its
// descendants are rescaled, everything else is hidden.
function zoom(node) {
  restore();
  if (node === nodes[0]) { unzoom(); return; }
  zoomed = node;
  unzoombtn.classList.remove("hide");
  var full = bee.width - 2 * bee.xpad, o = node._o, end = node._o + node._v;
  var scale = full / node._v;
  for (var i = 0; i < nodes.length; i++) {
    var f = nodes[i];
    if (f === node) {
      place(f, bee.xpad, full);
    } else if (f._i < node._i && f._o <= o && f._o + f._v >= end) {
      f.classList.add("parent");
      place(f, bee.xpad, full);
    } else if (f._i > node._i && f._o >= o && f._o + f._v <= end) {
      place(f, bee.xpad + (f._o - o) * scale, f._v * scale);
    } else {
      f.classList.add("hide");
    }
  }
}

function unzoom() {
  restore();
  zoomed = null;
  unzoombtn.classList.add("hide");
}

function resetSearch() {
  for (var i = 0; i < nodes.length; i++) {
    nodes[i].children[1].setAttribute("fill", nodes[i]._fill);
  }
  searching = null;
  searchbtn.firstChild.nodeValue = "Search";
  matched.nodeValue = " ";
}

function searchPrompt() {
  if (searching !== null) { resetSearch(); return; }
  var term = window.prompt("Enter a search term (regexp allowed, eg: ^ext4_)", "");
  if (term) search(term);
}

// Highlight frames whose name matches `term` and show the share of all samples under
// matched frames, counting nested matches once. Returns that share in percent.
function search(term) {
  var re;
  resetSearch();
  try {
    re = new RegExp(term);
  } catch (e) {
    matched.nodeValue = "Invalid regex";
    return null;
  }
  searching = term;
  var hits = [];
  for (var i = 1; i < nodes.length; i++) {  // nodes[0] is "all": never a match
    var f = nodes[i];
    if (re.test(f.getAttribute("data-n"))) {
      f.children[1].setAttribute("fill", bee.searchcolor);
      hits.push(f);
    }
  }
  // Frames come depth first, so a match inside an earlier counted match is nested in it.
  var count = 0, end = -1;
  for (var j = 0; j < hits.length; j++) {
    var h = hits[j];
    if (h._o >= end) {
      count += h._v;
      end = h._o + h._v;
    }
  }
  var pct = bee.total > 0 ? 100 * count / bee.total : 0;
  searchbtn.firstChild.nodeValue = "Reset Search";
  matched.nodeValue = "Matched: " + pct.toFixed(1) + "%";
  return pct;
}
