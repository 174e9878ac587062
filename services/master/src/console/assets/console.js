// The console's only script (served from /ui/assets, allowed by the page's Content-Security-Policy):
// keeps the pending approvals live, refreshes a run's page while it is in progress. Every action
// is a plain form and works without it.
(function () {
  "use strict";

  // Whether the user is typing in `region`: a refresh then waits, so no text is lost.
  function busy(region) {
    var a = document.activeElement;
    return a && region.contains(a) && (a.tagName === "INPUT" || a.tagName === "SELECT") && a.value !== "";
  }

  function refresh(region) {
    if (busy(region)) {
      region.dataset.stale = "1";
      return;
    }
    fetch(region.dataset.live, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null && region.innerHTML.trim() !== html.trim()) {
          region.innerHTML = html;
        }
        delete region.dataset.stale;
      })
      .catch(function () {});
  }

  function live() {
    var regions = Array.prototype.slice.call(document.querySelectorAll("[data-live]"));
    if (regions.length === 0) return;
    var all = function () { regions.forEach(refresh); };
    regions.forEach(function (region) {
      region.addEventListener("focusout", function () {
        if (region.dataset.stale) setTimeout(function () { refresh(region); }, 0);
      });
    });
    if (window.EventSource) {
      var events = new EventSource("/ui/events");
      events.addEventListener("approvals", all);
      events.addEventListener("open", all);
    }
    // A missed event (a proxy that buffers streams) costs at most this long.
    setInterval(all, 5000);
  }

  function reloadWhileActive() {
    var el = document.querySelector("[data-refresh-ms]");
    if (!el) return;
    var ms = parseInt(el.dataset.refreshMs, 10) || 1000;
    setInterval(function () {
      if (!busy(document.body)) window.location.reload();
    }, ms);
  }

  document.addEventListener("DOMContentLoaded", function () {
    live();
    reloadWhileActive();
  });
})();
