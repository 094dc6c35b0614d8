/** A model comparison as one self-contained HTML page. */
import type { ComparisonReport } from '../compare.js';
import { bestIndex, comparisonRows } from '../compare-format.js';
import { card, htmlPage, table } from './page.js';
import { barChart, confusionHeatmap, esc, fmt, pct, reliabilityChart } from './svg.js';

export interface ComparePageOptions {
  /** Thumbnails (data URIs) of the images every model got wrong, by path. */
  thumbnails?: ReadonlyMap<string, string>;
}

const NAV = [
  { id: 'table', label: 'Side by side' },
  { id: 'charts', label: 'Charts' },
  { id: 'confusion', label: 'Confusion matrices' },
  { id: 'calibration', label: 'Calibration' },
  { id: 'all-wrong', label: 'Wrong for every model' },
];

export function renderComparisonHtml(r: ComparisonReport, o: ComparePageOptions = {}): string {
  const rows = comparisonRows(r);
  const head = ['', ...r.models.map((m) => `${esc(m.name)}<br><span class="meta">${esc(m.backbone)}</span>`)];
  const body = rows.map((row) => {
    const best = bestIndex(row);
    return [esc(row.label), ...row.values.map((v, i) => (v === null || !Number.isFinite(v) ? '–' : i === best ? `<b class="best">${esc(row.format(v))}</b>` : esc(row.format(v))))];
  });
  const sideBySide = `<p class="note">Bold: the best of each ranked row. Latency is one image at a time (decode + preprocess + inference, ONNX Runtime on this machine's CPU); throughput is the batched evaluation pass.</p>${table(head, body, { id: 'comparison-table' })}`;
  const names = r.models.map((m) => m.name);
  const charts =
    `<div class="row">` +
    barChart(r.models.map((m, i) => ({ label: names[i]!, value: m.accuracy, text: pct(m.accuracy) })), 'Accuracy', [Math.max(0, Math.min(...r.models.map((m) => m.accuracy)) - 0.1), 1]) +
    barChart(r.models.map((m, i) => ({ label: names[i]!, value: m.macroF1, text: fmt(m.macroF1, 4) })), 'Macro F1', [Math.max(0, Math.min(...r.models.map((m) => m.macroF1)) - 0.1), 1]) +
    barChart(r.models.map((m, i) => ({ label: names[i]!, value: m.latency.singleImageMsP50, text: `${m.latency.singleImageMsP50.toFixed(1)} ms` })), 'Latency p50, one image (lower is better)', [0, Math.max(...r.models.map((m) => m.latency.singleImageMsP90)) * 1.1]) +
    barChart(r.models.map((m, i) => ({ label: names[i]!, value: (m.sizeBytes.onnx ?? 0) / 1e6, text: m.sizeBytes.onnx ? `${(m.sizeBytes.onnx / 1e6).toFixed(1)} MB` : '–' })), 'Whole ONNX file (MB)', [0, Math.max(...r.models.map((m) => (m.sizeBytes.onnx ?? 0) / 1e6)) * 1.15 || 1]) +
    `</div>`;
  const reports = r.reports ?? [];
  const confusion = reports.length
    ? `<div class="row">${reports.map((rep, i) => `<div><h3>${esc(names[i]!)}</h3>${confusionHeatmap(rep.metrics.confusion, rep.metrics.classes)}</div>`).join('')}</div>`
    : '<p class="note">Not included.</p>';
  const calibration = reports.length
    ? `<div class="row">${reports.map((rep, i) => reliabilityChart(rep.calibration.after.bins, `${names[i]!}: ECE ${fmt(rep.calibration.after.ece, 4)}`)).join('')}</div>`
    : '<p class="note">Not included.</p>';
  const wrong = r.agreement.allWrong.length
    ? `<div class="gallery">${r.agreement.allWrong
        .map((p) => {
          const src = o.thumbnails?.get(p);
          const k = reports[0]?.predictions.findIndex((x) => x.path === p) ?? -1;
          const label = k >= 0 ? reports[0]!.predictions[k]!.label : '';
          const preds = reports.map((rep, i) => `${esc(names[i]!)}: ${esc(rep.predictions[k]?.predicted ?? '?')}`).join('<br>');
          return `<figure>${src ? `<img src="${esc(src)}" alt="${esc(p)}">` : ''}<figcaption><span class="tag true">true ${esc(label)}</span><div>${preds}</div><div class="path">${esc(p)}</div></figcaption></figure>`;
        })
        .join('')}</div>`
    : '<p class="note">No image is misclassified by every model.</p>';
  const subset = r.data.subset === 'all' ? 'all images' : `${r.data.subset} subset of every model's split`;
  const summary =
    `<div class="cards">${card('images', String(r.data.images))}${card('models', String(r.models.length))}${card('disagreements', String(r.agreement.disagreements))}${card('wrong for all', String(r.agreement.allWrong.length))}</div>`;
  const html = [
    `<section id="table"><h2>Side by side</h2>${summary}${sideBySide}</section>`,
    `<section id="charts"><h2>Charts</h2>${charts}</section>`,
    `<section id="confusion"><h2>Confusion matrices</h2>${confusion}</section>`,
    `<section id="calibration"><h2>Calibration (as deployed)</h2>${calibration}</section>`,
    `<section id="all-wrong"><h2>Images every model gets wrong (${r.agreement.allWrong.length})</h2>${wrong}</section>`,
  ].join('');
  return htmlPage({
    title: `phoneside comparison: ${names.join(' vs ')}`,
    subtitle: `data <code>${esc(r.data.dir)}</code> (${esc(subset)}) · ${r.data.images} images · ${esc(r.createdAt)}`,
    nav: NAV,
    body: html,
  });
}
