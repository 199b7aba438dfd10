// vigil status page: auto-refresh (off while a form is being filled in, and
// remembered per browser), confirmation before dangerous form posts, and
// relative times. Plain JavaScript, no libraries.
(function () {
  "use strict";
  var box = document.getElementById("autorefresh");
  var key = "vigil.autorefresh";
  var period = 15000;
  var typing = false;
  if (box) {
    box.checked = localStorage.getItem(key) !== "off";
    box.addEventListener("change", function () {
      localStorage.setItem(key, box.checked ? "on" : "off");
    });
  }
  document.addEventListener("focusin", function (e) {
    if (e.target.matches("input:not([type=checkbox]), textarea")) typing = true;
  });
  setInterval(function () {
    if (box && box.checked && !typing && document.visibilityState === "visible") {
      // Reload without the one-time flash message.
      var u = new URL(location.href);
      u.searchParams.delete("flash");
      location.replace(u.toString());
    }
  }, period);
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      if (!window.confirm(f.getAttribute("data-confirm"))) e.preventDefault();
    });
  });
})();
