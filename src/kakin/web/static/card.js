// Stripe Elements for the portal's card entry (templates/portal/_card.html). The card number goes from the browser to
// Stripe; the form posts only the PaymentMethod id Stripe returns (pm_…) as "payment_method".
(function () {
  "use strict";
  var mount = document.getElementById("card-element");
  if (!mount || typeof Stripe === "undefined") { return; }
  var stripe = Stripe(mount.dataset.publishableKey, { locale: mount.dataset.locale || "ja" });
  var card = stripe.elements().create("card", { hidePostalCode: true });
  card.mount(mount);
  var form = mount.closest("form");
  var errors = document.getElementById("card-errors");
  var field = document.getElementById("payment-method");
  form.addEventListener("submit", function (event) {
    if (field.value) { return; }
    event.preventDefault();
    stripe.createPaymentMethod({ type: "card", card: card }).then(function (result) {
      if (result.error) {
        errors.textContent = result.error.message;
        errors.hidden = false;
        return;
      }
      field.value = result.paymentMethod.id;
      form.submit();
    });
  });
}());
