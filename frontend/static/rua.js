// Draws the figures the server built: each <div data-figure="ID"> takes its JSON from the
// <script type="application/json" id="ID"> next to it. No inline script, so the pages keep a
// strict Content-Security-Policy; plotly.js is served by Rua itself.
"use strict";

function drawFigures() {
  if (typeof Plotly === "undefined") return;
  for (const element of document.querySelectorAll("[data-figure]")) {
    const source = document.getElementById(element.dataset.figure);
    if (!source) continue;
    const figure = JSON.parse(source.textContent);
    Plotly.newPlot(element, figure.data, figure.layout, {
      displaylogo: false,
      responsive: true,
      modeBarButtonsToRemove: ["select2d", "lasso2d"],
    }).then(() => element.setAttribute("data-drawn", "true"));
  }
}

// a click on a bar with a link in its customdata goes there: drill-down from a chart
function followBarLinks() {
  for (const element of document.querySelectorAll("[data-figure]")) {
    if (!element.on) continue;
    element.on("plotly_click", (event) => {
      const point = event.points && event.points[0];
      const link = point && point.customdata && (Array.isArray(point.customdata) ? point.customdata[0] : point.customdata);
      if (typeof link === "string" && link.startsWith("/")) window.location.assign(link);
    });
  }
}

// a <select data-submit> sends its form when changed (the Apply button stays for keyboards)
function submitOnChange() {
  for (const select of document.querySelectorAll("select[data-submit]")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }
}

document.addEventListener("DOMContentLoaded", () => {
  drawFigures();
  followBarLinks();
  submitOnChange();
});
