// /token-purchase-success: while the payment is unconfirmed, poll the purchase until it
// is credited (or a time limit passes), then show the new balance and a short celebration.
"use strict";

(function () {
  var T = window.TokenStore;
  var root = document.querySelector("[data-success-page]");
  if (!root || !T) return;
  var OPEN = ["pending", "awaiting_payment"];
  var EVERY_MS = 1500;
  var LIMIT_MS = 60000;
  var SLOW = "This is taking longer than usual; we'll credit your tokens as soon as Stripe " +
    "confirms \u2014 you can leave this page.";
  var started = Date.now();

  function find(testId) {
    return root.querySelector('[data-testid="' + testId + '"]');
  }

  function text(selector, value) {
    root.querySelector(selector).textContent = value;
  }

  function showState(purchase, balance) {
    var state = purchase.state;
    var badge = find("purchase-state");
    badge.textContent = state;
    badge.className = "state state--" + state;
    root.dataset.state = state;
    if (typeof balance === "number") {
      find("balance").textContent = String(balance);
      T.setBalance(balance);
    }
    if (OPEN.indexOf(state) !== -1) return;
    find("confirming").hidden = true;
    if (state === "paid") {
      text("[data-heading]", "Payment received");
      text("[data-state-message]", purchase.tokens + " tokens were added to your balance.");
      find("celebration").hidden = false;
      document.title = "Thank you \u00b7 Token Store";
    } else if (state === "failed" || state === "expired") {
      text("[data-heading]", "Payment not completed");
      text("[data-state-message]", "The payment didn't go through, so no tokens were added. " +
        "You can try again from the token packs.");
    } else {
      text("[data-heading]", "We're checking this payment");
      text("[data-state-message]", "Your tokens will be added once it's confirmed; quote the " +
        "receipt reference below if you contact us.");
    }
  }

  function tooSlow() {
    var box = find("confirming");
    box.classList.add("is-slow");
    box.querySelector("[data-confirming-text]").textContent = SLOW;
  }

  // The same conditional polling as the header balance: 304s until the purchase moves.
  function follow(body) {
    if (body.purchase) showState(body.purchase, body.balance);
    if (body.purchase && OPEN.indexOf(body.purchase.state) === -1) return false;
    if (Date.now() - started >= LIMIT_MS) { tooSlow(); return false; }
    return true;
  }

  // Back from a failed 3D Secure challenge: the payment waits for another card, not for us.
  if (OPEN.indexOf(root.dataset.state) !== -1 && !("notAuthenticated" in root.dataset)) {
    T.watch("/api/tokens/purchases/" + encodeURIComponent(root.dataset.purchaseId), follow, EVERY_MS);
  }
})();
