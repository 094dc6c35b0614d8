/**
 * A trained classifier run end to end by ONNX Runtime alone (no tfjs): the bundle's trained
 * layers are joined to the backbone's frozen trunk and emitted as one ONNX graph.
 */
import * as ort from 'onnxruntime-node';
import { getBackbone } from '../backbones/registry.js';
import { loadBackbone } from '../backbones/load.js';
import { normalizeToCHW } from '../backbones/preprocess.js';
import { loadForModel } from '../data/image.js';
import { loadBundle, type ModelBundle } from '../model/bundle.js';
import { assembleClassifierGraph } from '../model/assemble.js';
import { buildTrunkModel } from '../onnx/from-graph.js';

export interface LoadClassifierOptions {
  /** Override folder for the backbone's ImageNet weights. */
  weights?: string;
  /** ONNX Runtime intra-op threads (0 = all cores). */
  threads?: number;
}

export interface Prediction {
  label: string;
  probabilities: Record<string, number>;
}

export class Classifier {
  private constructor(
    readonly bundle: ModelBundle,
    private readonly session: ort.InferenceSession,
  ) {}

  static async load(modelDir: string, opts: LoadClassifierOptions = {}): Promise<Classifier> {
    const bundle = await loadBundle(modelDir);
    const spec = getBackbone(bundle.manifest.backbone.id);
    const backbone = await loadBackbone(spec, opts.weights ? { path: opts.weights } : {});
    const graph = assembleClassifierGraph(backbone, bundle, { softmax: true });
    const bytes = buildTrunkModel(graph);
    const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: opts.threads ?? 0, graphOptimizationLevel: 'all' });
    return new Classifier(bundle, session);
  }

  get classes(): string[] {
    return this.bundle.manifest.classes;
  }

  /** Class probabilities for images given as paths or encoded bytes, in input order. */
  async probabilities(images: readonly (string | Uint8Array)[]): Promise<number[][]> {
    const pre = this.bundle.manifest.preprocessing;
    const per = 3 * pre.size * pre.size;
    const x = new Float32Array(images.length * per);
    await Promise.all(
      images.map(async (img, i) => {
        const rgb = await loadForModel(img, pre.size, pre.resize);
        normalizeToCHW(rgb.data, pre, x, i * per);
      }),
    );
    const out = await this.session.run({ input: new ort.Tensor('float32', x, [images.length, 3, pre.size, pre.size]) });
    const probs = out['output']!.data as Float32Array;
    const k = this.classes.length;
    return images.map((_, i) => Array.from(probs.subarray(i * k, (i + 1) * k)));
  }

  async classify(image: string | Uint8Array): Promise<Prediction> {
    const [p] = await this.probabilities([image]);
    return toPrediction(this.classes, p!);
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

export function toPrediction(classes: readonly string[], probs: readonly number[]): Prediction {
  let best = 0;
  probs.forEach((v, i) => {
    if (v > probs[best]!) best = i;
  });
  return { label: classes[best]!, probabilities: Object.fromEntries(classes.map((c, i) => [c, probs[i]!])) };
}
