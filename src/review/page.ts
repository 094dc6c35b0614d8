/**
 * The label review as one self-contained HTML page (the shell, tables and CSS of the evaluation
 * reports; pictures as data: URIs, nothing fetched): the suspects, most suspicious first, then the
 * duplicates filed under different classes.
 */
import { card, htmlPage, table } from '../eval/html/page.js';
import { esc, fmt, pct } from '../eval/html/svg.js';
import type { DuplicateReport, LabelledFile } from './duplicates.js';
import type { SuspectReport } from './suspects.js';

export interface ReviewPageData {
  dataDir: string;
  /** Where the out-of-fold predictions came from (a cv.json, or "cross-validation run now"). */
  source: string;
  /** The model behind them, e.g. 'ensemble(resnet50+mobilenet_v2_0.35)'. */
  model: string;
  suspects: SuspectReport;
  duplicates: DuplicateReport;
  /** Suspects shown (the CSV has them all). */
  top: number;
  /** Thumbnails by data-relative path. */
  thumbnails: ReadonlyMap<string, string>;
  /** Heat-map overlays (where the model looks for the suggested class) by data-relative path. */
  heatmaps?: ReadonlyMap<string, string>;
  /** What the heat maps are, or why there are none. */
  heatmapNote?: string;
  createdAt: string;
}

function section(id: string, title: string, body: string): string {
  return `<section id="${id}"><h2>${esc(title)}</h2>${body}</section>`;
}

function picture(src: string | undefined, alt: string, size?: number): string {
  const style = size === undefined ? '' : ` style="width:${size}px;height:${size}px;object-fit:contain;background:#eceff3"`;
  return src ? `<img src="${esc(src)}" alt="${esc(alt)}"${style} loading="lazy">` : '<div class="noimg">(no picture)</div>';
}

function summary(d: ReviewPageData): string {
  const s = d.suspects;
  const cross = d.duplicates.crossClassExact.length + d.duplicates.crossClassNear.length;
  const thresholds = s.classes.map((c) => `${esc(c)} ${s.thresholds[c] === null ? '–' : fmt(s.thresholds[c], 3)}`).join(', ');
  const joint = table(
    ['given \\ counted as', ...s.classes.map(esc)],
    s.classes.map((c, y) => [esc(c), ...s.confidentJoint[y]!.map((n, j) => (j === y ? String(n) : `<b>${n}</b>`))]),
    { id: 'confident-joint' },
  );
  const noise = s.noise.length
    ? table(
        ['given', 'suggested', 'suspects', 'estimated label errors'],
        s.noise.map((n) => [esc(n.given), esc(n.suggested), String(n.suspects), String(n.estimated)]),
        { id: 'noise-table' },
      )
    : '<p>No pair of classes has suspects.</p>';
  return (
    `<div class="cards">${card('images', String(s.images))}${card('suspects', String(s.suspects.length))}${card('cross-class duplicates', String(cross))}` +
    `${card('same-class copies', String(d.duplicates.sameClassExact.length))}</div>` +
    `<p class="note">Out-of-fold predictions: each image was scored by a model that never trained on it, so a wrong label cannot have been learned. ` +
    `Per-class thresholds (mean out-of-fold probability of the class over the images labelled with it): ${thresholds}. ` +
    `An image is a suspect when its label's probability is below that label's threshold while another class's is at or above its own; ` +
    `ranked by ${s.rankBy === 'margin' ? 'margin, p(suggested) − p(given)' : 'self-confidence, lowest p(given) first'}. ` +
    `Edit the action column of review.csv (relabel:&lt;class&gt;, drop, keep) and run <code>phoneside review DATA --apply review.csv</code>.</p>` +
    `<div class="row"><div><h3>Confident joint</h3>${joint}</div><div><h3>Label noise by pair</h3>${noise}</div></div>` +
    (s.unconfident ? `<p class="note">${s.unconfident} image(s) clear no class's threshold and are counted nowhere.</p>` : '')
  );
}

function suspectGallery(d: ReviewPageData): string {
  const all = d.suspects.suspects;
  if (all.length === 0) return '<p id="no-suspects">No suspects: the model confidently agrees with every label it is confident about.</p>';
  const shown = all.slice(0, d.top);
  const figures = shown.map((s, i) => {
    const heat = d.heatmaps?.get(s.path);
    return (
      `<figure class="suspect" data-rank="${i + 1}">` +
      (heat
        ? `<div class="pair">${picture(d.thumbnails.get(s.path), s.path)}${picture(heat, `heat map for ${s.suggested}: ${s.path}`)}</div>`
        : picture(d.thumbnails.get(s.path), s.path)) +
      `<figcaption><div>#${i + 1} <span class="tag true">given ${esc(s.given)}</span> <span class="tag pred">suggested ${esc(s.suggested)}</span></div>` +
      `<div>p(${esc(s.given)}) <b>${pct(s.pGiven)}</b>; p(${esc(s.suggested)}) <b>${pct(s.pSuggested)}</b></div>` +
      (s.group !== undefined ? `<div>source ${esc(s.group)}</div>` : '') +
      `<div class="path">${esc(s.path)}</div></figcaption></figure>`
    );
  });
  const more = all.length > shown.length ? `<p class="note">${all.length - shown.length} more suspects in review.csv and review.json.</p>` : '';
  const heatNote =
    (d.heatmaps?.size ? '<p class="note">The picture on the right of each suspect shows where the model looks for the suggested class (red: most).</p>' : '') +
    (d.heatmapNote ? `<p class="note" id="heatmap-note">${esc(d.heatmapNote)}</p>` : '');
  return `<p class="note">${all.length} suspects of ${d.suspects.images} images, most suspicious first.</p>${heatNote}<div class="gallery">${figures.join('')}</div>${more}`;
}

function fileCell(d: ReviewPageData, f: LabelledFile): string {
  return `<div style="display:flex;gap:8px;align-items:center">${picture(d.thumbnails.get(f.relPath), f.relPath, 96)}<div><span class="tag true">${esc(f.label)}</span><div class="path">${esc(f.relPath)}</div></div></div>`;
}

function duplicates(d: ReviewPageData): string {
  const x = d.duplicates;
  const exact = x.crossClassExact.length
    ? table(['files (byte-identical)', ''], x.crossClassExact.map((g) => [g.files.map((f) => fileCell(d, f)).join(''), `<code>${esc(g.sha256.slice(0, 12))}</code>`]), { id: 'cross-exact' })
    : '<p>No byte-identical files under different classes.</p>';
  const near = x.crossClassNear.length
    ? table(['first', 'second', 'distance'], x.crossClassNear.map((p) => [fileCell(d, p.a), fileCell(d, p.b), String(p.distance)]), { id: 'cross-near' })
    : `<p>No near-identical pictures under different classes (perceptual-hash distance ≤ ${x.maxDistance}).</p>`;
  const same = x.sameClassExact.length
    ? table(['class', 'copies'], x.sameClassExact.map((g) => [esc(g.files[0]?.label ?? ''), g.files.map((f) => `<div class="path">${esc(f.relPath)}</div>`).join('')]), { id: 'same-exact' })
    : '<p>No byte-identical copies inside a class.</p>';
  const unhashed = x.unhashed.length ? `<p class="note">${x.unhashed.length} image(s) could not be decoded and were not compared: ${x.unhashed.slice(0, 10).map((u) => esc(u.relPath)).join(', ')}</p>` : '';
  return (
    `<h3>Same picture, different classes (byte-identical)</h3>${exact}` +
    `<h3>Near-identical pictures, different classes (perceptual hash within ${x.maxDistance} of 64 bits)</h3>${near}` +
    `<h3>Copies inside one class</h3><p class="note">Not label errors, but they inflate validation figures when the copies land on both sides of a split.</p>${same}${unhashed}`
  );
}

export function renderReviewHtml(d: ReviewPageData): string {
  return htmlPage({
    title: 'Label review',
    subtitle: `${esc(d.dataDir)} — out-of-fold predictions of <code>${esc(d.model)}</code> from ${esc(d.source)}; ${esc(d.createdAt)}`,
    nav: [
      { id: 'summary', label: 'Summary' },
      { id: 'suspects', label: 'Suspects' },
      { id: 'duplicates', label: 'Duplicates' },
    ],
    body: section('summary', 'Summary', summary(d)) + section('suspects', 'Suspected label errors', suspectGallery(d)) + section('duplicates', 'Duplicates', duplicates(d)),
  });
}
