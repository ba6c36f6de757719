// /tokens/history: when the header's balance watch sees the account change (a tip
// arrives, a refund takes tokens back), fetch this page again and swap in its
// balance card and history table, so no reload is needed. The tip form is left alone.
"use strict";

(function () {
  var REGIONS = ["balance-card", "history"];

  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    REGIONS.forEach(function (name) {
      var selector = '[data-live="' + name + '"]';
      var current = document.querySelector(selector);
      var next = fresh.querySelector(selector);
      if (current && next) current.replaceWith(document.importNode(next, true));
    });
  }

  document.addEventListener("tokenstore:account", function () {
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" }).then(
      function (response) { return response.ok ? response.text().then(swap) : null; },
      function () { return null; });
  });
})();
