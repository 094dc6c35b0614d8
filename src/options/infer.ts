/** The options of the verbs that run trained models: predict, evaluate, export, compare, ensemble, models. */
import { ENV_OPTIONS, JSON_OPTION, MODEL_OPTION, PRECISION_OPTIONS, THREADS_OPTION, TTA_OPTION } from './common.js';
import { defineVerb, type OptionsInput, type ResolvedOptions } from './schema.js';

/** How a prediction becomes an answer: shared by predict, the library's classify and serve. */
export const DECISION_OPTIONS = {
  minConfidence: { kind: 'number', min: 0, max: 1, help: "answer 'uncertain' when the top probability is below X" },
  thresholds: {
    kind: 'boolean',
    default: true,
    help: "apply the model's own per-class minimum confidences (below them the answer is 'uncertain'); --no-thresholds answers the raw top class",
  },
} as const;

export const PREDICT = defineVerb({
  name: 'predict',
  usage: '[--model MODEL] PATH... [options]',
  summary: 'classify images (files, folders, globs); --format table|jsonl|csv',
  description:
    'Classifies images: PATHs are files, folders (searched recursively for images) and glob patterns (*, ?, ** — quote them to let phoneside expand them). One row per image: path, label (after thresholds: may be uncertain), predicted (the top class), confidence, probability per class, milliseconds; then a summary.',
  footer: 'Exit status: 0 when every image was classified, 1 when any failed, 2 for usage errors.',
  positionals: { min: 1, max: Infinity, name: 'PATH' },
  options: {
    ...MODEL_OPTION,
    format: { kind: 'choice', cli: 'only', choices: ['table', 'jsonl', 'csv'], defaultText: 'table on a terminal, jsonl otherwise', help: 'output format' },
    ...DECISION_OPTIONS,
    batchSize: { kind: 'integer', min: 1, default: 8, help: 'images per inference call' },
    ...TTA_OPTION,
    ...THREADS_OPTION,
    ...PRECISION_OPTIONS,
    quiet: { kind: 'boolean', short: 'q', cli: 'only', help: 'no progress bar, no summary' },
    ...ENV_OPTIONS,
  },
});

export const EVALUATE = defineVerb({
  name: 'evaluate',
  usage: '[--model MODEL] DATA_DIR [options]   (or: evaluate MODEL DATA_DIR)',
  summary: 'confusion matrix and report of a model on labelled images (--html, --json)',
  description:
    'Prints the confusion matrix and the classification report (scikit-learn layout) of the whole classifier, run as one ONNX graph, on the labelled images of DATA_DIR (one folder per class).',
  positionals: { min: 1, max: 2, name: 'DATA_DIR' },
  options: {
    ...MODEL_OPTION,
    subset: { kind: 'choice', choices: ['val', 'train'], help: "only the images that the run's split.json put in that subset" },
    split: { kind: 'string', placeholder: 'FILE', deprecated: ['split-file'], defaultText: 'the run folder’s split.json', help: 'split.json to use with --subset' },
    batchSize: { kind: 'integer', min: 1, default: 16, help: 'images per inference batch' },
    ...TTA_OPTION,
    ...THREADS_OPTION,
    html: {
      kind: 'string',
      cli: 'only',
      placeholder: 'FILE',
      help: 'also write a self-contained HTML report: confusion heat map, per-class table, precision-recall curves, reliability diagram, gallery of mistakes, most-confused pairs, training curves and data summary (from a run folder)',
    },
    galleryLimit: { kind: 'integer', cli: 'only', min: 0, default: 120, help: 'most misclassified images shown in the HTML gallery' },
    heatmaps: {
      kind: 'boolean',
      cli: 'only',
      default: true,
      help: 'with --html: a heat map of the evidence for the predicted class next to each mistake in the gallery (Grad-CAM, else occlusion; see phoneside explain)',
    },
    digits: { kind: 'integer', cli: 'only', min: 0, max: 10, default: 4, help: 'decimals in the text report' },
    json: { kind: 'boolean', cli: 'only', help: 'print the full report as JSON instead (schema phoneside.evaluation-report/1, docs/json-reports.md)' },
    ...ENV_OPTIONS,
  },
});

export const EXPORT = defineVerb({
  name: 'export',
  usage: '[--model MODEL] --out FILE.onnx [options]   (or: export MODEL --out FILE.onnx)',
  summary: 'the whole classifier as one ONNX file (with its metadata)',
  description:
    "Writes the whole classifier (backbone trunk + trained layers + softmax, temperature folded) as one ONNX file: input 'input' [N, 3, H, W] float32 (normalised pixels, NCHW), output 'output' [N, classes] probabilities. Its metadata_props hold phoneside.format_version, classes, preprocessing, temperature, thresholds, backbone and created_at (and tta, ensemble when used); predict --model FILE.onnx and Classifier.load read them. An ensemble's input is raw RGB pixels 0..255 (mean 0, std 1): each member normalises them inside the graph.",
  positionals: { min: 0, max: 1, name: 'MODEL' },
  options: {
    ...MODEL_OPTION,
    out: { kind: 'string', short: 'o', placeholder: 'FILE', help: 'the .onnx file to write (required; must end in .onnx)' },
    overwrite: { kind: 'boolean', default: false, help: 'replace --out if it exists (otherwise an existing file is refused)' },
    ...TTA_OPTION,
    ...PRECISION_OPTIONS,
    ...ENV_OPTIONS,
  },
});

export const COMPARE = defineVerb({
  name: 'compare',
  usage: 'MODEL [MODEL...] --data DIR [options]   (or --model MODEL, repeated)',
  summary: 'models side by side on the same images (--html, --json)',
  description:
    'Evaluates every MODEL (shipped name, run folder, bundle, ensemble or .onnx file) on the same labelled images and prints them side by side: accuracy, macro and per-class F1, average precision, ECE, parameters, size on disk, single-image latency and batched throughput.',
  positionals: { min: 0, max: Infinity, name: 'MODEL' },
  options: {
    model: { kind: 'strings', repeatable: true, short: 'm', placeholder: 'MODEL', help: 'a model to compare (repeatable; the same as a positional MODEL)' },
    data: { kind: 'string', placeholder: 'DIR', help: 'labelled images, one folder per class (required)' },
    subset: {
      kind: 'choice',
      choices: ['val', 'train'],
      help: "only images in that subset of every model's split.json (for val: images none of the runs trained on); models without a split.json are refused",
    },
    latencyRuns: { kind: 'integer', min: 1, default: 20, help: 'timed single-image calls per model, after 2 warm-ups' },
    batchSize: { kind: 'integer', min: 1, default: 16, help: 'images per batch in the evaluation pass' },
    ...TTA_OPTION,
    ...THREADS_OPTION,
    html: { kind: 'string', cli: 'only', placeholder: 'FILE', help: 'also write a self-contained HTML page (tables, charts, confusion matrices, reliability diagrams, images every model gets wrong)' },
    json: { kind: 'boolean', cli: 'only', help: 'print JSON instead (schema phoneside.comparison/1, docs/json-reports.md)' },
    ...ENV_OPTIONS,
  },
});

export const ENSEMBLE = defineVerb({
  name: 'ensemble',
  usage: 'MODEL MODEL... --out DIR [options]',
  summary: 'several models as one (probabilities averaged, one ONNX graph)',
  description:
    "Makes an ensemble: one model whose probabilities are the mean of its members' (each with its own preprocessing and temperature), run as one ONNX graph by predict, evaluate, compare, serve and export like any model. MODELs are bundle or run folders or shipped model names with the same classes in the same order and the same input size; their bundles are copied into DIR/<name>/ as they are and DIR/ensemble.json lists them.",
  positionals: { min: 0, max: Infinity, name: 'MODEL' },
  options: {
    model: { kind: 'strings', repeatable: true, short: 'm', placeholder: 'MODEL', help: 'a member (repeatable; the same as a positional MODEL)' },
    out: { kind: 'string', short: 'o', placeholder: 'DIR', help: 'the ensemble folder to write (must not exist, or be empty) (required)' },
    tta: { kind: 'boolean', help: "test-time augmentation for every member: the image and its mirror image, logits averaged per member (on when every member's manifest has it)" },
    thresholds: {
      kind: 'numberMap',
      min: 0,
      max: 1,
      placeholder: 'C=P,...',
      help: "the ensemble's per-class minimum confidences, e.g. back=0.9,front=0.8,none=0.85 (below them the answer is 'uncertain'; the members' own are not used)",
    },
    names: { kind: 'strings', defaultText: "each model's folder name", help: 'folder names of the members in DIR' },
    link: { kind: 'boolean', default: false, help: 'refer to the members where they are (relative paths) instead of copying them' },
    fromCv: {
      kind: 'strings',
      placeholder: 'CV,CV,...',
      cli: 'only',
      help: "one cv report per member (cv.json or its folder, in the MODELs' order, each member trained with train --from-cv of it): abstain thresholds are fitted on the mean of the members' calibrated out-of-fold predictions and DIR/cv.json gets the ensemble's group cross-validation figures",
    },
  },
});

export const MODELS = defineVerb({
  name: 'models',
  usage: '[--json]',
  summary: 'list the shipped models (names for --model), with their accuracy',
  description:
    'Lists the trained models shipped with phoneside (names for --model): what each is, its accuracy on sources it never saw (leave-one-source-out cross-validation), its worst source, and its abstain thresholds. The default model is marked with *.',
  positionals: { min: 0, max: 0, name: '' },
  options: { ...JSON_OPTION },
});

export const BACKBONES = defineVerb({
  name: 'backbones',
  usage: '',
  summary: 'list the available ImageNet backbones (names for train --backbone)',
  positionals: { min: 0, max: 0, name: '' },
  options: {},
});

export type PredictInput = OptionsInput<typeof PREDICT.options>;
export type PredictSettings = ResolvedOptions<typeof PREDICT.options>;
export type EvaluateInput = OptionsInput<typeof EVALUATE.options>;
export type CompareInput = OptionsInput<typeof COMPARE.options>;
export type ExportInput = OptionsInput<typeof EXPORT.options>;
export type EnsembleInput = OptionsInput<typeof ENSEMBLE.options>;
