// fleet dashboard: keeps the page live through the server's event stream
// (GET /ui/events, the API's stream behind the session cookie). Rows and the
// node page's state change in place; nothing else is fetched. No framework,
// no build step: this file is served as it is (docs/decisions/0018).
'use strict';
(function () {
  var body = document.body;
  if (!body || !body.hasAttribute('data-live') || typeof EventSource === 'undefined') return;
  var status = document.getElementById('live-status');
  function setLive(s) {
    body.setAttribute('data-live', s);
    if (status) status.textContent = 'live: ' + s;
  }
  function badge(state) {
    var span = document.createElement('span');
    span.className = 'state st-' + (/^[a-z-]{1,40}$/.test(state) ? state : 'other');
    span.setAttribute('data-state', state);
    span.textContent = state; // text, never markup
    return span;
  }
  function cellsOf(node) {
    var out = [];
    var rows = document.querySelectorAll('tr[data-node], h1[data-node]');
    for (var i = 0; i < rows.length; i++) if (rows[i].getAttribute('data-node') === node) out.push(rows[i]);
    return out;
  }
  // From the page's last event id: a change between the page and its stream is not lost (reconnects use Last-Event-ID).
  var after = body.getAttribute('data-after');
  var es = new EventSource('/ui/events' + (after && /^\d+$/.test(after) ? '?after=' + after : ''));
  es.addEventListener('open', function () { setLive('connected'); });
  es.addEventListener('error', function () { setLive(es.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting'); });
  es.addEventListener('state.changed', function (msg) {
    var e;
    try { e = JSON.parse(msg.data); } catch (err) { return; }
    if (!e || typeof e.node !== 'string' || typeof e.toState !== 'string') return;
    var hits = cellsOf(e.node);
    for (var i = 0; i < hits.length; i++) {
      var cell = hits[i].querySelector('.state-cell');
      if (cell) {
        cell.textContent = '';
        cell.appendChild(badge(e.toState));
      }
      var since = hits[i].querySelector('.since');
      if (since) { since.textContent = '0s'; since.setAttribute('data-since', e.time); since.title = e.time; }
      var last = hits[i].querySelector('.last');
      if (last) last.textContent = e.kind + ' ' + e.time;
      hits[i].classList.add('changed');
    }
    // The overview's counts by state follow (a state with no card yet shows on the next load).
    function bump(state, by) {
      if (typeof state !== 'string') return;
      var cards = document.querySelectorAll('[data-count-state]');
      for (var j = 0; j < cards.length; j++) {
        if (cards[j].getAttribute('data-count-state') !== state) continue;
        var n = parseInt(cards[j].textContent, 10);
        if (!isNaN(n)) cards[j].textContent = String(Math.max(0, n + by));
      }
    }
    if (e.fromState !== e.toState) {
      bump(e.fromState, -1);
      bump(e.toState, +1);
    }
  });
  window.addEventListener('pagehide', function () { es.close(); });
})();
