/**
 * Grad-CAM without an autodiff engine. The head starts with a global average pooling of the last
 * feature map A (C x h x w), so dScore/dA_k(i,j) = dScore/dg_k / (h*w) with g = GAP(A), and
 * Grad-CAM's channel weight alpha_k = mean_ij dScore/dA_k(i,j) = dScore/dg_k / (h*w). dScore/dg is
 * taken by central finite differences through the head alone (a few small layers), every
 * coordinate's two perturbed copies in one batched run. The head is piecewise linear (dense,
 * batch norm, PReLU), so the differences are exact unless a step crosses a PReLU kink.
 * Pure arithmetic over an injected head runner: no Node.js imports.
 */
import { mirrorColumns, rectifyAndScale, resizeBilinear } from './heatmap.js';
import { logMeanProbability, logSoftmaxAt } from './score.js';

/**
 * Runs a head on `rows` pooled-feature rows of `channels` values each ([rows, C, 1, 1]); rows are
 * laid out view-major ([views, images]); answers the logits, [images, classes].
 */
export type HeadRunner = (pooled: Float32Array, rows: number) => Promise<Float32Array>;

/** One member's pooled features and how to perturb them. */
export interface MemberFeatures {
  /** The pooled features of one image, views x channels (view-major). */
  pooled: Float32Array;
  views: number;
  channels: number;
  /** The member's logits for the image, [classes]. */
  logits: Float32Array;
  head: HeadRunner;
}

/** Relative step of the central differences (times the RMS of the pooled features). */
export const FD_STEP = 1e-2;
/** Coordinates differentiated per head run (2 copies each). */
const CHUNK = 256;

/**
 * d score_c / d pooled of each member, for every class c: result[m][c] is a Float64Array of
 * views x channels, where score_c = log of class c's probability in the mean of the members'
 * softmaxes (see score.ts).
 */
export async function scoreGradients(members: readonly MemberFeatures[], classes: number): Promise<Float64Array[][]> {
  const baseLogProb = members.map((m) => Array.from({ length: classes }, (_, c) => logSoftmaxAt(m.logits, 0, classes, c)));
  const out: Float64Array[][] = [];
  for (const [mi, m] of members.entries()) {
    const { views: v, channels: ch, pooled } = m;
    const coords = v * ch;
    if (pooled.length !== coords) throw new RangeError(`pooled features: expected ${coords} values, got ${pooled.length}`);
    let sq = 0;
    for (const x of pooled) sq += x * x;
    const step = FD_STEP * Math.max(Math.sqrt(sq / coords), 1e-3);
    const grads = Array.from({ length: classes }, () => new Float64Array(coords));
    const scoreOf = (logits: Float32Array, row: number, c: number): number =>
      logMeanProbability(members.map((_, k) => (k === mi ? logSoftmaxAt(logits, row * classes, classes, c) : baseLogProb[k]![c]!)));
    for (let start = 0; start < coords; start += CHUNK) {
      const q = Math.min(CHUNK, coords - start);
      const copies = 2 * q;
      const batch = new Float32Array(v * copies * ch);
      for (let view = 0; view < v; view++) {
        for (let j = 0; j < copies; j++) batch.set(pooled.subarray(view * ch, (view + 1) * ch), (view * copies + j) * ch);
      }
      // Copy 2i raises coordinate start+i by the step, copy 2i+1 lowers it.
      for (let i = 0; i < q; i++) {
        const coord = start + i;
        const view = Math.floor(coord / ch);
        const k = coord % ch;
        batch[(view * copies + 2 * i) * ch + k]! += step;
        batch[(view * copies + 2 * i + 1) * ch + k]! -= step;
      }
      const logits = await m.head(batch, v * copies);
      if (logits.length !== copies * classes) throw new Error(`the head answered ${logits.length} logits, expected ${copies} x ${classes}`);
      for (let c = 0; c < classes; c++) {
        for (let i = 0; i < q; i++) grads[c]![start + i] = (scoreOf(logits, 2 * i, c) - scoreOf(logits, 2 * i + 1, c)) / (2 * step);
      }
    }
    out.push(grads);
  }
  return out;
}

/** One member's last feature map for one image. */
export interface MemberMaps {
  /** views x C x h x w (view-major), as the model computed it. */
  maps: Float32Array;
  views: number;
  channels: number;
  height: number;
  width: number;
  /** View 1 is the mirror image (hflip TTA): its map is mirrored back before the views are added. */
  mirroredSecondView: boolean;
}

/**
 * Grad-CAM of one class at `size` x `size`: per member and view, sum_k alpha_k A_k with
 * alpha = gradient / (h*w); views mirrored back where needed, every member's map resized to the
 * input and added (the score is one function of all of them), then ReLU and scaled to 0..1.
 */
export function gradCamMap(members: readonly MemberMaps[], gradients: readonly Float64Array[], size: number): Float32Array {
  const total = new Float32Array(size * size);
  members.forEach((m, mi) => {
    const hw = m.height * m.width;
    const grad = gradients[mi]!;
    const sum = new Float32Array(hw);
    for (let view = 0; view < m.views; view++) {
      const cam = new Float32Array(hw);
      for (let k = 0; k < m.channels; k++) {
        const alpha = grad[view * m.channels + k]! / hw;
        if (alpha === 0) continue;
        const base = (view * m.channels + k) * hw;
        for (let p = 0; p < hw; p++) cam[p]! += alpha * m.maps[base + p]!;
      }
      const back = view === 1 && m.mirroredSecondView ? mirrorColumns(cam, m.width, m.height) : cam;
      for (let p = 0; p < hw; p++) sum[p]! += back[p]!;
    }
    const resized = resizeBilinear(sum, m.width, m.height, size, size);
    for (let p = 0; p < total.length; p++) total[p]! += resized[p]!;
  });
  return rectifyAndScale(total);
}
