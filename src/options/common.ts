/** Options several verbs share: the model to run, inference threads, and the `env` settings. */

/** `--model`: every verb that runs one model. */
export const MODEL_OPTION = {
  model: {
    kind: 'string',
    short: 'm',
    placeholder: 'MODEL',
    defaultText: 'ensemble (the shipped default)',
    help: 'shipped model name (see phoneside models), run, bundle or ensemble folder, or exported .onnx file',
  },
} as const;

export const THREADS_OPTION = {
  threads: { kind: 'integer', min: 0, defaultText: 'all cores', help: 'ONNX Runtime threads (0 = all cores)' },
} as const;

export const TTA_OPTION = {
  tta: {
    kind: 'boolean',
    help: "test-time augmentation: average the logits of each image and its mirror image, in one ONNX graph (on by default when the model's manifest asks for it)",
  },
} as const;

/** int8: the precision of the graph run, and the data its quantization is calibrated and checked on. */
export const PRECISION_OPTIONS = {
  precision: {
    kind: 'choice',
    choices: ['fp32', 'int8'],
    defaultText: 'fp32 (an exported .onnx file: as exported)',
    help: 'int8: the whole classifier statically quantized (int8 weights per channel, uint8 activations, QDQ), calibrated on --calibration and refused unless it agrees with fp32 on --gate-data',
  },
  calibration: {
    kind: 'string',
    placeholder: 'DIR',
    defaultText: '../shared/datasets/phones when present',
    help: 'int8: photos to calibrate the activation ranges on (256 of them, spread over its class folders or manifest.csv labels)',
  },
  gateData: {
    kind: 'string',
    placeholder: 'DIR',
    defaultText: '../shared/datasets/phones when present',
    help: 'int8: labelled photos (one folder per class, or a manifest.csv) that int8 is checked on: top label the same as fp32 on >= 99.5% of them and accuracy within 0.5 points',
  },
  force: { kind: 'boolean', default: false, help: 'int8: use (or write) the quantized model even if it fails that check or there is nothing to check it on' },
} as const;

/**
 * Where weights come from: these set the process-wide `env` (library users assign `env.cacheDir`,
 * `env.offline`, `env.weightsDir[id]` directly), so they are CLI-only here.
 */
export const ENV_OPTIONS = {
  weights: {
    kind: 'strings',
    repeatable: true,
    cli: 'only',
    placeholder: '[ID=]PATH',
    group: 'Environment',
    help: "folder (or model.json) with a backbone's ImageNet weights instead of the cache/download; ID=PATH for one backbone, e.g. mobilenet_v2_0.35=DIR (repeatable: an ensemble of several backbones needs one each)",
    envVar: 'PHONESIDE_WEIGHTS_<ID>',
  },
  cacheDir: {
    kind: 'string',
    cli: 'only',
    placeholder: 'DIR',
    group: 'Environment',
    defaultText: '~/.cache/phoneside',
    help: 'cache for downloaded weights, assembled models and trunk features',
    envVar: 'PHONESIDE_CACHE_DIR',
  },
  offline: {
    kind: 'boolean',
    cli: 'only',
    group: 'Environment',
    help: 'never download; missing weights are an error that says how to provide them',
    envVar: 'PHONESIDE_OFFLINE=1',
  },
} as const;

/** `--json`: the result as JSON on stdout instead of text. */
export const JSON_OPTION = {
  json: { kind: 'boolean', cli: 'only', help: 'print the result as JSON instead of text' },
} as const;
