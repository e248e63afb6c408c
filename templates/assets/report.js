// Draw every chart of the page from its inline JSON spec, then mark its div as rendered
// (data-rendered="true", or "error") so that browser tests can wait for it. A spec of more points
// than this script tag's data-canvas-above (charts.CANVAS_ABOVE, written by base.html) is drawn
// on canvas: svg becomes slow beyond it.
// A chart wider than its box (on a phone) scrolls inside it; its figure's .scroll-cue is then
// shown, since nothing else tells the reader that a legend or the last bars are out of sight.
// Vega's tooltip is kept inside the window: where it fits on no side of the pointer (a wide tip
// on a phone), Vega leaves it partly off-screen.
(function () {
  "use strict";
  var canvasAbove = Number(document.currentScript.dataset.canvasAbove);
  var margin = parseFloat(getComputedStyle(document.documentElement).getPropertyValue("--tip-margin"));
  function keepInWindow(tip) {
    if (!tip || !tip.classList.contains("visible")) return;
    var box = tip.getBoundingClientRect();  // the tip is position: fixed, in window coordinates
    var left = Math.min(box.left, window.innerWidth - margin - box.width);
    var top = Math.min(box.top, window.innerHeight - margin - box.height);
    tip.style.left = Math.max(margin, left) + "px";
    tip.style.top = Math.max(margin, top) + "px";
  }
  function showScrollCue(div) {
    var cue = div.parentElement.querySelector(".scroll-cue");
    if (cue) cue.hidden = div.scrollWidth <= div.clientWidth + 1;
  }
  var drawn = [];
  window.addEventListener("resize", function () { drawn.forEach(showScrollCue); });
  // Vega places its tip while the pointer event reaches the chart; this runs as the event
  // bubbles up to the document, after it. (Handing Vega a wrapped tooltip handler instead would
  // make it draw each chart again.)
  ["pointermove", "mousemove"].forEach(function (type) {
    document.addEventListener(type, function () {
      keepInWindow(document.getElementById("vg-tooltip-element"));
    });
  });
  function renderer(spec) {
    var rows = spec && spec.data && spec.data.values ? spec.data.values.length : 0;
    var meta = spec && spec.usermeta && spec.usermeta.renderer;
    return meta || (rows > canvasAbove ? "canvas" : "svg");
  }
  document.querySelectorAll("div.chart[data-spec]").forEach(function (div) {
    var source = document.getElementById(div.dataset.spec);
    var spec = JSON.parse(source.textContent);
    vegaEmbed(div, spec, { actions: false, renderer: renderer(spec) })
      .then(function (result) {
        drawn.push(div);
        showScrollCue(div);
        div.dataset.rendered = "true";
        div.dispatchEvent(new CustomEvent("chart-rendered", { detail: result, bubbles: true }));
      })
      .catch(function (error) {
        div.dataset.rendered = "error";
        console.error("chart " + div.id + ": " + error);
      });
  });
})();

// Sortable tables: a header's button sorts the body's rows by that column's data-value, in the
// header's data-first direction, then the other way on the next click. Rows are moved, never
// rebuilt, so no markup is parsed; rows without a number go last either way.
(function () {
  "use strict";
  function cellNumber(row, index) {
    var value = parseFloat(row.cells[index].getAttribute("data-value"));
    return isNaN(value) ? null : value;
  }
  function sortRows(table, index, descending) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellNumber(a, index);
      var y = cellNumber(b, index);
      if (x === null || y === null) return (x === null) - (y === null);
      return descending ? y - x : x - y;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
    headers.forEach(function (th, index) {
      var button = th.querySelector("button.sort");
      if (!button) return;
      button.addEventListener("click", function () {
        var current = th.getAttribute("aria-sort");
        var first = th.getAttribute("data-first") || "descending";
        var order = current ? (current === "descending" ? "ascending" : "descending") : first;
        headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", order);
        sortRows(table, index, order === "descending");
      });
    });
  });
})();

// Cluster explorer (clusters.html): show the cluster table of the map, linkage and cut picked in the
// chart's selectors, and hide clusters below the size typed in the filter, in the tables and in
// the chart. Rows are only shown or hidden through `hidden`; no markup is ever built.
(function () {
  "use strict";
  var box = document.querySelector("[data-cluster-explorer]");
  if (!box) return;
  var tables = Array.prototype.slice.call(box.querySelectorAll("table.cluster-table"));
  var input = box.querySelector("input.min-cluster-size");
  var shown = { map: box.dataset.map, linkage: box.dataset.linkage, cut: box.dataset.cut };
  var view = null;
  function minimumSize() {
    var value = parseInt(input.value, 10);
    return isNaN(value) || value < 1 ? 1 : value;
  }
  function update() {
    var limit = minimumSize();
    tables.forEach(function (table) {
      table.hidden = table.dataset.map !== shown.map || table.dataset.linkage !== shown.linkage ||
        table.dataset.cut !== String(shown.cut);
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        row.hidden = parseInt(row.dataset.size, 10) < limit;
      });
    });
  }
  box.addEventListener("chart-rendered", function (event) {
    if (event.target.id !== box.dataset.chart) return;
    view = event.detail.view;
    shown.map = view.signal(box.dataset.mapParam);
    shown.linkage = view.signal(box.dataset.linkageParam);
    view.addSignalListener(box.dataset.mapParam, function (name, value) {
      shown.map = value;
      update();
    });
    view.addSignalListener(box.dataset.linkageParam, function (name, value) {
      shown.linkage = value;
      update();
    });
    shown.cut = view.signal(box.dataset.cutParam);
    view.addSignalListener(box.dataset.cutParam, function (name, value) {
      shown.cut = value;
      update();
    });
    view.signal(box.dataset.minSizeParam, minimumSize()).runAsync();
    update();
  });
  input.addEventListener("input", function () {
    update();
    if (view) view.signal(box.dataset.minSizeParam, minimumSize()).runAsync();
  });
  update();
})();

// Tooltips: an element with data-tip shows that text in one small box, placed under it, on hover,
// on tap and on keyboard focus. The text is set with textContent, never parsed as markup, so
// corpus text stays text. A [data-tips] box (a heatmap, a list) takes one Tab stop; the arrow
// keys, Home and End then step through its items, which are made focusable only as they are
// reached, so a page of 2,000 words carries no per-word attribute for it. Escape hides the tip.
// A box with data-tip-rows="ID" (the expectancy text) has its spans as items and their tips in
// the JSON table <script id="ID"> that heatmap.expectancy_tips writes: row i is span i's
// [word] or [word, p, guess, per mille, guess, per mille, ...], with words as indices.
(function () {
  "use strict";
  var tip = null;
  var current = null;
  var MARGIN = 8; // px kept between the tip and the window's edges
  function element() {
    if (!tip) {
      tip = document.createElement("div");
      tip.className = "tip";
      tip.id = "reportgen-tip";
      tip.setAttribute("role", "tooltip");
      tip.hidden = true;
      document.body.appendChild(tip);
    }
    return tip;
  }
  function place(target) {
    var rect = target.getBoundingClientRect();
    var width = document.documentElement.clientWidth;
    var box = tip.getBoundingClientRect();
    var left = Math.max(MARGIN, Math.min(rect.left, width - box.width - MARGIN));
    var top = rect.bottom + 6;
    if (top + box.height > window.innerHeight && rect.top - box.height - 6 > 0) {
      top = rect.top - box.height - 6;
    }
    tip.style.left = (left + window.scrollX) + "px";
    tip.style.top = (top + window.scrollY) + "px";
  }
  function isRowBox(box) { return box.hasAttribute("data-tip-rows"); }
  function itemsOf(box) {
    if (!box.tipItems) {
      var found = isRowBox(box) ? box.querySelectorAll(":scope > span") : box.querySelectorAll("[data-tip]");
      box.tipItems = Array.prototype.slice.call(found);
    }
    return box.tipItems;
  }
  function tableOf(box) {
    if (!box.tipTable) {
      box.tipTable = JSON.parse(document.getElementById(box.getAttribute("data-tip-rows")).textContent);
    }
    return box.tipTable;
  }
  function probability(p) { // as heatmap.shown_probability: 0.0160, or 1.6e-05 below 0.001
    return p >= 0.001 ? p.toFixed(4) : p.toExponential(1).replace(/e([+-])(\d)$/, "e$10$2");
  }
  function rowText(table, row) {
    var word = table.words[row[0]];
    if (row.length === 1) return word + ": first token, not predicted";
    var guesses = [];
    for (var i = 2; i + 1 < row.length; i += 2) {
      guesses.push(table.words[row[i]] + " " + (row[i + 1] / 1000).toFixed(3));
    }
    return word + ": p = " + probability(row[1]) + "\nexpected: " + guesses.join(", ");
  }
  function tipText(item, box) {
    if (!isRowBox(box)) return item.getAttribute("data-tip");
    return rowText(tableOf(box), tableOf(box).rows[itemsOf(box).indexOf(item)]);
  }
  function show(target, box) {
    element();
    if (current && current !== target) current.removeAttribute("aria-describedby");
    current = target;
    tip.textContent = tipText(target, box);
    tip.style.left = "0px"; // measured at the left edge, so the page edge does not squeeze it
    tip.style.top = "0px";
    tip.hidden = false;
    place(target);
    target.setAttribute("aria-describedby", tip.id);
  }
  function hide() {
    if (tip) tip.hidden = true;
    if (current) current.removeAttribute("aria-describedby");
    current = null;
  }
  function itemOf(node, box) {
    var item = node && node.closest ? node.closest(isRowBox(box) ? "span" : "[data-tip]") : null;
    if (!item || !box.contains(item)) return null;
    return !isRowBox(box) || item.parentNode === box ? item : null;
  }
  function step(box, key) {
    var items = itemsOf(box);
    if (!items.length) return;
    var at = items.indexOf(document.activeElement);
    var next;
    if (key === "Home") next = 0;
    else if (key === "End") next = items.length - 1;
    else if (at < 0) next = 0;
    else if (key === "ArrowRight" || key === "ArrowDown") next = Math.min(at + 1, items.length - 1);
    else next = Math.max(at - 1, 0);
    items[next].tabIndex = -1;
    items[next].focus();
  }
  var KEYS = ["ArrowRight", "ArrowDown", "ArrowLeft", "ArrowUp", "Home", "End"];
  document.querySelectorAll("[data-tips]").forEach(function (box) {
    box.addEventListener("mouseover", function (event) {
      var item = itemOf(event.target, box);
      if (item && item !== current) show(item, box);
    });
    box.addEventListener("mouseout", function (event) {
      if (current && !current.contains(event.relatedTarget)) {
        var focused = itemOf(document.activeElement, box);
        if (focused) show(focused, box); else hide();
      }
    });
    box.addEventListener("click", function (event) { // a tap on a touch screen
      var item = itemOf(event.target, box);
      if (item) show(item, box);
    });
    box.addEventListener("focusin", function (event) {
      var item = itemOf(event.target, box);
      if (item) show(item, box);
    });
    box.addEventListener("focusout", function () { hide(); });
    box.addEventListener("keydown", function (event) {
      if (KEYS.indexOf(event.key) >= 0) {
        event.preventDefault();
        step(box, event.key);
      } else if (event.key === "Escape") {
        hide();
      }
    });
  });
  document.addEventListener("pointerdown", function (event) {
    if (current && !(event.target.closest && event.target.closest("[data-tip], [data-tip-rows] > span"))) hide();
  });
  window.addEventListener("resize", hide);
})();
