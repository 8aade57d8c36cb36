// The bulletin pages' script (no framework). The list: a cancel asks for confirmation first.
// A bulletin's page: the counts and the stations' table refresh from
// /api/v1/bulletins/{id}/stations every few seconds, keeping the state filter. Without this
// script the pages still work (the cancel posts at once; the status page is reloaded by hand).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var forms = document.querySelectorAll("form.cancel-form");
  Array.prototype.forEach.call(forms, function (f) {
    f.addEventListener("submit", function (ev) {
      var title = f.getAttribute("data-title") || "";
      if (!window.confirm("Hủy bản tin «" + title + "»? Các trạm chưa phát sẽ bỏ bản tin; bản tin khẩn cấp đang phát sẽ dừng.")) {
        ev.preventDefault();
      }
    });
  });
});

// A bulletin's page: ask for the stations' states again every few seconds and redraw the counts
// and the table (text only: every value goes in through textContent).
document.addEventListener("DOMContentLoaded", function () {
  var table = document.getElementById("stations");
  if (!table || !window.fetch) {
    return;
  }
  var id = table.getAttribute("data-bulletin");
  var state = table.getAttribute("data-state") || "";
  var secs = parseInt(table.getAttribute("data-refresh-secs"), 10) || 5;
  var url = "/api/v1/bulletins/" + encodeURIComponent(id) + "/stations" +
    (state ? "?state=" + encodeURIComponent(state) : "");
  function cell(tr, text) {
    var td = document.createElement("td");
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }
  function draw(data) {
    Object.keys(data.counts).forEach(function (k) {
      var el = document.getElementById("count-" + k);
      if (el) {
        el.textContent = String(data.counts[k]);
      }
    });
    var updated = document.getElementById("updated");
    if (updated && data.updated) {
      updated.textContent = data.updated;
    }
    var body = document.createElement("tbody");
    data.stations.forEach(function (r) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-station", r.station);
      tr.setAttribute("data-state", r.state);
      cell(tr, (r.name || r.station) + " (" + r.station + ")");
      cell(tr, r.area_code);
      cell(tr, r.state_vi).className = "state-" + r.state;
      cell(tr, r.detail_vi);
      cell(tr, r.delivered_at || "");
      var td = cell(tr, "");
      r.airings.forEach(function (a, i) {
        if (i > 0) {
          td.appendChild(document.createElement("br"));
        }
        td.appendChild(document.createTextNode(a.line));
      });
      body.appendChild(tr);
    });
    if (data.stations.length === 0) {
      var tr = document.createElement("tr");
      tr.className = "empty";
      var td = cell(tr, "Không có trạm nào.");
      td.colSpan = 6;
      body.appendChild(tr);
    }
    table.replaceChild(body, table.tBodies[0]);
  }
  function tick() {
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) { draw(data); } })
      .catch(function () { /* the next tick tries again */ })
      .then(function () { window.setTimeout(tick, secs * 1000); });
  }
  window.setTimeout(tick, secs * 1000);
});
