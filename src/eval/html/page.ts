/** The shell shared by phoneside's HTML reports: one file, inline CSS, no scripts, no remote URLs. */
import { esc } from './svg.js';

const CSS = `
:root { --fg:#1d2430; --muted:#5b6575; --line:#d8dde6; --bg:#ffffff; --panel:#f6f8fb; --accent:#0072B2; --bad:#D55E00; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color:var(--fg); background:var(--bg); }
header { padding:20px 28px 12px; border-bottom:1px solid var(--line); }
h1 { margin:0 0 4px; font-size:22px; } h2 { margin:0 0 10px; font-size:18px; } h3 { margin:12px 0 6px; font-size:15px; }
nav { position:sticky; top:0; z-index:2; background:rgba(255,255,255,.96); border-bottom:1px solid var(--line); padding:6px 28px; display:flex; flex-wrap:wrap; gap:4px 14px; font-size:14px; }
nav a { color:var(--accent); text-decoration:none; } nav a:hover { text-decoration:underline; }
main { padding:8px 28px 40px; max-width:1400px; }
section { padding:18px 0; border-bottom:1px solid var(--line); }
.meta { color:var(--muted); font-size:13px; } .meta code { font-size:12px; }
.cards { display:flex; flex-wrap:wrap; gap:12px; margin:12px 0 4px; }
.card { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:10px 14px; min-width:130px; }
.card .v { font-size:24px; font-weight:600; } .card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.row { display:flex; flex-wrap:wrap; gap:18px; align-items:flex-start; }
table { border-collapse:collapse; font-variant-numeric:tabular-nums; margin:6px 0; }
th, td { padding:5px 10px; border-bottom:1px solid var(--line); text-align:right; }
th:first-child, td:first-child, td.l, th.l { text-align:left; }
thead th { background:var(--panel); font-weight:600; }
tr.avg td { color:var(--muted); } tr.worst td { background:#fdecea; } td.best { font-weight:700; color:var(--accent); }
.note { color:var(--muted); font-size:13px; max-width:900px; }
.gallery { display:grid; grid-template-columns:repeat(auto-fill, minmax(180px, 1fr)); gap:12px; }
.gallery figure { margin:0; background:var(--panel); border:1px solid var(--line); border-radius:8px; overflow:hidden; }
.gallery img { width:100%; height:160px; object-fit:contain; background:#eceff3; display:block; }
.gallery figcaption { padding:6px 8px; font-size:13px; }
.gallery .path { color:var(--muted); font-size:11px; word-break:break-all; }
.gallery .pair { display:grid; grid-template-columns:1fr 1fr; gap:2px; } .gallery .pair img { height:120px; }
.tag { display:inline-block; padding:0 6px; border-radius:4px; font-size:12px; font-weight:600; }
.tag.true { background:#d7ecf7; color:#004a75; } .tag.pred { background:#fbe2d2; color:#8a3b00; }
svg.chart { max-width:100%; height:auto; font-size:12px; font-family:inherit; }
svg .chart-title { font-size:13px; font-weight:600; } svg .axis-title { font-size:12px; fill:var(--muted); }
svg .tick { font-size:11px; fill:var(--muted); } svg .tick.small { font-size:10px; }
svg .grid { stroke:#e7eaf0; } svg .frame { fill:none; stroke:#aab2bf; } svg .diagonal { stroke:#555; stroke-dasharray:4 4; }
svg .marker { stroke:#888; stroke-dasharray:3 3; } svg .legend { font-size:11px; }
svg .count { font-size:20px; font-weight:700; fill:var(--fg); } svg .rate { font-size:12px; fill:var(--muted); }
svg .on-dark { fill:#fff; }
@media (max-width: 640px) { main, header, nav { padding-left:12px; padding-right:12px; } }
`;

export interface PageOptions {
  title: string;
  subtitle: string;
  nav: readonly { id: string; label: string }[];
  body: string;
}

export function htmlPage(o: PageOptions): string {
  return (
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">` +
    // A report is a document: it may run nothing and fetch nothing (images are data: URIs).
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">` +
    `<title>${esc(o.title)}</title><style>${CSS}</style></head><body>` +
    `<header><h1>${esc(o.title)}</h1><div class="meta">${o.subtitle}</div></header>` +
    `<nav aria-label="Sections">${o.nav.map((n) => `<a href="#${esc(n.id)}">${esc(n.label)}</a>`).join('')}</nav>` +
    `<main>${o.body}</main></body></html>\n`
  );
}

export function table(head: readonly string[], rows: readonly (readonly string[])[], opts: { id?: string; rowClass?: (i: number) => string } = {}): string {
  return (
    `<table${opts.id ? ` id="${esc(opts.id)}"` : ''}><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>` +
    rows.map((r, i) => `<tr${opts.rowClass?.(i) ? ` class="${opts.rowClass(i)}"` : ''}>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('') +
    `</tbody></table>`
  );
}

export function card(label: string, value: string): string {
  return `<div class="card"><div class="k">${esc(label)}</div><div class="v">${value}</div></div>`;
}
