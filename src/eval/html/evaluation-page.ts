/** The evaluation report as one self-contained HTML page (see evaluation-report.ts for the data). */
import type { EvaluationReport } from '../evaluation-report.js';
import { card, htmlPage, table } from './page.js';
import { pyFixed } from '../report.js';
import { confusionHeatmap, esc, fmt, lineChart, PALETTE, pct, reliabilityChart, type Series } from './svg.js';

export interface EvaluationPageOptions {
  /** Thumbnail data URIs by report path (images missing here are shown without one). */
  thumbnails?: ReadonlyMap<string, string>;
  /** At most this many misclassified images in the gallery (default 120). */
  galleryLimit?: number;
  /**
   * Heat maps of the evidence for the predicted class by report path (image data URI and the
   * method that made it, see explain/report-heatmaps.ts), shown next to each mistake's thumbnail.
   */
  heatmaps?: ReadonlyMap<string, GalleryHeatmap>;
}

/** A mistake's heat map as the gallery shows it. */
export interface GalleryHeatmap {
  /** data: URI of the photo with the heat map over it. */
  src: string;
  /** 'grad-cam' or 'occlusion'. */
  method: string;
}

const NAV = [
  { id: 'summary', label: 'Summary' },
  { id: 'confusion-matrix', label: 'Confusion matrix' },
  { id: 'per-class', label: 'Per class' },
  { id: 'confused-pairs', label: 'Confused pairs' },
  { id: 'gallery', label: 'Mistakes' },
  { id: 'pr-curves', label: 'Precision–recall' },
  { id: 'reliability', label: 'Calibration' },
  { id: 'training', label: 'Training' },
  { id: 'data', label: 'Data' },
];

function section(id: string, title: string, body: string): string {
  return `<section id="${id}"><h2>${esc(title)}</h2>${body}</section>`;
}

function perClassTable(r: EvaluationReport): string {
  const m = r.metrics;
  // Rounded as the text report (scikit-learn's layout) rounds, so the two agree digit for digit.
  const f4 = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '–' : pyFixed(x, 4));
  const ap = new Map(r.prCurves.map((c) => [c.class, c.averagePrecision]));
  const rows = m.perClass.map((c) => [esc(c.name), f4(c.precision), f4(c.recall), f4(c.f1), f4(ap.get(c.name) ?? null), String(c.support)]);
  rows.push(['accuracy', '', '', f4(m.accuracy), '', String(m.total)]);
  rows.push(['macro avg', f4(m.macroAvg.precision), f4(m.macroAvg.recall), f4(m.macroAvg.f1), f4(r.macroAveragePrecision), String(m.total)]);
  rows.push(['weighted avg', f4(m.weightedAvg.precision), f4(m.weightedAvg.recall), f4(m.weightedAvg.f1), '', String(m.total)]);
  return table(['class', 'precision', 'recall', 'F1', 'average precision', 'support'], rows, {
    id: 'per-class-table',
    rowClass: (i) => (i >= m.perClass.length ? 'avg' : ''),
  });
}

/** Group cross-validation: each group was predicted by a model trained without it. */
function groupTable(r: EvaluationReport): string {
  const groups = r.groups!;
  const worst = Math.min(...groups.map((g) => g.accuracy));
  const rows = groups.map((g) => [
    esc(g.group),
    String(g.images),
    ...r.model.classes.map((c) => String(g.perClass[c] ?? 0)),
    pct(g.accuracy),
    String(g.errors),
    fmt(g.macroF1, 4),
    fmt(g.ece, 4),
  ]);
  return (
    '<p class="note">Each group (source) was predicted by a model trained without any of its images: these are the figures to expect on photos from a new source. Macro F1 is over the classes the group has. The worst group is highlighted.</p>' +
    table(['group', 'images', ...r.model.classes.map(esc), 'accuracy', 'errors', 'macro F1', 'ECE'], rows, {
      id: 'group-table',
      rowClass: (i) => (groups[i]!.accuracy === worst ? 'worst' : ''),
    })
  );
}

function gallery(r: EvaluationReport, o: EvaluationPageOptions): string {
  if (r.mistakes.length === 0) return '<p id="gallery-empty">No misclassified images.</p>';
  const limit = o.galleryLimit ?? 120;
  const shown = r.mistakes.slice(0, limit);
  const figures = shown.map((mk, i) => {
    const src = o.thumbnails?.get(mk.path);
    const thumb = src ? `<img src="${esc(src)}" alt="${esc(mk.path)}" loading="lazy">` : `<div class="noimg">(no thumbnail)</div>`;
    const heat = o.heatmaps?.get(mk.path);
    const img = heat
      ? `<div class="pair">${thumb}<img class="heatmap" src="${esc(heat.src)}" alt="why ${esc(mk.predicted)}: ${esc(heat.method)} heat map of ${esc(mk.path)}" title="evidence for ${esc(mk.predicted)} (${esc(heat.method)})" loading="lazy"></div>`
      : thumb;
    return (
      `<figure class="mistake" data-rank="${i + 1}">${img}<figcaption>` +
      `<div><span class="tag true">true ${esc(mk.label)}</span> <span class="tag pred">predicted ${esc(mk.predicted)}</span></div>` +
      (heat ? `<div class="why">heat map: evidence for ${esc(mk.predicted)} (${esc(heat.method)})</div>` : '') +
      `<div>confidence <b>${pct(mk.confidence)}</b>; p(${esc(mk.label)}) ${pct(mk.trueClassProbability)}</div>` +
      `<div class="path">${esc(mk.path)}</div></figcaption></figure>`
    );
  });
  const more = r.mistakes.length > shown.length ? `<p class="note">${r.mistakes.length - shown.length} more in the JSON report (--json).</p>` : '';
  return `<p class="note">${r.mistakes.length} misclassified of ${r.data.images}, most confident mistakes first.</p><div class="gallery">${figures.join('')}</div>${more}`;
}

function prCurves(r: EvaluationReport): string {
  const charts = r.prCurves.map((c, i) => {
    // Start at recall 0 with the first point's precision, as sklearn's plot does.
    const pts: [number, number][] = c.points.map((p) => [p.recall, p.precision]);
    if (pts.length) pts.unshift([0, pts[0]![1]]);
    const series: Series[] = [{ name: `AP ${fmt(c.averagePrecision, 3)}`, points: pts, step: true, color: PALETTE[i % PALETTE.length]! }];
    return lineChart(series, { title: `${c.class} vs rest (${c.positives} images)`, xLabel: 'recall', yLabel: 'precision', xDomain: [0, 1], yDomain: [0, 1.02], width: 340, height: 300 });
  });
  return `<p class="note">One-vs-rest, scored by the class probability. Average precision as scikit-learn's average_precision_score (step integral, no interpolation). Macro AP ${fmt(r.macroAveragePrecision, 4)}.</p><div class="row">${charts.join('')}</div>`;
}

function reliability(r: EvaluationReport): string {
  const c = r.calibration;
  const note =
    `<p class="note">Top-label confidence in ${c.after.bins.length} equal bins; bars are the accuracy in each bin (image count above), the orange line the bin's mean confidence, shaded where the model is over-confident. ` +
    `"Before" undoes the model's temperature T = ${fmt(c.temperature, 3)} (probabilities at T = 1), "after" is the model as deployed. ` +
    `ECE ${fmt(c.before.ece, 4)} before, ${fmt(c.after.ece, 4)} after.</p>`;
  return (
    note +
    `<div class="row">${reliabilityChart(c.before.bins, `Before (T = 1): ECE ${fmt(c.before.ece, 4)}`)}` +
    `${reliabilityChart(c.after.bins, `After (T = ${fmt(c.temperature, 3)}): ECE ${fmt(c.after.ece, 4)}`)}</div>`
  );
}

function training(r: EvaluationReport): string {
  const t = r.training;
  if (!t || t.epochs.length === 0) return '<p class="note">No training history: this model is not a run folder (evaluate a run folder to see its curves).</p>';
  const e = t.epochs;
  const pts = (f: (x: (typeof e)[number]) => number | null): [number, number][] => e.map((x) => [x.epoch, f(x) ?? NaN]);
  const marker = t.bestEpoch ? { x: t.bestEpoch, label: `kept: ${t.bestEpoch}` } : undefined;
  const common = { xLabel: 'epoch', xIntegers: true, width: 400, height: 290, ...(marker ? { marker } : {}) };
  const hasVal = e.some((x) => x.valLoss !== null && Number.isFinite(x.valLoss));
  return (
    `<div class="row">` +
    lineChart([{ name: 'train loss', points: pts((x) => x.trainLoss), dots: true }, ...(hasVal ? [{ name: 'val loss', points: pts((x) => x.valLoss), dots: true }] : [])], { ...common, title: 'Loss', yLabel: 'loss' }) +
    lineChart(
      [{ name: 'train accuracy', points: pts((x) => x.trainAccuracy), dots: true }, ...(hasVal ? [{ name: 'val accuracy', points: pts((x) => x.valAccuracy), dots: true }, { name: 'val macro F1', points: pts((x) => x.valMacroF1), dashed: true }] : [])],
      { ...common, title: 'Accuracy', yLabel: 'accuracy' },
    ) +
    lineChart([{ name: 'learning rate', points: pts((x) => x.lr), dots: true, color: '#009E73' }], { ...common, title: 'Learning rate', yLabel: 'lr (log)', yLog: true }) +
    `</div><p class="note">${e.length} epochs, ${fmt(e.reduce((a, x) => a + x.seconds, 0), 0)} s of training. Training figures are on augmented views; validation on clean images.</p>`
  );
}

function dataSummary(r: EvaluationReport): string {
  const d = r.dataSummary;
  const classes = r.model.classes;
  let out = `<h3>This evaluation</h3><p class="meta">${esc(r.data.dir)} (${esc(r.data.subset === 'all' ? 'all images' : `${r.data.subset} subset of the run's split`)})</p>`;
  const head = ['class', 'evaluated'];
  if (d) head.push('train (run)', 'validation (run)');
  out += table(head, classes.map((c) => [esc(c), String(r.data.perClass[c] ?? 0), ...(d ? [String(d.counts[c]?.train ?? 0), String(d.counts[c]?.val ?? 0)] : [])]).concat([
    ['total', String(r.data.images), ...(d ? [String(classes.reduce((a, c) => a + (d.counts[c]?.train ?? 0), 0)), String(classes.reduce((a, c) => a + (d.counts[c]?.val ?? 0), 0))] : [])],
  ]), { id: 'data-counts', rowClass: (i) => (i === classes.length ? 'avg' : '') });
  const skipped = [...r.data.skipped.map((s) => ({ ...s, when: 'evaluation' })), ...(d?.skipped ?? []).map((s) => ({ ...s, when: 'training' }))];
  out += `<h3>Files skipped (${skipped.length})</h3>`;
  out += skipped.length ? table(['file', 'when', 'why'], skipped.map((s) => [esc(s.path), s.when, `<span class="l">${esc(s.reason)}</span>`])) : '<p class="note">None: every image decoded.</p>';
  if (d) {
    out += `<h3>Near-duplicates across the split (${d.nearDuplicatesAcrossSplit.length})</h3>`;
    out += d.nearDuplicatesAcrossSplit.length
      ? table(['training image', 'validation image', 'pHash distance'], d.nearDuplicatesAcrossSplit.map((n) => [esc(n.train), esc(n.val), String(n.distance)]))
      : '<p class="note">None found (perceptual-hash distance ≤ 4): validation images are not near-copies of training images.</p>';
    const dropped = d.duplicates.reduce((a, g) => a + g.dropped.length, 0);
    out += `<h3>Exact duplicates</h3><p class="note">${d.duplicates.length} groups of byte-identical files inside a class (${dropped} copies dropped); ${d.conflicts.length} files filed under two classes.</p>`;
    if (d.conflicts.length) out += table(['files', 'classes'], d.conflicts.map((c) => [c.files.map((f) => esc(f.relPath)).join('<br>'), c.files.map((f) => esc(f.label)).join(', ')]));
  } else {
    out += '<p class="note">No training data report: this model is not a run folder.</p>';
  }
  return out;
}

export function renderEvaluationHtml(r: EvaluationReport, o: EvaluationPageOptions = {}): string {
  const m = r.metrics;
  const subtitle =
    `model <code>${esc(r.model.path)}</code> (${esc(r.model.backbone)}) · data <code>${esc(r.data.dir)}</code>` +
    `${r.data.subset !== 'all' ? ` (${esc(r.data.subset)} subset)` : ''} · ${r.data.images} images · ${esc(r.createdAt)}`;
  const summary =
    `<div class="cards">${card('accuracy', pct(m.accuracy))}${card('macro F1', fmt(m.macroAvg.f1, 4))}` +
    `${card('macro AP', fmt(r.macroAveragePrecision, 4))}${card('ECE', fmt(r.calibration.after.ece, 4))}${card('mistakes', `${r.mistakes.length} / ${r.data.images}`)}</div>` +
    (r.confusedPairs[0]
      ? `<p>Most frequent error: <b>${esc(r.confusedPairs[0].trueClass)}</b> predicted as <b>${esc(r.confusedPairs[0].predicted)}</b> (${r.confusedPairs[0].count} images, ${pct(r.confusedPairs[0].rate)} of ${esc(r.confusedPairs[0].trueClass)}).</p>`
      : '<p>No errors on these images.</p>');
  const pairs = r.confusedPairs.length
    ? table(['true class', 'predicted as', 'images', 'share of true class'], r.confusedPairs.map((p) => [esc(p.trueClass), esc(p.predicted), String(p.count), pct(p.rate)]), { id: 'confused-pairs-table' })
    : '<p class="note">No confusions.</p>';
  const body = [
    section('summary', 'Summary', summary),
    section('confusion-matrix', 'Confusion matrix', `<p class="note">Rows are true classes, columns predictions; each cell shows the count and the share of its row (recall on the diagonal).</p>${confusionHeatmap(m.confusion, m.classes)}`),
    ...(r.groups ? [section('groups', 'Per group (held-out sources)', groupTable(r))] : []),
    section('per-class', 'Precision, recall, F1 per class', perClassTable(r)),
    section('confused-pairs', 'Most-confused class pairs', pairs),
    section('gallery', 'Misclassified images', gallery(r, o)),
    section('pr-curves', 'Precision–recall curves', prCurves(r)),
    section('reliability', 'Calibration (reliability diagram)', reliability(r)),
    section('training', 'Training curves', training(r)),
    section('data', 'Data', dataSummary(r)),
  ].join('');
  const nav = r.groups ? [...NAV.slice(0, 2), { id: 'groups', label: 'Per group' }, ...NAV.slice(2)] : NAV;
  return htmlPage({ title: `phoneside evaluation: ${r.model.backbone}`, subtitle, nav, body });
}
