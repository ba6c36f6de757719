// /buy-tokens: Buy starts hosted checkout; "Pay here" opens the embedded payment form.
// Without this script each Buy button still posts its form to /buy-tokens/checkout.
"use strict";

(function () {
  var T = window.TokenStore;
  var page = document.querySelector("[data-buy-page]");
  if (!page || !T) return;
  var mode = page.dataset.mode;
  var signinUrl = page.dataset.signinUrl;
  var buyError = document.querySelector('[data-testid="buy-error"]');

  function busy(button, on) {
    button.disabled = on;
    if (on) button.setAttribute("aria-busy", "true");
    else button.removeAttribute("aria-busy");
  }

  // -- hosted checkout --------------------------------------------------------

  function startCheckout(form) {
    var button = form.querySelector('button[type="submit"]');
    if (form.dataset.busy === "1") return; // a double click sends one request
    form.dataset.busy = "1";
    busy(button, true);
    T.hideMessage(buyError);
    // One key per click intent, kept for retries, so the server makes one session.
    if (!form.dataset.intentKey) form.dataset.intentKey = T.newKey();
    var pack = form.querySelector('input[name="package"]').value;
    T.request("POST", "/api/tokens/create-checkout-session", { package: pack }, form.dataset.intentKey)
      .then(function (result) {
        if (result.status === 200 && result.body.url) {
          window.location.assign(result.body.url);
          return;
        }
        form.dataset.busy = "";
        busy(button, false);
        T.showMessage(buyError, T.describe(result, signinUrl));
        buyError.scrollIntoView({ block: "nearest" }); // it sits above the cards
      });
  }

  page.querySelectorAll("form[data-buy-form]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      startCheckout(form);
    });
  });

  // Coming back from Stripe with the Back button restores this page from cache:
  // the buttons must work again, with a fresh intent.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    page.querySelectorAll("form[data-buy-form]").forEach(function (form) {
      form.dataset.busy = "";
      delete form.dataset.intentKey;
      busy(form.querySelector('button[type="submit"]'), false);
    });
  });

  // -- embedded payment -------------------------------------------------------

  var panel = document.getElementById("embedded-panel");
  if (!panel) return;
  var form = panel.querySelector('[data-testid="embedded-payment"]');
  var payError = form.querySelector('[data-testid="payment-error"]');
  var payButton = form.querySelector('[data-testid="embedded-pay"]');
  var cardInput = form.querySelector('input[name="card_number"]');
  var selected = null; // {pack, card, button, key, intent}
  var stripe = null;
  var elements = null;

  function select(card, button) {
    if (!selected || selected.pack !== card.dataset.pack) {
      selected = { pack: card.dataset.pack, card: card, button: button, key: T.newKey(), intent: null };
    }
    page.querySelectorAll("[data-pack]").forEach(function (other) {
      other.classList.toggle("is-selected", other === card);
    });
    page.querySelectorAll("[data-pay-here]").forEach(function (other) {
      other.setAttribute("aria-expanded", String(other === button));
    });
    panel.querySelector("[data-embedded-name]").textContent = card.dataset.name + " pack";
    panel.querySelector("[data-embedded-summary]").textContent =
      card.querySelector(".pack__count").textContent + " tokens for " + card.dataset.price;
    panel.querySelector("[data-embedded-price]").textContent = card.dataset.price;
    T.hideMessage(payError);
    panel.hidden = false;
    if (mode === "stripe") mountStripe(card);
    panel.scrollIntoView({ block: "nearest" });
    (cardInput || payButton).focus();
  }

  function close() {
    panel.hidden = true;
    page.querySelectorAll("[data-pack]").forEach(function (card) { card.classList.remove("is-selected"); });
    if (selected) {
      selected.button.setAttribute("aria-expanded", "false");
      selected.button.focus();
    }
  }

  page.querySelectorAll("[data-pay-here]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      select(button.closest("[data-pack]"), button);
    });
  });
  panel.querySelector("[data-embedded-close]").addEventListener("click", close);

  function fail(result) {
    T.showMessage(payError, T.describe(result, signinUrl));
  }

  // Resolves to null once the payment intent exists, else to the failed response.
  function ensureIntent(choice) {
    if (choice.intent) return Promise.resolve(null);
    return T.request("POST", "/api/tokens/create-payment-intent", { package: choice.pack }, choice.key)
      .then(function (result) {
        if (result.status === 200 && result.body.payment_intent_id) {
          choice.intent = { id: result.body.payment_intent_id, secret: result.body.client_secret };
          return null;
        }
        return result;
      });
  }

  // Returns true: the page is leaving, so the Pay button stays disabled.
  function succeed(intentId) {
    window.location.assign("/token-purchase-success?payment_intent=" + encodeURIComponent(intentId));
    return true;
  }

  // Sandbox: the app's own card form; the sandbox confirms like Stripe would.
  function paySandbox(choice) {
    var number = cardInput.value.trim();
    if (!number) {
      T.showMessage(payError, { text: "Enter a card number." });
      cardInput.focus();
      return Promise.resolve();
    }
    return ensureIntent(choice).then(function (failure) {
      if (failure) return fail(failure);
      var url = "/sandbox/payment-intents/" + encodeURIComponent(choice.intent.id) + "/confirm";
      return T.request("POST", url, { card_number: number, client_secret: choice.intent.secret })
        .then(function (result) {
          var next = result.body && result.body.next_action;
          if (result.status === 200 && result.body.status === "requires_action" && next) {
            // 3D Secure: the bank's challenge page, which returns to the success page.
            window.location.assign(next.redirect_to_url.url);
            return true;
          }
          if (result.status === 200 && result.body.success) return succeed(choice.intent.id);
          fail(result);
          cardInput.focus();
        });
    });
  }

  // Production: Stripe's Payment Element; the intent is created when the buyer pays.
  function mountStripe(card) {
    if (!window.Stripe || !form.dataset.stripeKey) {
      T.showMessage(payError, { text: "The payment form could not load. Use Buy instead, or reload the page." });
      return;
    }
    stripe = stripe || window.Stripe(form.dataset.stripeKey);
    elements = stripe.elements({
      mode: "payment",
      amount: parseInt(card.dataset.amount, 10),
      currency: card.dataset.currency,
    });
    var container = form.querySelector("#payment-element");
    container.textContent = "";
    elements.create("payment").mount(container);
  }

  function payStripe(choice) {
    if (!elements) return Promise.resolve();
    return elements.submit().then(function (checked) {
      if (checked.error) return T.showMessage(payError, { text: checked.error.message });
      return ensureIntent(choice).then(function (failure) {
        if (failure) return fail(failure);
        return stripe.confirmPayment({
          elements: elements,
          clientSecret: choice.intent.secret,
          confirmParams: { return_url: form.dataset.returnUrl },
        }).then(function (outcome) {
          if (!outcome.error) return true; // Stripe is redirecting to the return URL
          T.showMessage(payError, { text: outcome.error.message });
        });
      });
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!selected || payButton.disabled) return;
    T.hideMessage(payError);
    busy(payButton, true);
    var paying = mode === "stripe" ? payStripe(selected) : paySandbox(selected);
    paying.then(function (leaving) { if (!leaving) busy(payButton, false); }, function () {
      busy(payButton, false);
      T.showMessage(payError, { text: "Something went wrong. Please try again." });
    });
  });
})();
