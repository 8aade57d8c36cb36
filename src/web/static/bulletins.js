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
