/**
 * The recipe study: group cross-validation of training recipes over several seeds, one line of
 * figures per (recipe, seed) appended to a JSONL file (so an interrupted study resumes where it
 * stopped), then a table of mean ± std per recipe.
 *
 *   node --import tsx bench/recipe-study.ts [--data ../shared/datasets/phones] [--out study.jsonl]
 *        [--seeds 1,2,3] [--only NAME,NAME] [--folds K] [--table]
 *
 * Each run's cv report (out-of-fold predictions included) is kept in OUT.oof/, so that ensembles
 * can be scored afterwards from predictions alone (bench/score-ensemble.ts).
 */
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { AUGMENT_PRESETS } from '../src/data/augment-presets.js';
import { reportToJSON } from '../src/eval/evaluation-report.js';
import { crossValidate, type CvOptions } from '../src/train/cv.js';

type Recipe = Partial<CvOptions> & { backbone: string };

const MNV2 = { backbone: 'mobilenet_v2' };
const R50 = { backbone: 'resnet50' };

/** Every recipe the study knows; --only picks some. */
export const RECIPES: Record<string, Recipe> = {
  'mnv2-head-v1-noaug': { ...MNV2, topBlocks: 0, views: 1, augment: { ...AUGMENT_PRESETS.none } },
  'mnv2-head-v1-noaug-tta': { ...MNV2, topBlocks: 0, views: 1, augment: { ...AUGMENT_PRESETS.none }, tta: true },
  'mnv2-head-v1-noaug-ls': { ...MNV2, topBlocks: 0, views: 1, augment: { ...AUGMENT_PRESETS.none }, labelSmoothing: 0.1 },
  'mnv2-head-v1-noaug-mixup': { ...MNV2, topBlocks: 0, views: 1, augment: { ...AUGMENT_PRESETS.none }, mixup: 0.2 },
  'mnv2-head-v1-noaug-balanced': { ...MNV2, topBlocks: 0, views: 1, augment: { ...AUGMENT_PRESETS.none }, balancedSampling: true },
  'mnv2-head-v1-noaug-ema': { ...MNV2, topBlocks: 0, views: 1, augment: { ...AUGMENT_PRESETS.none }, ema: 0.99 },
  'mnv2-head-v1-noaug-ce': { ...MNV2, topBlocks: 0, views: 1, augment: { ...AUGMENT_PRESETS.none }, loss: 'ce' },
  'mnv2-head-v4': { ...MNV2, topBlocks: 0, views: 4 },
  // Only quarter turns (no crop, colour or small angles): keeps the content, removes the orientation cue.
  'mnv2-head-v4-rot90': { ...MNV2, topBlocks: 0, views: 4, augment: { ...AUGMENT_PRESETS.none, rot90Prob: 0.75 }, tta: true },
  'r50-head-v4-rot90': { ...R50, topBlocks: 0, views: 4, augment: { ...AUGMENT_PRESETS.none, rot90Prob: 0.75 }, tta: true },
  'mnv2-head-v8': { ...MNV2, topBlocks: 0, views: 8 },
  'mnv2-head-v8-strong': { ...MNV2, topBlocks: 0, views: 8, augment: { ...AUGMENT_PRESETS.strong } },
  'mnv2-head-v16-strong': { ...MNV2, topBlocks: 0, views: 16, augment: { ...AUGMENT_PRESETS.strong } },
  'mnv2-top3-v4': { ...MNV2, topBlocks: 3, views: 4 },
  'mnv2-top3-v8-strong': { ...MNV2, topBlocks: 3, views: 8, augment: { ...AUGMENT_PRESETS.strong } },
  'mnv2-top1-v8-strong': { ...MNV2, topBlocks: 1, views: 8, augment: { ...AUGMENT_PRESETS.strong } },
  'r50-head-v1-noaug': { ...R50, topBlocks: 0, views: 1, augment: { ...AUGMENT_PRESETS.none } },
  'r50-head-v4': { ...R50, topBlocks: 0, views: 4 },
  'r50-head-v1-noaug-tta': { ...R50, topBlocks: 0, views: 1, augment: { ...AUGMENT_PRESETS.none }, tta: true },
  'r50-head-v8-strong': { ...R50, topBlocks: 0, views: 8, augment: { ...AUGMENT_PRESETS.strong } },
  'r50-top1-v4': { ...R50, topBlocks: 1, views: 4 },
  'r50-top1-v1-noaug': { ...R50, topBlocks: 1, views: 1, augment: { ...AUGMENT_PRESETS.none } },
};

interface StudyLine {
  recipe: string;
  seed: number;
  folds: number | 'logo';
  accuracy: number;
  macroF1: number;
  ece: number;
  worstGroup: string;
  worstGroupAccuracy: number;
  meanGroupAccuracy: number;
  perGroup: Record<string, number>;
  medianBestEpoch: number;
  oofTemperature: number;
  /** Accuracy on the held-out images turned 90° (orientation shortcut check); absent in older lines. */
  rotatedAccuracy?: number;
  /** Abstention at 2% error: coverage fitted on all rows, and cross-fitted over groups. */
  coverage?: number;
  crossFittedCoverage?: number;
  crossFittedErrorRate?: number;
  seconds: number;
  featuresSeconds: number;
}

const { values: v } = parseArgs({
  options: {
    data: { type: 'string', default: '../shared/datasets/phones' },
    groups: { type: 'string', default: 'manifest.csv:source' },
    out: { type: 'string', default: 'runs/study.jsonl' },
    seeds: { type: 'string', default: '1,2,3' },
    only: { type: 'string' },
    folds: { type: 'string' },
    table: { type: 'boolean' },
  },
});
const out = v.out!;
const seeds = v.seeds!.split(',').map(Number);
const folds = v.folds ? Number(v.folds) : undefined;
const names = v.only ? v.only.split(',') : Object.keys(RECIPES);
for (const n of names) if (!RECIPES[n]) throw new Error(`unknown recipe ${n}; known: ${Object.keys(RECIPES).join(', ')}`);

async function readLines(): Promise<StudyLine[]> {
  try {
    return (await readFile(out, 'utf8')).split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as StudyLine);
  } catch {
    return [];
  }
}

const key = (recipe: string, seed: number, f: number | 'logo'): string => `${recipe}|${seed}|${f}`;

if (!v.table) {
  const done = new Set((await readLines()).map((l) => key(l.recipe, l.seed, l.folds)));
  await mkdir(`${out}.oof`, { recursive: true });
  for (const name of names) {
    for (const seed of seeds) {
      const f = folds ?? 'logo';
      if (done.has(key(name, seed, f))) continue;
      const t0 = performance.now();
      const r = await crossValidate(v.data!, { ...RECIPES[name]!, groups: v.groups!, seed, out: null, verbose: false, ...(folds ? { folds } : {}) });
      const line: StudyLine = {
        recipe: name,
        seed,
        folds: f,
        accuracy: r.pooled.accuracy,
        macroF1: r.pooled.macroF1,
        ece: r.pooled.ece,
        worstGroup: r.pooled.worstGroup.group,
        worstGroupAccuracy: r.pooled.worstGroup.accuracy,
        meanGroupAccuracy: r.pooled.meanGroupAccuracy,
        perGroup: Object.fromEntries(r.groups.map((g) => [g.group, g.accuracy])),
        medianBestEpoch: r.medianBestEpoch,
        oofTemperature: r.oofTemperature,
        ...(r.rotated ? { rotatedAccuracy: r.rotated.accuracy } : {}),
        coverage: r.abstain.fit.coverage,
        crossFittedCoverage: r.abstain.crossFitted.coverage,
        crossFittedErrorRate: r.abstain.crossFitted.errorRate,
        seconds: (performance.now() - t0) / 1000,
        featuresSeconds: r.timings.featuresSeconds,
      };
      await appendFile(out, JSON.stringify(line) + '\n');
      await writeFile(`${out}.oof/${name}-s${seed}-${f}.json`, reportToJSON(r));
      process.stderr.write(`${name} seed ${seed}: pooled ${(100 * line.accuracy).toFixed(1)}%, worst ${line.worstGroup} ${(100 * line.worstGroupAccuracy).toFixed(1)}%, ${line.seconds.toFixed(0)} s\n`);
    }
  }
}

// The table: mean ± std over seeds per recipe and fold scheme.
const lines = await readLines();
const byRecipe = new Map<string, StudyLine[]>();
for (const l of lines) {
  const k = `${l.recipe} (${l.folds === 'logo' ? 'LOGO' : `${l.folds}-fold`})`;
  byRecipe.set(k, [...(byRecipe.get(k) ?? []), l]);
}
const ms = (xs: number[], scale = 100, digits = 1): string => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(1, xs.length - 1));
  return `${(scale * m).toFixed(digits)} ± ${(scale * sd).toFixed(digits)}`;
};
/** mean ± std of the runs that have the figure, '–' when none has. */
const opt = (xs: (number | undefined)[]): string => {
  const have = xs.filter((x): x is number => x !== undefined);
  return have.length ? ms(have) : '–';
};
process.stdout.write(
  '| recipe | seeds | pooled accuracy % | macro F1 | worst-group accuracy % (group) | mean group accuracy % | ECE | turned 90° accuracy % | coverage at 2% error, cross-fitted % (its error %) | wall s / run |\n' +
    '|---|---|---|---|---|---|---|---|---|---|\n',
);
for (const [k, ls] of byRecipe) {
  const worst = [...new Set(ls.map((l) => l.worstGroup))].join('/');
  process.stdout.write(
    `| ${k} | ${ls.length} | ${ms(ls.map((l) => l.accuracy))} | ${ms(ls.map((l) => l.macroF1), 1, 3)} | ${ms(ls.map((l) => l.worstGroupAccuracy))} (${worst}) | ` +
      `${ms(ls.map((l) => l.meanGroupAccuracy))} | ${ms(ls.map((l) => l.ece), 1, 3)} | ${opt(ls.map((l) => l.rotatedAccuracy))} | ` +
      `${opt(ls.map((l) => l.crossFittedCoverage))} (${opt(ls.map((l) => l.crossFittedErrorRate))}) | ${(ls.reduce((a, l) => a + l.seconds, 0) / ls.length).toFixed(0)} |\n`,
  );
}
