// Draw every chart of the page from its inline JSON spec, then mark its div as rendered
// (data-rendered="true", or "error") so that browser tests can wait for it.
(function () {
  "use strict";
  var CANVAS_ABOVE = 5000; // points; svg becomes slow beyond this
  function renderer(spec) {
    var rows = spec && spec.data && spec.data.values ? spec.data.values.length : 0;
    var meta = spec && spec.usermeta && spec.usermeta.renderer;
    return meta || (rows > CANVAS_ABOVE ? "canvas" : "svg");
  }
  document.querySelectorAll("div.chart[data-spec]").forEach(function (div) {
    var source = document.getElementById(div.dataset.spec);
    var spec = JSON.parse(source.textContent);
    vegaEmbed(div, spec, { actions: false, renderer: renderer(spec) })
      .then(function (result) {
        div.dataset.rendered = "true";
        div.dispatchEvent(new CustomEvent("chart-rendered", { detail: result, bubbles: true }));
      })
      .catch(function (error) {
        div.dataset.rendered = "error";
        console.error("chart " + div.id + ": " + error);
      });
  });
})();
