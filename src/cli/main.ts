/**
 * The `phoneside` command: one verb per mode, a thin shell over the library. Option names match
 * the library's (kebab-case here, camelCase there).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { listBackbones } from '../backbones/registry.js';
import { evaluate, evaluationReport } from '../eval/evaluate.js';
import { reportToJSON } from '../eval/evaluation-report.js';
import { formatClassificationReport, formatConfusionMatrix, metricsToJSON } from '../eval/report.js';
import { cmdCompare, COMPARE_HELP } from './compare.js';
import { cmdExport, EXPORT_HELP } from './export.js';
import { CommandUsageError, choice, defined, intOpt, isUsageError, numberOpt, applyEnvOptions, applyWeightsOption, ENV_OPTIONS } from './options.js';
import { RECIPE_OPTIONS, recipeFromArgs } from './recipe.js';
import { cmdCv, CV_HELP } from './cv.js';
import { cmdModels, MODELS_HELP } from './models.js';
import { cmdEnsemble, ENSEMBLE_HELP } from './ensemble.js';
import { cmdPredict, PREDICT_HELP } from './predict.js';
import { cmdServe, SERVE_HELP } from './serve.js';

const HELP = `phoneside — is this photo the front of a phone, its back, or neither?

Usage:
  phoneside train DATA_DIR [options]        train a classifier (folder per class, or train/ + val/)
  phoneside cv DATA_DIR --groups SPEC        group cross-validation: accuracy on sources a model never saw
  phoneside evaluate MODEL DATA_DIR [--json] confusion matrix and report of a model on labelled images
  phoneside predict [--model M] PATH...      classify images (files, folders, globs); --format table|jsonl|csv
  phoneside export MODEL --out FILE.onnx     the whole classifier as one ONNX file (with its metadata)
  phoneside compare MODEL... --data DIR      models side by side on the same images (--html, --json)
  phoneside ensemble MODEL... --out DIR      several models as one (probabilities averaged, one ONNX graph)
  phoneside serve [--model M] [--port 8080]  web service and web page (on-device mode in the browser)
  phoneside models                           list the shipped models (names for --model), with their accuracy
  phoneside backbones                        list the available backbones
  phoneside help [COMMAND]

Common options:
  --cache-dir DIR      cache for downloaded weights and trunk features (env PHONESIDE_CACHE_DIR)
  --offline            never download; fail with instructions if weights are missing (env PHONESIDE_OFFLINE=1)
  --weights PATH       folder (or model.json) with the backbone's ImageNet weights, instead of the cache/download
  --threads N          ONNX Runtime threads (default: all cores)
`;

const TRAIN_HELP = `phoneside train DATA_DIR [options]

DATA_DIR holds one folder per class (front/, back/, none/ ...), or train/ and val/ folders that do.
Writes a run folder: model/ (bundle), config.json, split.json, metrics.jsonl, evaluation.{txt,json},
data-report.json (skipped files, near-duplicates across the split, timings) and report.html (the
evaluation report of the validation split: see phoneside help evaluate).

Model:
  --backbone NAME        resnet50 | mobilenet_v2 (default resnet50)
  --alpha A              MobileNetV2 width: 0.35 (default), 0.50, 0.75, 1.00
  --top-blocks N         backbone blocks fine-tuned, counted from the top (0 = head only;
                         default 0: on sources a model never saw, the head alone on frozen
                         features did best; see docs/validation.md)
  --head-units A,B       widths of the head's two FC-BN-PReLU-Dropout layers (default per backbone)
  --dropout P            head dropout (default 0.5)
Data:
  --out DIR              run folder (default runs/<backbone>-<time>)
  --seed N               split, augmentation and initialisation seed (default 42)
  --val-fraction F       stratified validation fraction (default 0.2); 0 trains on every image for
                         --epochs epochs (no early stopping): a final model once the recipe is validated
  --temperature T        softmax temperature to store when there is no validation split (default 1)
  --from-cv CV           the final model of a cross-validated recipe: trains on all images for the
                         cv report's median best epoch (unless --epochs), and stores its
                         out-of-fold temperature and abstain thresholds (CV: cv.json or its folder)
  --split FILE           reuse a split.json from an earlier run
  --groups SPEC          where each image's group (source) comes from: FILE.csv:COLUMN (e.g.
                         manifest.csv:source), prefix:SEP or folder (see phoneside help cv)
  --val-groups A,B       hold out these whole groups as the validation split (needs --groups): the
                         honest check of a model on sources it never saw
  --views N              trunk feature views cached per training image: 1 clean + N-1 augmented
                         with --augment (default 1: augmented views lowered accuracy on unseen sources)
  --augment NAME         augmentation strength: default, strong (adds perspective, grayscale, blur,
                         JPEG re-encoding, cut-out, stronger crops and 90° turns) or none
  --no-augment           train on clean images only (same as --augment none --views 1)
  --limit-per-class N    use at most N images per class (quick experiments)
Optimisation:
  --epochs N             maximum epochs (default 30)
  --batch-size N         (default 32)
  --lr X                 learning rate of the head (default 1e-3)
  --top-lr-scale X       learning-rate multiplier for fine-tuned backbone blocks (default 0.1)
  --optimizer adam|adamw (default adamw)   --weight-decay X (default 1e-4)
  --loss focal|ce        (default focal)   --gamma G (default 2)   --class-alpha A,B,C (per class)
  --scheduler plateau|cosine|none (default plateau)   --lr-patience N (2)   --lr-factor F (0.5)
  --label-smoothing X    smoothed targets (1-X) one-hot + X/classes, focal and ce (default 0: off)
  --mixup A              mix trunk features and labels per batch, lambda ~ Beta(A, A) (default 0: off)
  --balanced-sampling    draw each epoch's images inversely to class frequency (with replacement)
  --ema D                EMA of the weights (decay D, e.g. 0.99) for validation and the model (default off)
  --patience N           early stopping patience on validation loss (default 5)
  --min-delta X          (default 1e-3)
  --backend wasm|cpu     tfjs backend for the trainable layers (default wasm)
  --no-feature-cache     do not cache trunk features on disk
  --quiet                no progress output
  --json                 print the result as JSON (run folder, best epoch, validation metrics,
                         calibration, timings) instead of the text report
`;

const EVALUATE_HELP = `phoneside evaluate MODEL DATA_DIR [options]

MODEL is a run folder, its model/ folder, an ensemble folder, an exported .onnx file or a shipped
model's name (resnet50, mobilenet_v2). Prints the confusion matrix and the classification report
(scikit-learn layout) of the whole classifier (run as one ONNX graph) on the labelled images of
DATA_DIR.
  --html FILE            also write a self-contained HTML report: confusion heat map, per-class
                         table, precision-recall curves, reliability diagram, gallery of mistakes,
                         most-confused pairs, training curves and data summary (from a run folder)
  --json                 print the full report as JSON instead (schema phoneside.evaluation-report/1,
                         see docs/json-reports.md)
  --subset val|train     only the images that the run's split.json put in that subset
  --split-file FILE      split.json to use with --subset (default MODEL/split.json)
  --gallery-limit N      most misclassified images shown in the HTML gallery (default 120)
  --digits N             decimals in the text report (default 4)
  --batch-size N         images per inference batch (default 16)
  --tta                  test-time augmentation: average the logits of each image and its mirror
                         image (on by default when the model's manifest asks for it)
  --weights [ID=]PATH    backbone ImageNet weights; ID=PATH for one backbone (repeatable)
`;

type Values = Record<string, string | boolean | string[] | undefined>;

const COMMON = {
  ...ENV_OPTIONS,
  weights: { type: 'string' },
  threads: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

const num = (v: Values, name: string): number | undefined => numberOpt(v, name);
const int = (v: Values, name: string, min = 0): number | undefined => intOpt(v, name, min);

async function cmdTrain(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...COMMON,
      ...RECIPE_OPTIONS,
      out: { type: 'string' },
      'val-fraction': { type: 'string' },
      split: { type: 'string' },
      temperature: { type: 'string' },
      groups: { type: 'string' },
      'val-groups': { type: 'string' },
      'from-cv': { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  if (v.help) {
    process.stdout.write(TRAIN_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new CommandUsageError('train takes exactly one DATA_DIR (see phoneside help train)');
  applyEnvOptions(v);
  const valGroups = typeof v['val-groups'] === 'string' ? v['val-groups'].split(',').map((g) => g.trim()).filter((g) => g !== '') : undefined;
  if (valGroups && valGroups.length === 0) throw new CommandUsageError('--val-groups needs group names, e.g. --val-groups photo,apple_web');
  if (valGroups && typeof v.groups !== 'string') throw new CommandUsageError('--val-groups needs --groups (e.g. --groups manifest.csv:source)');
  const { train } = await import('../train/train.js');
  const result = await train(positionals[0]!, {
    ...(await recipeFromArgs(v)),
    ...defined({
      out: v.out as string | undefined,
      valFraction: num(v, 'val-fraction'),
      split: v.split as string | undefined,
      temperature: num(v, 'temperature'),
      groups: v.groups as string | undefined,
      valGroups,
      fromCv: v['from-cv'] as string | undefined,
    }),
  });
  const t = result.timings;
  const ev = result.evaluation;
  if (v.json) {
    process.stdout.write(
      reportToJSON({
        schema: 'phoneside.train-result/1',
        runDir: result.runDir,
        bestEpoch: result.bestEpoch,
        validation: ev ? metricsToJSON(ev) : null,
        calibration: result.calibration,
        timings: t,
        skipped: result.skipped,
        nearDuplicates: result.nearDuplicates,
      }),
    );
    return 0;
  }
  process.stdout.write(
    (ev ? `\n${formatConfusionMatrix(ev)}\n\n${formatClassificationReport(ev, 4)}\n` : '\nno validation split (trained on all images)\n') +
      `best epoch ${result.bestEpoch} of ${t.epochs}; time: decode+augment ${t.decodeSeconds.toFixed(1)}s, ` +
      `trunk ${t.trunkSeconds.toFixed(1)}s (${t.featureViewsComputed} views computed, ${t.featureViewsCached} cached), ` +
      `training ${t.trainSeconds.toFixed(1)}s (${t.secondsPerEpoch.toFixed(1)}s/epoch), total ${t.totalSeconds.toFixed(1)}s\n` +
      (ev
        ? `calibration: temperature ${result.calibration.temperature.toFixed(3)}, ECE ${result.calibration.eceBefore.toFixed(4)} -> ${result.calibration.eceAfter.toFixed(4)}\n`
        : `temperature ${result.calibration.temperature} (given, not fitted)\n`) +
      `run folder: ${result.runDir}${ev ? ` (report: ${result.runDir}/report.html)` : ''}\n`,
  );
  return 0;
}

async function cmdEvaluate(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...COMMON,
      json: { type: 'boolean' },
      html: { type: 'string' },
      subset: { type: 'string' },
      'split-file': { type: 'string' },
      digits: { type: 'string' },
      'gallery-limit': { type: 'string' },
      'batch-size': { type: 'string' },
      tta: { type: 'boolean' },
      weights: { type: 'string', multiple: true },
    },
  });
  if (v.help) {
    process.stdout.write(EVALUATE_HELP);
    return 0;
  }
  const weights = applyWeightsOption(v);
  if (positionals.length !== 2) throw new CommandUsageError('evaluate takes MODEL and DATA_DIR (see phoneside help evaluate)');
  if (v.html === '') throw new CommandUsageError('--html needs a file name');
  const digits = int(v, 'digits') ?? 4;
  const galleryLimit = int(v, 'gallery-limit');
  applyEnvOptions(v);
  const r = await evaluate(positionals[0]!, positionals[1]!, {
    ...defined({
      weights,
      tta: v.tta ? true : undefined,
      threads: int(v, 'threads'),
      subset: choice(v, 'subset', ['train', 'val'] as const),
      splitFile: v['split-file'] as string | undefined,
      batchSize: int(v, 'batch-size', 1),
    }),
  });
  for (const s of r.skipped) process.stderr.write(`warning: skipped ${s.path}: ${s.reason}\n`);
  const report = await evaluationReport(r);
  if (typeof v.html === 'string') {
    const { writeEvaluationHtml } = await import('../eval/html-report.js');
    await writeEvaluationHtml(v.html, report, { dataDir: positionals[1]!, ...defined({ galleryLimit }) });
    process.stderr.write(`wrote ${v.html}\n`);
  }
  if (v.json) {
    process.stdout.write(reportToJSON({ ...report, seconds: r.seconds }));
  } else {
    process.stdout.write(
      `${formatConfusionMatrix(r.metrics)}\n\n${formatClassificationReport(r.metrics, digits)}\n` +
        `ECE ${report.calibration.after.ece.toFixed(4)} (T = ${report.calibration.temperature.toFixed(3)}; ${report.calibration.before.ece.toFixed(4)} at T = 1), ` +
        `macro AP ${report.macroAveragePrecision?.toFixed(4) ?? '-'}, ${report.mistakes.length} mistakes, ${r.seconds.toFixed(1)} s\n`,
    );
  }
  return 0;
}

function cmdBackbones(): number {
  for (const b of listBackbones()) {
    const p = b.preprocessing;
    process.stdout.write(
      `${b.id.padEnd(20)} ${b.displayName}; input ${p.size}x${p.size} ${p.channelOrder}, mean ${p.mean.join('/')}, std ${p.std.join('/')}; ` +
        `top blocks ${b.topBlockNames.join(', ')} (default ${b.defaultTopBlocks})\n`,
    );
  }
  return 0;
}

const VERB_HELP: Record<string, string> = {
  train: TRAIN_HELP,
  evaluate: EVALUATE_HELP,
  cv: CV_HELP,
  models: MODELS_HELP,
  predict: PREDICT_HELP,
  export: EXPORT_HELP,
  compare: COMPARE_HELP,
  serve: SERVE_HELP,
  ensemble: ENSEMBLE_HELP,
};

/** Runs the CLI; returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  try {
    switch (verb) {
      case 'train':
        return await cmdTrain(rest);
      case 'evaluate':
        return await cmdEvaluate(rest);
      case 'cv':
        return await cmdCv(rest);
      case 'predict':
        return await cmdPredict(rest);
      case 'export':
        return await cmdExport(rest);
      case 'compare':
        return await cmdCompare(rest);
      case 'serve':
        return await cmdServe(rest);
      case 'ensemble':
        return await cmdEnsemble(rest);
      case 'backbones':
        return cmdBackbones();
      case 'models':
        return await cmdModels(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(VERB_HELP[rest[0] ?? ''] ?? HELP);
        return 0;
      default:
        throw new CommandUsageError(`unknown command '${verb}'`);
    }
  } catch (err) {
    if (isUsageError(err)) {
      process.stderr.write(`phoneside: ${err.message}\nRun 'phoneside help' for usage.\n`);
      return 2;
    }
    process.stderr.write(`phoneside: ${err instanceof Error ? err.message : String(err)}\n`);
    if (process.env['PHONESIDE_DEBUG'] && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}
