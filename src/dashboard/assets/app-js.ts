/**
 * The dashboard's script, plain ES2017 for any current browser with no build step (see
 * index-html.ts for why a string module). String.raw keeps its regular expressions as written.
 */
export const APP_JS = String.raw`'use strict';
// The dashboard page: one event stream of snapshots (a fetch, so the token can go in a header),
// tables rendered from them, uPlot charts of history kept here since the page opened.
(function () {
  var HISTORY = 300; // seconds of history per chart
  var MAX_ROWS = 200; // rows rendered per table; the rest are counted, filtered or sorted away
  var state = { snap: null, sortM: 'depth', sortP: 'rateSent', filter: '', selected: null, token: '' };
  var totals = { t: [], rin: [], rout: [], depth: [] };
  var perMailbox = new Map(); // name -> {t, depth, rin, rout, rack, rre}
  var charts = {};

  var m = /[#&]token=([^&]+)/.exec(location.hash);
  if (m) {
    state.token = decodeURIComponent(m[1]);
    sessionStorage.setItem('ipcbox-token', state.token);
    history.replaceState(null, '', location.pathname);
  } else state.token = sessionStorage.getItem('ipcbox-token') || '';

  function $(id) { return document.getElementById(id); }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }
  function headers() {
    var h = { 'Content-Type': 'application/json' };
    if (state.token) h.Authorization = 'Bearer ' + state.token;
    return h;
  }
  function notice(text, error) {
    var n = $('notice');
    n.textContent = text;
    n.className = error ? 'error' : '';
  }
  function fmt(v) {
    if (v === null || v === undefined) return '-';
    if (typeof v !== 'number') return String(v);
    if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(1) + 'k';
    return Number.isInteger(v) ? String(v) : v.toFixed(1);
  }
  function ms(v) {
    if (v === null || v === undefined) return '-';
    if (v < 1) return (v * 1000).toFixed(0) + ' µs';
    if (v < 1000) return v.toFixed(1) + ' ms';
    return (v / 1000).toFixed(1) + ' s';
  }
  function since(t) {
    var s = Math.round((Date.now() - t) / 1000);
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm' + (s % 60) + 's';
    return Math.floor(s / 3600) + 'h' + Math.floor((s % 3600) / 60) + 'm';
  }
  function push(arr, v) {
    arr.push(v);
    if (arr.length > HISTORY) arr.shift();
  }

  // ---------------------------------------------------------------- charts

  function chart(el, series, width) {
    return new uPlot(
      {
        width: width || 420,
        height: 150,
        legend: { show: true },
        scales: { x: { time: true } },
        series: [{}].concat(series.map(function (s) { return { label: s[0], stroke: s[1], width: 1.5 }; })),
        axes: [{}, { size: 50 }],
      },
      [[]].concat(series.map(function () { return []; })),
      el,
    );
  }
  charts.rates = chart($('chart-rates'), [['in', '#0969da'], ['out', '#1a7f37']]);
  charts.depth = chart($('chart-depth'), [['queued', '#bf8700']]);

  // ---------------------------------------------------------------- snapshots

  function rows(snap, key) {
    var cols = snap.cols[key];
    return snap[key].map(function (r) {
      var o = {};
      for (var i = 0; i < cols.length; i++) o[cols[i]] = r[i];
      return o;
    });
  }

  function onSnapshot(snap) {
    state.snap = snap;
    var t = snap.t / 1000;
    push(totals.t, t);
    push(totals.rin, snap.totals.rateIn);
    push(totals.rout, snap.totals.rateOut);
    push(totals.depth, snap.totals.depth);
    charts.rates.setData([totals.t, totals.rin, totals.rout]);
    charts.depth.setData([totals.t, totals.depth]);
    var mbs = rows(snap, 'M');
    var seen = new Set();
    mbs.forEach(function (r) {
      seen.add(r.name);
      var h = perMailbox.get(r.name);
      if (!h) {
        h = { t: [], depth: [], rin: [], rout: [], rack: [], rre: [] };
        perMailbox.set(r.name, h);
      }
      push(h.t, t);
      push(h.depth, r.depth);
      push(h.rin, r.rateIn);
      push(h.rout, r.rateOut);
      push(h.rack, r.rateAcked);
      push(h.rre, r.rateRedelivered);
    });
    perMailbox.forEach(function (_, name) { if (!seen.has(name)) perMailbox.delete(name); });
    renderKernel(snap);
    renderMailboxes(mbs);
    renderProcesses(rows(snap, 'P'));
    renderSegments(rows(snap, 'S'));
    renderDetail();
  }

  function renderKernel(snap) {
    var k = snap.kernel;
    var pct = k.memoryBudget > 0 ? (100 * k.memoryUsed) / k.memoryBudget : 0;
    $('kernel').innerHTML =
      'kernel pid ' + k.pid + (k.node ? ' node <b>' + esc(k.node) + '</b>' : '') +
      ' · up ' + since(k.startedAt) +
      ' · ' + k.connections + ' connections' +
      ' · memory <span class="bar" style="width:' + Math.max(1, Math.round(pct)) + 'px"></span> ' +
      fmt(k.memoryUsed) + ' / ' + fmt(k.memoryBudget) + ' bytes (' + pct.toFixed(1) + '%)' +
      ' · in ' + fmt(snap.totals.rateIn) + '/s out ' + fmt(snap.totals.rateOut) + '/s';
  }

  var MB_COLS = [
    ['name', 'name', true], ['depth', 'depth'], ['capacity', 'cap'], ['rateIn', 'in/s'], ['rateOut', 'out/s'],
    ['rateAcked', 'ack/s'], ['rateRedelivered', 'redeliv/s'], ['waitP50', 'wait p50'], ['waitP99', 'wait p99'],
    ['waitingSenders', 'wait-S'], ['waitingReceivers', 'wait-R'], ['receivers', 'receivers'],
    ['delivery', 'delivery', true], ['owner', 'owner', true], ['sendRight', 'send', true], ['receiveRight', 'recv', true],
    ['path', 'path', true],
  ];
  var P_COLS = [
    ['name', 'name', true], ['pid', 'pid'], ['node', 'node', true], ['osPid', 'os pid'], ['connectedAt', 'connected'],
    ['sent', 'sent'], ['received', 'received'], ['rateSent', 'out/s'], ['rateReceived', 'in/s'],
    ['inboxDepth', 'inbox'], ['owns', 'owns', true], ['attached', 'attached', true],
  ];
  var S_COLS = [['name', 'name', true], ['size', 'size'], ['kind', 'kind', true], ['owner', 'owner', true], ['attached', 'attached', true]];

  function head(table, cols, sortKey, onSort, extra) {
    var thead = table.querySelector('thead');
    if (thead.dataset.sort === sortKey) return;
    thead.dataset.sort = sortKey;
    thead.innerHTML = '<tr>' + cols.map(function (c) {
      return '<th data-key="' + c[0] + '" class="' + (c[2] ? 'text ' : '') + (c[0] === sortKey ? 'sorted' : '') + '">' + c[1] + '</th>';
    }).join('') + (extra ? '<th class="text">' + extra + '</th>' : '') + '</tr>';
    thead.onclick = function (e) {
      var k = e.target.dataset && e.target.dataset.key;
      if (k) onSort(k);
    };
  }

  function sorted(list, key) {
    return list.slice().sort(function (a, b) {
      var x = a[key], y = b[key];
      if (typeof x === 'number' || typeof y === 'number') return (y || 0) - (x || 0) || String(a.name).localeCompare(String(b.name));
      return String(x).localeCompare(String(y));
    });
  }

  function cell(c, r) {
    var v = r[c[0]];
    var cls = c[2] ? ' class="text"' : '';
    var text;
    if (c[0] === 'waitP50' || c[0] === 'waitP99') text = ms(v);
    else if (c[0] === 'capacity') text = v === null ? '∞' : fmt(v);
    else if (c[0] === 'connectedAt') text = since(v);
    else text = c[2] ? esc(v === null ? '-' : v || '-') : fmt(v);
    return '<td data-col="' + c[0] + '"' + cls + '>' + text + '</td>';
  }

  function renderMailboxes(mbs) {
    var table = $('mailboxes');
    head(table, MB_COLS, state.sortM, function (k) { state.sortM = k; renderMailboxes(rows(state.snap, 'M')); }, 'actions');
    var f = state.filter;
    var list = f ? mbs.filter(function (r) { return r.name.indexOf(f) >= 0; }) : mbs;
    list = sorted(list, state.sortM);
    $('mailbox-count').textContent = '(' + mbs.length + (list.length > MAX_ROWS ? ', showing ' + MAX_ROWS + ' of ' + list.length : '') + ')';
    table.querySelector('tbody').innerHTML = list.slice(0, MAX_ROWS).map(function (r) {
      var n = esc(r.name);
      return '<tr data-mailbox="' + n + '"' + (r.name === state.selected ? ' class="selected"' : '') + '>' +
        MB_COLS.map(function (c) { return cell(c, r); }).join('') +
        '<td class="text"><button data-act="peek">peek</button> <button data-act="send">send</button> <button data-act="delete">delete</button></td></tr>';
    }).join('');
  }

  function renderProcesses(ps) {
    var table = $('processes');
    head(table, P_COLS, state.sortP, function (k) { state.sortP = k; renderProcesses(rows(state.snap, 'P')); }, 'actions');
    var list = sorted(ps, state.sortP);
    $('process-count').textContent = '(' + ps.length + (list.length > MAX_ROWS ? ', showing ' + MAX_ROWS : '') + ')';
    table.querySelector('tbody').innerHTML = list.slice(0, MAX_ROWS).map(function (r) {
      return '<tr data-process="' + esc(r.name) + '">' + P_COLS.map(function (c) { return cell(c, r); }).join('') +
        '<td class="text"><button data-act="send-process">send</button></td></tr>';
    }).join('');
  }

  function renderSegments(ss) {
    var table = $('segments');
    head(table, S_COLS, 'name', function () {});
    table.querySelector('tbody').innerHTML = ss.length === 0 ? '<tr><td class="text muted">(none)</td></tr>' :
      ss.map(function (r) { return '<tr>' + S_COLS.map(function (c) { return cell(c, r); }).join('') + '</tr>'; }).join('');
  }

  // ---------------------------------------------------------------- a mailbox in detail

  var detailBusy = false;
  function renderDetail() {
    var name = state.selected;
    if (name === null) return;
    var h = perMailbox.get(name);
    if (!h) {
      $('detail-info').textContent = 'gone';
      return;
    }
    if (!charts.mbDepth) {
      charts.mbDepth = chart($('chart-mb-depth'), [['depth', '#bf8700']]);
      charts.mbRates = chart($('chart-mb-rates'), [['in', '#0969da'], ['out', '#1a7f37'], ['ack', '#8250df'], ['redelivered', '#cf222e']]);
    }
    charts.mbDepth.setData([h.t, h.depth]);
    charts.mbRates.setData([h.t, h.rin, h.rout, h.rack, h.rre]);
    if (detailBusy) return;
    detailBusy = true;
    fetch('/api/mailbox?name=' + encodeURIComponent(name), { headers: headers() })
      .then(function (r) { return r.json(); })
      .then(function (info) {
        if (info.error) return;
        $('detail-info').textContent = 'capacity ' + info.capacity + ', ' + info.delivery + ', owner ' + info.owner +
          ' (' + info.ownership + '), max message ' + info.maxMessageSize + ' bytes; sent ' + info.counters.sent +
          ', received ' + info.counters.received + ', acked ' + info.counters.acked + ', redelivered ' + info.counters.redelivered;
        renderHistogram(info.stats.wait);
      })
      .finally(function () { detailBusy = false; });
  }

  function renderHistogram(w) {
    var b = w.buckets;
    var first = b.findIndex(function (n) { return n > 0; });
    var last = b.length - 1;
    while (last > 0 && b[last] === 0) last--;
    if (first < 0) {
      $('histogram').innerHTML = '<span class="muted">no deliveries yet</span>';
      return;
    }
    var max = Math.max.apply(null, b);
    var html = '';
    for (var i = first; i <= last; i++) {
      var label = i === 0 ? '<1µs' : i === b.length - 1 ? '∞' : ms(Math.pow(2, i) / 1000);
      html += '<div title="' + (i === 0 ? '< 1 µs' : 'up to ' + label) + ': ' + b[i] + '" style="height:' +
        Math.max(1, Math.round((140 * b[i]) / max)) + 'px"><span>' + label + '</span></div>';
    }
    $('histogram').innerHTML = html;
    $('histogram').title = w.count + ' deliveries; p50 ' + ms(w.p50) + ', p99 ' + ms(w.p99);
  }

  function select(name) {
    state.selected = name;
    $('detail').hidden = false;
    $('detail-name').textContent = name;
    $('peek-result').innerHTML = '';
    renderDetail();
    if (state.snap) renderMailboxes(rows(state.snap, 'M'));
  }

  // ---------------------------------------------------------------- actions (each confirmed)

  function ask(text, fields) {
    return new Promise(function (resolve) {
      var d = $('confirm');
      $('confirm-text').textContent = text;
      $('confirm-fields').innerHTML = fields || '';
      d.onclose = function () { resolve(d.returnValue === 'ok'); };
      d.returnValue = '';
      d.showModal();
    });
  }

  function act(path, body) {
    return fetch(path, { method: 'POST', headers: headers(), body: JSON.stringify(body) }).then(function (r) {
      return r.json().then(function (v) {
        if (!r.ok) throw new Error((v.error && v.error.message) + ' [' + (v.error && v.error.code) + ']');
        return v;
      });
    });
  }

  function peek(name) {
    ask('Peek at the first messages of ' + name + '? Their contents are shown here; nothing is taken out of the mailbox.',
      '<label>how many <input id="f-count" type="number" min="1" max="100" value="10"></label>')
      .then(function (ok) {
        if (!ok) return;
        var count = Number($('f-count').value) || 10;
        select(name);
        return act('/api/peek', { mailbox: name, count: count }).then(function (r) {
          $('peek-result').innerHTML = '<h3>Peek: ' + r.messages.length + ' message(s)' + (r.more ? ', more queued' : '') + '</h3>' +
            r.messages.map(function (msg, i) {
              return '<div class="peeked">#' + (i + 1) + ' from <b>' + esc(msg.sender) + '</b>, ' + esc(msg.codec) + ', ' + msg.size +
                ' bytes, priority ' + msg.priority + (msg.truncated ? ' (truncated)' : '') + '<pre>' + esc(msg.preview) + '</pre></div>';
            }).join('');
          notice('peeked at ' + r.messages.length + ' message(s) of ' + name);
        });
      })
      .catch(function (e) { notice('peek refused: ' + e.message, true); });
  }

  function send(target) {
    ask('Send a message to ' + target + '?',
      '<label>message<textarea id="f-data"></textarea></label><label>codec <select id="f-codec"><option>string</option><option>json</option></select></label>')
      .then(function (ok) {
        if (!ok) return;
        return act('/api/send', { target: target, data: $('f-data').value, codec: $('f-codec').value })
          .then(function () { notice('sent to ' + target); });
      })
      .catch(function (e) { notice('send refused: ' + e.message, true); });
  }

  function del(name) {
    ask('Delete mailbox ' + name + '? Queued messages are lost, and senders and receivers are told it closed.',
      '<label><input id="f-force" type="checkbox"> force (as the administrator, like mailbox rm --force)</label>')
      .then(function (ok) {
        if (!ok) return;
        return act('/api/delete', { mailbox: name, force: $('f-force').checked }).then(function () {
          notice('deleted ' + name);
          if (state.selected === name) $('detail').hidden = true;
        });
      })
      .catch(function (e) { notice('delete refused: ' + e.message, true); });
  }

  $('mailboxes').querySelector('tbody').addEventListener('click', function (e) {
    var tr = e.target.closest('tr');
    if (!tr) return;
    var name = tr.dataset.mailbox;
    var a = e.target.dataset.act;
    if (a === 'peek') peek(name);
    else if (a === 'send') send(name);
    else if (a === 'delete') del(name);
    else select(name);
  });
  $('processes').querySelector('tbody').addEventListener('click', function (e) {
    if (e.target.dataset.act === 'send-process') send('@' + e.target.closest('tr').dataset.process);
  });
  $('filter').addEventListener('input', function (e) {
    state.filter = e.target.value;
    if (state.snap) renderMailboxes(rows(state.snap, 'M'));
  });

  // ---------------------------------------------------------------- the token

  function checkToken() {
    if (!state.token) {
      $('auth-state').textContent = 'actions locked (no token)';
      return;
    }
    fetch('/api/session', { headers: headers() }).then(function (r) {
      if (r.ok) return r.json().then(function (v) { $('auth-state').textContent = 'actions as ' + v.principal; });
      $('auth-state').textContent = 'token refused';
    });
  }
  $('token-set').addEventListener('click', function () {
    state.token = $('token').value.trim();
    sessionStorage.setItem('ipcbox-token', state.token);
    $('token').value = '';
    checkToken();
  });
  checkToken();

  // ---------------------------------------------------------------- the event stream

  function connect() {
    fetch('/api/events', { headers: headers() }).then(function (r) {
      if (!r.ok) throw new Error('events: HTTP ' + r.status);
      var reader = r.body.getReader();
      var decoder = new TextDecoder();
      var buf = '';
      notice('');
      function read() {
        return reader.read().then(function (x) {
          if (x.done) throw new Error('the kernel closed the stream');
          buf += decoder.decode(x.value, { stream: true });
          var end;
          while ((end = buf.indexOf('\n\n')) >= 0) {
            var frame = buf.slice(0, end);
            buf = buf.slice(end + 2);
            var data = frame.split('\n').filter(function (l) { return l.indexOf('data: ') === 0; })
              .map(function (l) { return l.slice(6); }).join('\n');
            if (data) onSnapshot(JSON.parse(data));
          }
          return read();
        });
      }
      return read();
    }).catch(function (e) {
      notice('disconnected (' + e.message + '), retrying…', true);
      setTimeout(connect, 2000);
    });
  }
  connect();
})();
`;
