/**
 * Grad-CAM through ONNX Runtime: two sessions made from the classifier's own graph (see
 * graph.ts): the probe (the whole model, its last feature maps, pooled features and logits as
 * extra outputs) and each member's head (for the finite differences of gradient.ts).
 */
import { readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { checkFiniteOutput, sessionOptions, type Classifier } from '../infer/classifier.js';
import { camStructure, headModel, probeModel, type CamMember } from './graph.js';
import { gradCamMap, scoreGradients, type MemberFeatures, type MemberMaps } from './gradient.js';

/** What Grad-CAM gives for one image: the model's probabilities and a map per asked class. */
export interface GradCamResult {
  probabilities: Float32Array;
  /** Per asked class index: size x size, 0..1. */
  maps: Map<number, Float32Array>;
}

/** The classifier's graph: its file (an exported .onnx or the cached assembled graph), if any. */
async function graphBytes(clf: Classifier): Promise<Uint8Array | string> {
  const file = clf.source.kind === 'onnx' ? clf.source.path : clf.source.cachedOnnx;
  if (file === undefined) return 'the assembled graph was not kept on disk (model cache off or not writable)';
  return new Uint8Array(await readFile(file));
}

export class GradCam {
  private constructor(
    private readonly clf: Classifier,
    private readonly members: readonly CamMember[],
    private readonly probe: ort.InferenceSession,
    private readonly heads: readonly ort.InferenceSession[],
  ) {}

  /** Grad-CAM for `clf`, or why its graph does not allow it (a string). */
  static async open(clf: Classifier, threads?: number): Promise<GradCam | string> {
    const bytes = await graphBytes(clf);
    if (typeof bytes === 'string') return bytes;
    const found = camStructure(bytes);
    if (!found.ok) return found.reason;
    const so = sessionOptions(threads);
    const sessions: ort.InferenceSession[] = [];
    try {
      sessions.push(await ort.InferenceSession.create(probeModel(bytes, found.members), so));
      for (const m of found.members) sessions.push(await ort.InferenceSession.create(headModel(bytes, m), so));
    } catch (err) {
      // A graph cut ONNX Runtime will not run is one Grad-CAM cannot use: say why, so 'auto' falls back.
      await Promise.all(sessions.map((s) => s.release()));
      return `its graph could not be cut for Grad-CAM (${err instanceof Error ? err.message : String(err)})`;
    }
    const [probe, ...heads] = sessions;
    return new GradCam(clf, found.members, probe!, heads);
  }

  /** Maps of `classes` (indices) for one preprocessed image (CHW, the model's input size). */
  async explain(input: Float32Array, classes: (probabilities: Float32Array) => number[]): Promise<GradCamResult> {
    const size = this.clf.preprocessing.size;
    const k = this.clf.classes.length;
    const out = await this.probe.run({ input: new ort.Tensor('float32', input, [1, 3, size, size]) });
    const probabilities = out['output']!.data as Float32Array;
    checkFiniteOutput(probabilities, 1, k, this.clf.source.path);
    const maps: MemberMaps[] = [];
    const features: MemberFeatures[] = [];
    this.members.forEach((m, i) => {
      const a = out[m.featureMap]!;
      const [views, channels, height, width] = a.dims as number[] as [number, number, number, number];
      if (a.dims.length !== 4 || views === undefined) throw new Error(`feature map '${m.featureMap}' is not [views, C, h, w]: [${a.dims.join(', ')}]`);
      const hflip = this.clf.info.tta === 'hflip';
      if (views !== 1 && !(views === 2 && hflip)) throw new Error(`feature map '${m.featureMap}' has ${views} views per image, and the model's TTA does not say what they are`);
      maps.push({ maps: a.data as Float32Array, views, channels, height, width, mirroredSecondView: hflip });
      const head = this.heads[i]!;
      features.push({
        pooled: out[m.pooled]!.data as Float32Array,
        views,
        channels,
        logits: out[m.logits]!.data as Float32Array,
        head: async (pooled, rows) => {
          const r = await head.run({ [m.pooled]: new ort.Tensor('float32', pooled, [rows, channels, 1, 1]) });
          return r[m.logits]!.data as Float32Array;
        },
      });
    });
    const wanted = classes(probabilities);
    const grads = await scoreGradients(features, k);
    const result = new Map<number, Float32Array>();
    for (const c of wanted) result.set(c, gradCamMap(maps, grads.map((perClass) => perClass[c]!), size));
    return { probabilities, maps: result };
  }

  async release(): Promise<void> {
    await Promise.all([this.probe, ...this.heads].map((s) => s.release()));
  }
}
