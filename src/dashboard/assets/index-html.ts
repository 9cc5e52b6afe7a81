/**
 * The dashboard page. Shipped as a string module (the package ships only
 * dist/src/**\/*.js, and the page needs no build step); uPlot comes from its
 * own package at /vendor/.
 */
export const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ipcbox dashboard</title>
<link rel="stylesheet" href="/vendor/uPlot.min.css">
<link rel="stylesheet" href="/app.css">
</head>
<body>
<header>
  <h1>ipcbox</h1>
  <div id="kernel" class="kernel">connecting…</div>
  <div class="auth">
    <span id="auth-state">actions locked</span>
    <input id="token" type="password" placeholder="token" autocomplete="off" size="20">
    <button id="token-set" type="button">unlock</button>
  </div>
</header>
<div id="notice" role="status"></div>
<main>
  <section class="charts">
    <div><h2>Messages/s (all mailboxes)</h2><div id="chart-rates"></div></div>
    <div><h2>Queued (all mailboxes)</h2><div id="chart-depth"></div></div>
  </section>
  <section>
    <h2>Mailboxes <span id="mailbox-count" class="muted"></span></h2>
    <div class="tools"><input id="filter" placeholder="filter by name" size="30">
      <span class="muted">click a column to sort, a row for its charts and wait times</span></div>
    <table id="mailboxes"><thead></thead><tbody></tbody></table>
  </section>
  <section id="detail" hidden>
    <h2>Mailbox <span id="detail-name"></span></h2>
    <div id="detail-info" class="muted"></div>
    <div class="charts">
      <div><h3>Depth</h3><div id="chart-mb-depth"></div></div>
      <div><h3>In / out / ack / redelivered per second</h3><div id="chart-mb-rates"></div></div>
      <div><h3>Time in queue (since created)</h3><div id="histogram" class="histogram"></div></div>
    </div>
    <div id="peek-result"></div>
  </section>
  <section>
    <h2>Processes <span id="process-count" class="muted"></span></h2>
    <table id="processes"><thead></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Segments</h2>
    <table id="segments"><thead></thead><tbody></tbody></table>
  </section>
</main>
<dialog id="confirm">
  <form method="dialog">
    <p id="confirm-text"></p>
    <div id="confirm-fields"></div>
    <menu><button value="cancel" id="confirm-cancel">Cancel</button> <button value="ok" id="confirm-ok">OK</button></menu>
  </form>
</dialog>
<script src="/vendor/uPlot.iife.min.js"></script>
<script src="/app.js"></script>
</body>
</html>
`;
