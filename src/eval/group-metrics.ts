/**
 * Figures per group (source) and pooled over groups, from predictions alone: what a model does on
 * photos from sources it never saw, when each group's predictions come from a model trained
 * without that group (out-of-fold predictions of group cross-validation).
 */
import { classificationMetrics, expectedCalibrationError } from './metrics.js';
import { argmax } from '../util/argmax.js';
import { metricsToJSON, type MetricsJSON } from './report.js';

export interface GroupedPrediction {
  group: string;
  /** True class index. */
  label: number;
  /** Probabilities in class order. */
  probabilities: readonly number[];
}

export interface GroupScore {
  group: string;
  images: number;
  /** Images per true class. */
  perClass: Record<string, number>;
  accuracy: number;
  errors: number;
  /** Macro F1 over the classes this group has images of (a one-class group: that class's F1). */
  macroF1: number;
  ece: number;
}

export interface GroupedScores {
  groups: GroupScore[];
  pooled: {
    images: number;
    accuracy: number;
    macroF1: number;
    ece: number;
    /** The group with the lowest accuracy (ties: the larger group, then by name). */
    worstGroup: { group: string; accuracy: number; images: number };
    /** Unweighted mean of the groups' accuracies. */
    meanGroupAccuracy: number;
    metrics: MetricsJSON;
  };
}

function score(group: string, rows: readonly GroupedPrediction[], classes: readonly string[]): GroupScore {
  const y = rows.map((r) => r.label);
  const probs = rows.map((r) => [...r.probabilities]);
  const m = classificationMetrics(y, probs.map(argmax), classes);
  const present = m.perClass.filter((c) => c.support > 0);
  const correct = m.confusion.reduce((a, row, i) => a + row[i]!, 0);
  return {
    group,
    images: rows.length,
    perClass: Object.fromEntries(classes.map((c, k) => [c, y.filter((v) => v === k).length])),
    accuracy: m.accuracy,
    errors: rows.length - correct,
    macroF1: present.reduce((a, c) => a + c.f1, 0) / Math.max(1, present.length),
    ece: expectedCalibrationError(probs, y),
  };
}

/** Per-group and pooled figures; groups sorted by name. */
export function groupedScores(rows: readonly GroupedPrediction[], classes: readonly string[]): GroupedScores {
  if (rows.length === 0) throw new Error('no predictions to score');
  const byGroup = new Map<string, GroupedPrediction[]>();
  for (const r of rows) {
    const list = byGroup.get(r.group);
    if (list) list.push(r);
    else byGroup.set(r.group, [r]);
  }
  const groups = [...byGroup.keys()].sort().map((g) => score(g, byGroup.get(g)!, classes));
  const all = classificationMetrics(rows.map((r) => r.label), rows.map((r) => argmax(r.probabilities)), classes);
  const worst = [...groups].sort((a, b) => a.accuracy - b.accuracy || b.images - a.images || (a.group < b.group ? -1 : 1))[0]!;
  return {
    groups,
    pooled: {
      images: rows.length,
      accuracy: all.accuracy,
      macroF1: all.macroAvg.f1,
      ece: expectedCalibrationError(rows.map((r) => [...r.probabilities]), rows.map((r) => r.label)),
      worstGroup: { group: worst.group, accuracy: worst.accuracy, images: worst.images },
      meanGroupAccuracy: groups.reduce((a, g) => a + g.accuracy, 0) / groups.length,
      metrics: metricsToJSON(all),
    },
  };
}

/** A plain-text table: one row per group, then the pooled row. */
export function formatGroupTable(s: GroupedScores, classes: readonly string[]): string {
  const width = Math.max(6, ...s.groups.map((g) => g.group.length));
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`.padStart(7);
  const head = `${'group'.padEnd(width)}  images  ${classes.map((c) => c.padStart(6)).join(' ')}  accuracy  errors  macro F1    ECE`;
  const line = (name: string, images: number, per: Record<string, number> | undefined, acc: number, errors: number, f1: number, ece: number): string =>
    `${name.padEnd(width)}  ${String(images).padStart(6)}  ${classes.map((c) => (per ? String(per[c] ?? 0) : '').padStart(6)).join(' ')}  ${pct(acc)}  ${String(errors).padStart(6)}    ${f1.toFixed(4)} ${ece.toFixed(4)}`;
  const p = s.pooled;
  const errors = s.groups.reduce((a, g) => a + g.errors, 0);
  return [
    head,
    ...s.groups.map((g) => line(g.group, g.images, g.perClass, g.accuracy, g.errors, g.macroF1, g.ece)),
    line('pooled', p.images, undefined, p.accuracy, errors, p.macroF1, p.ece),
    `worst group: ${p.worstGroup.group} ${pct(p.worstGroup.accuracy).trim()} (${p.worstGroup.images} images); mean of group accuracies ${pct(p.meanGroupAccuracy).trim()}`,
  ].join('\n');
}
