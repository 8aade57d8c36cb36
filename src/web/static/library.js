// The library page's upload form with a progress bar (XMLHttpRequest upload.onprogress).
// Without this script the form posts as usual; with it, the same request is sent by XHR and
// the answer (the library page, or the page with the refusal) replaces this one.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("upload-form");
  if (!form || !window.FormData || !window.XMLHttpRequest) {
    return;
  }
  var bar = document.getElementById("upload-progress");
  var status = document.getElementById("upload-status");
  var button = document.getElementById("upload");
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    bar.hidden = false;
    bar.value = 0;
    button.disabled = true;
    status.textContent = "Đang tải lên…";
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) {
        var pct = Math.floor((e.loaded / e.total) * 100);
        bar.value = pct;
        status.textContent = "Đang tải lên: " + pct + " %";
      }
    };
    xhr.upload.onload = function () {
      bar.value = 100;
      status.textContent = "Đã gửi xong; máy chủ đang giải mã và đo độ lớn…";
    };
    xhr.onload = function () {
      if (xhr.responseURL) {
        window.history.replaceState(null, "", xhr.responseURL);
      }
      document.open();
      document.write(xhr.responseText);
      document.close();
    };
    xhr.onerror = function () {
      button.disabled = false;
      status.textContent = "Mất kết nối khi tải lên; không có gì được lưu. Hãy thử lại.";
    };
    xhr.send(new FormData(form));
  });
});
