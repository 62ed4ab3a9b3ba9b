// porki dashboard: keeps the page's live part current without reloading.
//
// The server sends a `change` event (server-sent events, /events) when the
// store changes; the page then re-fetches its live part (`?fragment=1`), at
// most one request at a time and one every 300 ms. Countdowns (lease and
// backoff time left) tick every second in between.
(function () {
  'use strict';

  var MIN_GAP_MS = 300;
  var live = document.getElementById('live');
  var status = document.getElementById('live-status');

  // A ?token= in the address bar is kept in a cookie by the server: drop it
  // from the URL so it does not stay in the history.
  var here = new URL(window.location.href);
  if (here.searchParams.has('token')) {
    here.searchParams.delete('token');
    window.history.replaceState(null, '', here.pathname + here.search + here.hash);
  }

  function setStatus(text, cls) {
    if (!status) return;
    status.textContent = text;
    status.className = 'live-status ' + cls;
  }

  // Server time minus browser time, so countdowns agree with the server.
  var skew = 0;
  function readClock() {
    var now = Number(live && live.getAttribute('data-now'));
    if (now) skew = now - Date.now();
  }

  function format(ms) {
    var s = Math.floor(ms / 1000);
    if (s < 1) return Math.max(0, ms) + 'ms';
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + String(s % 60).padStart(2, '0') + 's';
    return Math.floor(s / 3600) + 'h ' + String(Math.floor(s / 60) % 60).padStart(2, '0') + 'm';
  }

  function tick() {
    var now = Date.now() + skew;
    var items = document.querySelectorAll('[data-until]');
    for (var i = 0; i < items.length; i++) {
      var left = Number(items[i].getAttribute('data-until')) - now;
      items[i].textContent = left > 0 ? format(left) : 'now';
    }
  }

  var busy = false;
  var again = false;
  var last = 0;
  var timer = null;
  var updates = 0;

  function refresh() {
    if (busy) { again = true; return; }
    var wait = last + MIN_GAP_MS - Date.now();
    if (wait > 0) {
      if (!timer) timer = setTimeout(function () { timer = null; refresh(); }, wait);
      return;
    }
    busy = true;
    last = Date.now();
    var url = new URL(window.location.href);
    url.searchParams.set('fragment', '1');
    fetch(url.toString(), { credentials: 'same-origin', cache: 'no-store' })
      .then(function (response) {
        return response.text().then(function (html) { return [response.ok, html]; });
      })
      .then(function (answer) {
        // The server renders (and escapes) every piece of it.
        live.innerHTML = answer[1];
        updates += 1;
        live.setAttribute('data-updates', String(updates));
        if (answer[0]) setStatus('live', 'ok'); else setStatus('store unreachable', 'bad');
        tick();
      })
      .catch(function () { setStatus('cannot reach porki; retrying', 'bad'); })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  if (!live) return;
  readClock();
  tick();
  setInterval(tick, 1000);
  if (!window.EventSource) {
    setStatus('no live updates in this browser: reload to refresh', 'bad');
    return;
  }
  var source = new EventSource(document.body.getAttribute('data-events') || '/events');
  source.addEventListener('change', refresh);
  source.onopen = function () { setStatus('live', 'ok'); refresh(); };
  source.onerror = function () { setStatus('reconnecting…', 'bad'); };
})();
