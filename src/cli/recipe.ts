/**
 * The training recipe's options, shared by `train` and `cv` (same names, same parsing), so a
 * recipe chosen by cross-validation is trained with exactly the same command-line words.
 */
import type { ParseArgsConfig } from 'node:util';
import type { TrainOptions } from '../train/train.js';
import { CommandUsageError, choice, defined, intOpt, numberList, numberOpt, type OptionValues } from './options.js';

export const RECIPE_OPTIONS = {
  backbone: { type: 'string' },
  alpha: { type: 'string' },
  'top-blocks': { type: 'string' },
  'head-units': { type: 'string' },
  dropout: { type: 'string' },
  seed: { type: 'string' },
  views: { type: 'string' },
  augment: { type: 'string' },
  'no-augment': { type: 'boolean' },
  'limit-per-class': { type: 'string' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  lr: { type: 'string' },
  'top-lr-scale': { type: 'string' },
  optimizer: { type: 'string' },
  'weight-decay': { type: 'string' },
  loss: { type: 'string' },
  gamma: { type: 'string' },
  'class-alpha': { type: 'string' },
  'label-smoothing': { type: 'string' },
  mixup: { type: 'string' },
  'balanced-sampling': { type: 'boolean' },
  ema: { type: 'string' },
  scheduler: { type: 'string' },
  'lr-patience': { type: 'string' },
  'lr-factor': { type: 'string' },
  patience: { type: 'string' },
  'min-delta': { type: 'string' },
  backend: { type: 'string' },
  'no-feature-cache': { type: 'boolean' },
  quiet: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

/** The recipe options given on the command line (absent ones are left to the library's defaults). */
export async function recipeFromArgs(v: OptionValues): Promise<Partial<TrainOptions> & { backbone: string }> {
  const num = (name: string): number | undefined => numberOpt(v, name);
  const int = (name: string, min = 0): number | undefined => intOpt(v, name, min);
  const headUnits = numberList(v, 'head-units');
  if (headUnits && (headUnits.length !== 2 || headUnits.some((u) => !Number.isInteger(u) || u < 1))) {
    throw new CommandUsageError('--head-units takes two positive integers, e.g. 512,128');
  }
  const { AUGMENT_PRESETS } = await import('../data/augment-presets.js');
  const preset = choice(v, 'augment', ['default', 'strong', 'none'] as const);
  if (preset !== undefined && v['no-augment']) throw new CommandUsageError('--augment and --no-augment contradict each other');
  const augment = v['no-augment'] ? AUGMENT_PRESETS.none : preset !== undefined ? AUGMENT_PRESETS[preset] : undefined;
  return {
    backbone: (v['backbone'] as string | undefined) ?? 'resnet50',
    ...defined({
      alpha: num('alpha'),
      weights: v['weights'] as string | undefined,
      seed: int('seed'),
      topBlocks: int('top-blocks'),
      headUnits: headUnits as [number, number] | undefined,
      dropout: num('dropout'),
      epochs: int('epochs', 1),
      batchSize: int('batch-size', 2),
      lr: num('lr'),
      topLrScale: num('top-lr-scale'),
      optimizer: choice(v, 'optimizer', ['adam', 'adamw'] as const),
      weightDecay: num('weight-decay'),
      loss: choice(v, 'loss', ['focal', 'ce'] as const),
      gamma: num('gamma'),
      classAlpha: numberList(v, 'class-alpha'),
      labelSmoothing: numberOpt(v, 'label-smoothing', (x) => x >= 0 && x < 1, 'a number in [0, 1)'),
      mixup: numberOpt(v, 'mixup', (x) => x >= 0, 'a number >= 0'),
      balancedSampling: v['balanced-sampling'] ? true : undefined,
      ema: numberOpt(v, 'ema', (x) => x >= 0 && x < 1, 'a decay in [0, 1)'),
      scheduler: choice(v, 'scheduler', ['plateau', 'cosine', 'none'] as const),
      lrPatience: int('lr-patience'),
      lrFactor: num('lr-factor'),
      patience: int('patience', 1),
      minDelta: num('min-delta'),
      views: v['no-augment'] ? 1 : int('views', 1),
      limitPerClass: int('limit-per-class', 1),
      threads: int('threads'),
      backend: choice(v, 'backend', ['wasm', 'cpu'] as const),
      augment: augment ? { ...augment } : undefined,
    }),
    featureCache: !v['no-feature-cache'],
    verbose: !v['quiet'],
  };
}
