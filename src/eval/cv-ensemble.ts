/**
 * Group cross-validation of an ensemble from its members' cv reports alone: each member's
 * out-of-fold logits are calibrated with that member's pooled out-of-fold temperature (what the
 * member trained with `train --from-cv` stores), the probabilities averaged (what an ensemble
 * model computes), then scored per group and pooled, with abstain thresholds fitted on the
 * averages. Members must be reports of the same images, groups and folds.
 */
import { softmaxWithTemperature } from './calibration.js';
import { CV_REPORT_SCHEMA, cvAbstain, type CvReport } from './cv-report.js';
import { groupedScores } from './group-metrics.js';
import { expectedCalibrationError } from './metrics.js';
import { argmax } from '../util/argmax.js';

export function combineCvReports(members: readonly CvReport[], maxErrorRate = members[0]?.abstain.maxErrorRate ?? 0.02): CvReport {
  const first = members[0];
  if (!first || members.length < 2) throw new Error('an ensemble needs at least two cv reports');
  const classes = first.classes;
  const key = (r: CvReport): string => r.predictions.map((p) => `${p.path}\0${p.group}\0${p.fold}`).sort().join('\n');
  const firstKey = key(first);
  for (const m of members.slice(1)) {
    if (m.classes.join('\0') !== classes.join('\0')) throw new Error(`cv reports disagree on classes: ${m.classes.join(', ')} vs ${classes.join(', ')}`);
    if (key(m) !== firstKey) throw new Error('cv reports are not of the same images, groups and folds');
  }
  const order = first.predictions.map((p) => p.path);
  const byPath = members.map((m) => new Map(m.predictions.map((p) => [p.path, p])));
  const calibrated = members.map((m, k) => softmaxWithTemperature(order.map((p) => byPath[k]!.get(p)!.logits), m.oofTemperature));
  const probs = order.map((_, i) => classes.map((_, c) => calibrated.reduce((a, member) => a + member[i]![c]!, 0) / members.length));
  const labels = first.predictions.map((p) => classes.indexOf(p.label));
  const groups = first.predictions.map((p) => p.group);
  const scored = groupedScores(probs.map((p, i) => ({ group: groups[i]!, label: labels[i]!, probabilities: p })), classes);
  const rows = probs.map((probabilities, i) => ({ label: labels[i]!, probabilities, group: groups[i]! }));
  const abstain = cvAbstain(classes, rows, maxErrorRate);
  return {
    schema: CV_REPORT_SCHEMA,
    createdAt: new Date().toISOString(),
    dataDir: first.dataDir,
    groupSpec: first.groupSpec,
    mode: first.mode,
    backbone: `ensemble(${members.map((m) => m.backbone).join('+')})`,
    topBlocks: NaN,
    classes,
    folds: first.folds,
    ...scored,
    eceAtT1: expectedCalibrationError(probs, labels),
    oofTemperature: 1,
    medianBestEpoch: NaN,
    abstain,
    // Reports keep no per-image answers on turned photos, so the ensemble's cannot be derived.
    rotated: null,
    options: { members: members.map((m) => ({ backbone: m.backbone, topBlocks: m.topBlocks, options: m.options })) },
    timings: {
      featuresSeconds: members.reduce((a, m) => a + m.timings.featuresSeconds, 0),
      trainSeconds: members.reduce((a, m) => a + m.timings.trainSeconds, 0),
      totalSeconds: members.reduce((a, m) => a + m.timings.totalSeconds, 0),
    },
    predictions: first.predictions.map((p, i) => ({
      ...p,
      predicted: classes[argmax(probs[i]!)]!,
      probabilities: probs[i]!,
      logits: probs[i]!.map((x) => Math.log(Math.max(x, 1e-12))),
    })),
    outDir: null,
  };
}
