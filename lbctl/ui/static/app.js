// lbctl's operator page: every few seconds, fetch this page's fragment (server-rendered,
// server-escaped HTML) and put it in place of <main id="content">.  Nothing else.
"use strict";
(function () {
  var body = document.body;
  var seconds = Number(body.dataset.refreshSeconds) || 5;
  var count = 0;
  var busy = false;

  function fragmentUrl() {
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    return url.toString();
  }

  function refresh() {
    if (busy) {
      return;
    }
    busy = true;
    fetch(fragmentUrl(), {credentials: "same-origin", cache: "no-store"})
      .then(function (answer) {
        if (!answer.ok) {
          throw new Error("HTTP " + answer.status);
        }
        return answer.text();
      })
      .then(function (html) {
        document.getElementById("content").innerHTML = html;
        count += 1;
        body.dataset.refreshed = String(count);
        body.classList.remove("stale");
      })
      .catch(function () {
        body.classList.add("stale");
      })
      .finally(function () {
        busy = false;
      });
  }

  window.setInterval(refresh, seconds * 1000);
})();
