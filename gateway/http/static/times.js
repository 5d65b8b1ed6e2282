// The times a person acts on (when a post goes out, until when it waits), also in the reader's
// own time zone: the server writes them in UTC, which a co-signer elsewhere would otherwise
// have to work out before deciding. The page works without this file: the UTC time stays, and
// is all a reader whose zone is UTC at that moment is shown.
(function () {
  "use strict";
  if (!window.Intl || !window.MutationObserver) { return; }
  var format = new Intl.DateTimeFormat(undefined, {
    weekday: "short", day: "numeric", month: "short", year: "numeric",
    hour: "2-digit", minute: "2-digit", timeZoneName: "short"
  });

  function add() {
    var times = document.querySelectorAll("time[data-local][datetime]");
    for (var i = 0; i < times.length; i++) {
      var el = times[i];
      var next = el.nextElementSibling;
      if (next && next.classList.contains("local-time")) { continue; }
      var at = new Date(el.getAttribute("datetime"));
      if (isNaN(at.getTime()) || at.getTimezoneOffset() === 0) { continue; }
      var said = document.createElement("span");
      said.className = "local-time";
      said.textContent = " (your time: " + format.format(at) + ")";
      el.after(said);
    }
  }

  add();
  // The queue reads its list afresh as it changes (live.js): its new times are said too.
  new MutationObserver(add).observe(document.body, { childList: true, subtree: true });
})();
