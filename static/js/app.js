// Shared helpers for the pages: CSRF-protected JSON calls and readable error messages.
"use strict";

window.TokenStore = (function () {
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // crypto.randomUUID needs a secure context; getRandomValues works everywhere.
  function newKey() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  // Resolves to {status, body, headers}; a network failure gives status 0.
  function request(method, url, body, idempotencyKey) {
    var headers = { "Accept": "application/json", "X-CSRFToken": csrfToken() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    return fetch(url, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { status: response.status, body: data, headers: response.headers };
      });
    }, function () {
      return { status: 0, body: {}, headers: new Headers() };
    });
  }

  function waitText(seconds) {
    var value, unit;
    if (seconds < 60) { value = Math.max(seconds, 1); unit = "second"; }
    else if (seconds < 3600) { value = Math.ceil(seconds / 60); unit = "minute"; }
    else { value = Math.ceil(seconds / 3600); unit = "hour"; }
    return value + " " + unit + (value === 1 ? "" : "s");
  }

  // Turn an API failure into a sentence and, where useful, a link.
  function describe(result, signinUrl) {
    var code = result.body && result.body.code;
    if (result.status === 0) {
      return { text: "We couldn't reach the server. Check your connection and try again." };
    }
    if (result.status === 401) {
      return { text: "You're signed out. ", link: { href: signinUrl || "/signin", label: "Sign in to continue" } };
    }
    if (result.status === 429) {
      var retry = parseInt(result.headers.get("Retry-After") || "", 10);
      var when = isNaN(retry) ? "a little while" : "about " + waitText(retry);
      return { text: "You've reached the purchase limit for now. You can buy again in " + when + "." };
    }
    if (code === "unknown_package") {
      return { text: "That pack is not available any more. Reload the page to see the current packs." };
    }
    if (code === "csrf_failed") {
      return { text: "This page has expired. Reload it and try again." };
    }
    if (result.status === 503) {
      return { text: "Payments are temporarily unavailable. Please try again in a minute." };
    }
    var message = (result.body && result.body.error) || "Something went wrong. Please try again.";
    return { text: message.charAt(0).toUpperCase() + message.slice(1) };
  }

  function showMessage(element, message) {
    element.textContent = message.text;
    if (message.link) {
      var link = document.createElement("a");
      link.href = message.link.href;
      link.textContent = message.link.label;
      element.appendChild(link);
    }
    element.hidden = false;
  }

  function hideMessage(element) {
    element.hidden = true;
    element.textContent = "";
  }

  function setBalance(balance) {
    document.querySelectorAll("[data-balance]").forEach(function (node) {
      node.textContent = String(balance);
    });
  }

  // Ask for ``url`` every ``everyMs`` while the tab is visible, sending the last ETag:
  // an unchanged answer is a 304 with no body. ``onChange(body)`` gets each new answer
  // and returns false to stop; a 401 or 404 stops too, other failures try again later.
  function watch(url, onChange, everyMs) {
    var etag = null, timer = null, busy = false, stopped = false;

    function schedule() {
      if (!stopped && timer === null && !busy) timer = window.setTimeout(tick, everyMs);
    }

    function finish(keepGoing) {
      busy = false;
      if (keepGoing === false) stopped = true;
      schedule();
    }

    function tick() {
      timer = null;
      if (stopped || busy || document.visibilityState !== "visible") return;
      busy = true;
      var headers = { "Accept": "application/json" };
      if (etag) headers["If-None-Match"] = etag;
      fetch(url, { headers: headers, credentials: "same-origin", cache: "no-store" }).then(
        function (response) {
          if (response.status === 304) return finish(true);
          if (response.status !== 200) return finish(response.status !== 401 && response.status !== 404);
          etag = response.headers.get("ETag");
          return response.json().then(function (body) { finish(onChange(body)); },
                                      function () { finish(true); });
        },
        function () { finish(true); });
    }

    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState !== "visible") return;
      if (timer !== null) { window.clearTimeout(timer); timer = null; }
      tick();  // catch up at once when the tab comes back
    });
    schedule();
  }

  // The header balance follows the account while the page is open; pages that show
  // more of the account listen for "tokenstore:account".
  var BALANCE_EVERY_MS = 4000;
  function watchBalance() {
    var shown = document.querySelector("[data-balance]");
    if (!shown) return;  // signed out
    // What the page was rendered with: a change before the first answer counts too.
    var last = { balance: parseInt(shown.textContent, 10), debt: undefined };
    watch("/api/tokens/balance", function (body) {
      var now = { balance: body.balance, debt: body.debt };
      setBalance(body.balance);
      if (last.balance !== now.balance || (last.debt !== undefined && last.debt !== now.debt)) {
        document.dispatchEvent(new CustomEvent("tokenstore:account", { detail: body }));
      }
      last = now;
      return true;
    }, BALANCE_EVERY_MS);
  }
  document.addEventListener("DOMContentLoaded", watchBalance);

  return {
    watch: watch,
    request: request,
    newKey: newKey,
    describe: describe,
    showMessage: showMessage,
    hideMessage: hideMessage,
    setBalance: setBalance,
  };
})();
