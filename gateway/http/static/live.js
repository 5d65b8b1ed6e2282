// The queue's live updates and the cooling-off countdowns. The page works without this file:
// the countdowns are written by the server, and a reload shows what changed.
(function () {
  "use strict";

  var started = Date.now();

  function spoken(seconds) {
    var d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600);
    var m = Math.floor(seconds % 3600 / 60), s = seconds % 60, parts = [];
    if (d) { parts.push(d + (d === 1 ? " day" : " days")); }
    if (h) { parts.push(h + " h"); }
    if (m) { parts.push(m + " min"); }
    if (s && !d) { parts.push(s + " s"); }
    return parts.join(" ") || "0 s";
  }

  // Counted from when the page was read, with the server's figure: the visitor's clock may be off.
  function tick() {
    var shown = document.querySelectorAll("time.countdown[data-seconds]");
    var gone = Math.floor((Date.now() - started) / 1000);
    for (var i = 0; i < shown.length; i++) {
      var el = shown[i];
      var left = Number(el.dataset.seconds) - gone;
      el.textContent = left > 0 ? spoken(left) : "a moment";
    }
  }
  setInterval(tick, 1000);

  var list = document.getElementById("queue-list");
  var status = document.getElementById("live-status");
  if (!list || !status || !window.EventSource || !window.fetch) { return; }

  // Swapping the list under a person who is typing would lose their words: then only say so.
  function busy() {
    var active = document.activeElement;
    if (active && list.contains(active) && /^(TEXTAREA|INPUT|SELECT)$/.test(active.tagName)) { return true; }
    var fields = list.querySelectorAll("textarea");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value !== fields[i].defaultValue) { return true; }
    }
    return false;
  }

  // The posts shown and the version of each, in order. A card that changed, went or moved is
  // never swapped in under a person who may act on the list: a click meant for what they read
  // would approve (adopt, reject) what they were never shown, at a version the form now names.
  function shown(root) {
    var cards = root.querySelectorAll("article[data-post]"), out = [];
    for (var i = 0; i < cards.length; i++) { out.push(cards[i].dataset.post + "@" + cards[i].dataset.version); }
    return out.join(" ");
  }

  var pending = false;
  // told: what the status says once the fresh list is in ("Your queue changed.").
  function refresh(told) {
    told = told || "Your queue changed.";
    if (busy()) {
      status.textContent = told + " Reload the page to see what changed.";
      return;
    }
    if (pending) { return; }
    pending = true;
    fetch(window.location.pathname, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("queue-list");
        if (!fresh) { return; }
        if (list.querySelector("form") && shown(fresh) !== shown(list)) {
          status.textContent = told + " Reload the page to see what changed.";
          return;
        }
        list.replaceWith(fresh);
        list = fresh;
        started = Date.now();
        var counts = list.querySelectorAll("h2 .count");
        var words = [];
        for (var i = 0; i < counts.length; i++) { words.push(counts[i].parentNode.textContent.trim()); }
        status.textContent = told + " " + words.join("; ") + ".";
      })
      .catch(function () {
        status.textContent = told + " Reload the page to see what changed.";
      })
      .then(function () { pending = false; });
  }

  // A stream that ends (Byline's database gone, the gateway restarting) leaves the page out of
  // date: it says so at once. The browser reconnects by itself after the stream's retry; a
  // reconnect refused (503 while the database is gone) stops the EventSource for good, so the
  // page opens another, waiting longer each time. Once one opens, the list is read again for
  // whatever changed meanwhile. A refused EventSource says not why, and a session that ended
  // while the stream was cut off is refused too (401), for good: so the page asks the session
  // check first, and once signed out stops trying and says how to sign in again.
  var source = null, stale = false, wait = 5000, ended = false;
  var outOfDate = "Live updates are disconnected: this list may be out of date. Trying to reconnect\u2026";
  function signedOut() {
    ended = true;
    source.close();
    var link = document.createElement("a");
    link.href = list.dataset.signin;
    link.textContent = "Sign in again";
    status.textContent = "You were signed out. ";
    status.appendChild(link);
    status.appendChild(document.createTextNode(" to see your queue."));
  }
  function again() {
    if (ended) { return; }
    setTimeout(connect, wait);
    wait = Math.min(wait * 2, 60000);
  }
  function connect() {
    if (ended) { return; }
    source = new EventSource(list.dataset.events);
    source.addEventListener("open", function () {
      wait = 5000;
      if (stale) {
        stale = false;
        refresh("Live updates are back.");
      }
    });
    source.addEventListener("queue", function () { refresh(); });
    source.addEventListener("unavailable", function () {
      stale = true;
      status.textContent = outOfDate;
    });
    source.addEventListener("error", function () {
      if (ended) { return; }
      stale = true;
      status.textContent = outOfDate;
      if (source.readyState === EventSource.CLOSED) {
        fetch(list.dataset.session, { credentials: "same-origin", cache: "no-store" })
          .then(function (response) {
            if (response.status === 401) { signedOut(); } else { again(); }
          }, again);
      }
    });
    source.addEventListener("signedout", signedOut);
  }
  connect();
  window.addEventListener("pagehide", function () { ended = true; source.close(); });
})();
