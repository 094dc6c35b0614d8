/**
 * `cv`: group cross-validation. Every image is predicted by a model that never saw its group
 * (source), so the figures say what the recipe does on photos from a new source; a random split
 * instead puts photos from the same shoot on both sides and over-estimates that.
 *
 * Trunk features are extracted once for every image and view and shared by all folds. In each
 * fold, early stopping and the temperature use an inner stratified split of the training groups
 * (never the held-out group); the held-out group is predicted once, at the end.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { assignGroups, groupFolds, groupSizes, parseGroupSpec } from '../data/groups.js';
import { stratifiedSplit } from '../data/split.js';
import { fitTemperature, softmaxWithTemperature } from '../eval/calibration.js';
import { buildEvaluationReport, reportToJSON } from '../eval/evaluation-report.js';
import { groupedScores } from '../eval/group-metrics.js';
import { writeEvaluationHtml } from '../eval/html-report.js';
import { expectedCalibrationError } from '../eval/metrics.js';
import { argmax } from '../util/argmax.js';
import { CV_FILES, CV_REPORT_SCHEMA, cvAbstain, type CvFold, type CvPrediction, type CvReport } from '../eval/cv-report.js';
import { timestampedRunDir } from '../eval/run-folder.js';

export type { CvReport } from '../eval/cv-report.js';
import { CV, type CvInput, type CvSettings } from '../options/train.js';
import { OptionConflictError } from '../options/schema.js';
import { createRng } from '../util/rng.js';
import { formatDuration } from '../util/progress.js';
import { predictLogits, TrainingDivergedError } from './fit.js';
import {
  extractViews, fitOnFeatures, loadTrainingImages, openTrunkFeatures, recordedOptions, resolveModel, resolveRecipe, trainLog,
  type RecipeExtras, type ResolvedExtras,
} from './train.js';


/**
 * What `crossValidate()` takes: the options of its table in src/options/train.ts (the recipe, as
 * `train()` takes it, and cv's own; defaults and range checks come from there), plus the recipe's
 * non-flag parts; `out: null` writes nothing.
 */
export type CvParams = Omit<CvInput, 'augment' | 'out'> & RecipeExtras & { out?: string | null };

/** The options after defaults and checks (`groups` is required). */
export type CvOptions = Omit<CvSettings, 'augment' | 'out'> & ResolvedExtras & { groups: string; out?: string | null };

/** Accuracy on the held-out images turned a quarter turn, pooled and per group. */
function rotatedScores(correct: readonly boolean[], groups: readonly string[]): NonNullable<CvReport['rotated']> {
  const perGroup: Record<string, number> = {};
  for (const g of new Set(groups)) {
    const idx = groups.map((x, i) => (x === g ? i : -1)).filter((i) => i >= 0);
    perGroup[g] = idx.filter((i) => correct[i]).length / idx.length;
  }
  return { accuracy: correct.filter(Boolean).length / correct.length, perGroup };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : Math.round((s[mid - 1]! + s[mid]!) / 2);
}

export async function crossValidate(dataDir: string, params: CvParams): Promise<CvReport> {
  const { out, ...rest } = params;
  const settings = resolveRecipe(CV.options, { ...rest, ...(typeof out === 'string' ? { out } : {}) });
  const groupSpec = settings.groups;
  if (groupSpec === undefined) throw new OptionConflictError(['groups'], ([g]) => `cross-validation needs ${g}: where each image's group (source) comes from`);
  const opts: CvOptions = { ...settings, groups: groupSpec, ...(out === null ? { out: null } : {}) };
  const { log, stream } = trainLog(opts);
  const tStart = performance.now();
  const resolved = resolveModel(opts);
  const spec = parseGroupSpec(opts.groups);

  const { scan, items, classes } = await loadTrainingImages(dataDir, opts, stream, log);
  const groups = await assignGroups(items, spec, scan.root);
  const folds = groupFolds(groups, opts.folds === undefined ? {} : { folds: opts.folds });
  const sizes = groupSizes(groups);
  log(`cv: ${items.length} images in ${sizes.size} groups (${[...sizes].map(([g, n]) => `${g} ${n}`).join(', ')}); ${folds.length} folds, ${opts.folds === undefined ? 'leave one group out' : 'group k-fold'}`);

  // Every image is a training image in some fold: extract all its views once.
  let t = performance.now();
  const trunk = await openTrunkFeatures(resolved, opts);
  const { train: feats } = await extractViews(trunk.store, items, [], Math.max(1, opts.views), stream);
  const flipped = opts.tta ? (await trunk.store.extract(items, ['hflip'])).features.map((v) => v[0]!) : undefined;
  const turned = opts.rotationCheck === false ? undefined : (await trunk.store.extract(items, ['rot90'])).features.map((v) => v[0]!);
  const turnedCorrect: boolean[] = new Array(items.length).fill(false);
  await trunk.dispose();
  const featuresSeconds = (performance.now() - t) / 1000;

  const labels = items.map((it) => classes.indexOf(it.label));
  const predictions: (CvPrediction | undefined)[] = new Array(items.length);
  const foldRecords: CvFold[] = [];
  t = performance.now();
  for (let f = 0; f < folds.length; f++) {
    const tFold = performance.now();
    const held = new Set(folds[f]);
    const testIdx = items.map((_, i) => i).filter((i) => held.has(groups[i]!));
    const trainPool = items.map((it, i) => ({ ...it, index: i })).filter((it) => !held.has(groups[it.index]!));
    const inner = stratifiedSplit(trainPool, { valFraction: opts.innerValFraction, seed: opts.seed });
    const rng = createRng(opts.seed).fork('cv').fork(f);
    const fitted = await fitOnFeatures(
      {
        model: resolved,
        trunk,
        classes,
        train: inner.train.map((it) => feats.features[it.index]!),
        trainLabels: inner.train.map((it) => labels[it.index]!),
        val: inner.val.map((it) => feats.features[it.index]![0]!),
        valLabels: inner.val.map((it) => labels[it.index]!),
        callbacks: [],
        rng,
      },
      opts,
    ).catch((err: unknown) => {
      if (err instanceof TrainingDivergedError) err.message = `fold ${f + 1}/${folds.length} (held out ${folds[f]!.join(', ')}): ${err.message}`;
      throw err;
    });
    const innerLogits = predictLogits(fitted.classifier, inner.val.map((it) => feats.features[it.index]![0]!));
    const temperature = fitTemperature(innerLogits, inner.val.map((it) => labels[it.index]!));
    let testLogits = predictLogits(fitted.classifier, testIdx.map((i) => feats.features[i]![0]!));
    if (flipped) {
      const mirror = predictLogits(fitted.classifier, testIdx.map((i) => flipped[i]!));
      testLogits = testLogits.map((row, k) => row.map((z, c) => (z + mirror[k]![c]!) / 2));
    }
    if (turned) {
      predictLogits(fitted.classifier, testIdx.map((i) => turned[i]!)).forEach((z, k) => (turnedCorrect[testIdx[k]!] = argmax(z) === labels[testIdx[k]!]));
    }
    fitted.classifier.dispose();
    const testProbs = softmaxWithTemperature(testLogits, temperature);
    let correct = 0;
    testIdx.forEach((i, k) => {
      const p = argmax(testProbs[k]!);
      if (p === labels[i]) correct++;
      predictions[i] = {
        path: items[i]!.relPath,
        label: items[i]!.label,
        group: groups[i]!,
        fold: f,
        predicted: classes[p]!,
        probabilities: testProbs[k]!,
        logits: testLogits[k]!,
      };
    });
    const record: CvFold = {
      fold: f,
      heldOut: folds[f]!,
      trainImages: inner.train.length,
      innerValImages: inner.val.length,
      testImages: testIdx.length,
      epochs: fitted.epochsRun,
      bestEpoch: fitted.bestEpoch,
      temperature,
      accuracy: correct / testIdx.length,
      seconds: (performance.now() - tFold) / 1000,
    };
    foldRecords.push(record);
    log(
      `fold ${f + 1}/${folds.length} held out ${record.heldOut.join(', ')} (${record.testImages} images): accuracy ${(100 * record.accuracy).toFixed(1)}%, ` +
        `best epoch ${record.bestEpoch}/${record.epochs}, T ${temperature.toFixed(3)}, ${formatDuration(record.seconds)}`,
    );
  }
  const trainSeconds = (performance.now() - t) / 1000;

  const rows = predictions.map((p, i) => {
    if (!p) throw new Error(`internal: image ${items[i]!.relPath} was in no fold`);
    return p;
  });
  const scored = groupedScores(rows.map((r, i) => ({ group: r.group, label: labels[i]!, probabilities: r.probabilities })), classes);
  const allLogits = rows.map((r) => r.logits);
  const oofTemperature = fitTemperature(allLogits, labels);
  const calibrated = softmaxWithTemperature(allLogits, oofTemperature);
  const thresholdRows = calibrated.map((probabilities, i) => ({ label: labels[i]!, probabilities, group: groups[i]! }));
  const abstain = cvAbstain(classes, thresholdRows, opts.maxErrorRate);
  const outDir = opts.out === null ? null : resolve(opts.out ?? timestampedRunDir(`cv-${resolved.spec.id}`));
  const report: CvReport = {
    schema: CV_REPORT_SCHEMA,
    createdAt: new Date().toISOString(),
    dataDir: scan.root,
    groupSpec: opts.groups,
    mode: opts.folds === undefined ? 'leave-one-group-out' : 'group-k-fold',
    backbone: resolved.spec.id,
    topBlocks: resolved.topBlocks,
    classes,
    folds: foldRecords,
    ...scored,
    eceAtT1: expectedCalibrationError(softmaxWithTemperature(allLogits, 1), labels),
    oofTemperature,
    medianBestEpoch: median(foldRecords.map((r) => r.bestEpoch)),
    abstain,
    rotated: turned ? rotatedScores(turnedCorrect, groups) : null,
    options: { ...recordedOptions(opts) },
    timings: { featuresSeconds, trainSeconds, totalSeconds: (performance.now() - tStart) / 1000 },
    predictions: rows,
    outDir,
  };
  if (outDir !== null) await writeCvReport(outDir, report);
  return report;
}

/** cv.json and report.html (the evaluation report of the out-of-fold predictions, with a per-group table). */
export async function writeCvReport(outDir: string, report: CvReport): Promise<void> {
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, CV_FILES.report), reportToJSON(report));
  const html = buildEvaluationReport({
    classes: report.classes,
    predictions: report.predictions.map((p) => ({ path: p.path, label: p.label, predicted: p.predicted, probabilities: p.probabilities, group: p.group })),
    // Each fold applied its own temperature: the 'before' diagram gets the T = 1 probabilities.
    temperature: report.oofTemperature,
    probabilitiesAtT1: softmaxWithTemperature(report.predictions.map((p) => p.logits), 1),
    model: { path: outDir, backbone: `${report.backbone} (out-of-fold predictions, ${report.folds.length} folds, ${report.mode})` },
    data: { dir: report.dataDir, subset: 'all', skipped: [] },
    groups: report.groups,
  });
  await writeEvaluationHtml(join(outDir, CV_FILES.html), html, { dataDir: report.dataDir });
}
