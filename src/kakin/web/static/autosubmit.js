// A <select data-autosubmit> sends its (GET) form when a choice is made: the prefecture shows its municipalities.
document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
  select.addEventListener("change", function () { if (select.value) select.form.submit(); });
});
