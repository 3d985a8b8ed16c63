// 組織設定: the postal code gets its hyphen as it is typed, and seven digits fill the address from
// GET /portal/postal/NNNNNNN (Japan Post's data on the server). Without this script the server fills the address.
(function () {
  var code = document.getElementById("postal_code");
  var address = document.getElementById("address");
  if (!code || !address) return;
  var filled = "";  // the address this script last filled in: replaced when the code changes, typing kept otherwise
  code.addEventListener("input", function () {
    var digits = code.value.replace(/[^0-9０-９]/g, "").replace(/[０-９]/g, function (d) {
      return String.fromCharCode(d.charCodeAt(0) - 0xFEE0);
    }).slice(0, 7);
    code.value = digits.length > 3 ? digits.slice(0, 3) + "-" + digits.slice(3) : digits;
    if (digits.length !== 7) return;
    fetch("/portal/postal/" + digits, {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (found) {
        if (!found.address) return;
        if (address.value === "" || address.value === filled) {
          address.value = found.address;
          filled = found.address;
          address.focus();
          address.setSelectionRange(address.value.length, address.value.length);
        }
      });
  });
})();
