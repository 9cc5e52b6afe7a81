/** The dashboard's stylesheet (see index-html.ts for why a string module). */
export const APP_CSS = `
:root { --bg: #fff; --fg: #1b1f24; --muted: #6a737d; --line: #e1e4e8; --accent: #0969da; --warn: #cf222e; }
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; gap: 1.5em; align-items: center; padding: .5em 1em; border-bottom: 1px solid var(--line); }
h1 { font-size: 18px; margin: 0; }
h2 { font-size: 14px; margin: 1em 0 .4em; }
h3 { font-size: 12px; margin: .3em 0; color: var(--muted); }
main { padding: 0 1em 2em; }
.kernel { flex: 1; }
.muted { color: var(--muted); font-weight: normal; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 2px 6px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { cursor: pointer; user-select: none; background: #f6f8fa; position: sticky; top: 0; }
th.sorted::after { content: ' \\25BE'; }
td.text, th.text { text-align: left; }
tr.selected { background: #ddf4ff; }
tbody tr:hover { background: #f6f8fa; }
button { font: inherit; padding: 1px 6px; }
.bar { display: inline-block; height: 8px; background: var(--accent); vertical-align: middle; }
.full { background: var(--warn); }
#notice { padding: 0 1em; min-height: 1.4em; }
#notice.error { color: var(--warn); }
.histogram { display: flex; align-items: flex-end; gap: 2px; height: 150px; width: 420px; border-bottom: 1px solid var(--line); }
.histogram div { flex: 1; background: var(--accent); min-height: 1px; position: relative; }
.histogram div span { position: absolute; bottom: -1.5em; font-size: 9px; color: var(--muted); left: 0; }
pre { background: #f6f8fa; padding: .5em; max-height: 12em; overflow: auto; margin: .2em 0 .8em; }
dialog { border: 1px solid var(--line); border-radius: 6px; min-width: 24em; }
dialog textarea { width: 100%; height: 6em; }
dialog label { display: block; margin: .3em 0; }
menu { display: flex; justify-content: flex-end; gap: .5em; padding: 0; }
`;
