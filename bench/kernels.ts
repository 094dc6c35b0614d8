/**
 * Speed of one training step on the wasm backend for the workloads the trainer targets, batch 8:
 * ResNet50's last bottleneck block (1x1 2048->512, 3x3 512->512, 1x1 512->2048, residual add; 7x7
 * input) + global average pooling + dense 2048->256->3, and MobileNetV2's last block + Conv_1 + head.
 * Also times each conv backprop kernel alone. Wall times: other load on the machine shows up here.
 *
 *   node --import tsx bench/kernels.ts [steps]
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmGradientKernels } from '../src/train/kernels/wasm-gradients.js';

const BATCH = 8;
const STEPS = Number(process.argv[2] ?? 5);

/** Median and best wall time of `steps` runs after one warm-up run (XNNPACK setup, heap growth). */
function timeMs(steps: number, fn: () => void): { median: number; min: number } {
  fn();
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)]!, min: times[0]! };
}

const fmt = ({ median, min }: { median: number; min: number }): string =>
  `${median.toFixed(1).padStart(7)} ms (best ${min.toFixed(1)})`;

const he = (shape: number[], fanIn: number): tf.Variable =>
  tf.variable(tf.mul(tf.randomNormal(shape, 0, 1, 'float32', 1), Math.sqrt(2 / fanIn)), true);

const bias = (n: number): tf.Variable => tf.variable(tf.zeros([n]), true);
const labels = (): tf.Tensor => tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32'), 3);

/** Cross-entropy of a dense 256 -> 3 head on pooled features. */
function head(pooled: tf.Tensor2D, d1: tf.Variable, c1: tf.Variable, d2: tf.Variable, c2: tf.Variable, y: tf.Tensor): tf.Scalar {
  const z = tf.fused.matMul({ a: pooled, b: d1 as tf.Tensor2D, bias: c1, activation: 'relu' });
  const logits = tf.fused.matMul({ a: z, b: d2 as tf.Tensor2D, bias: c2 });
  return tf.neg(tf.mean(tf.sum(tf.mul(y, tf.logSoftmax(logits)), 1))) as tf.Scalar;
}

/** Times SGD training steps and forward passes of `forward` over `vars`. */
function benchModel(label: string, vars: tf.Variable[], forward: () => tf.Scalar): void {
  const trainStep = (): void => {
    tf.tidy(() => {
      const { grads, value } = tf.variableGrads(forward, vars);
      for (const v of vars) v.assign(tf.sub(v, tf.mul(grads[v.name]!, 1e-3)));
      value.dataSync();
    });
  };
  const before = tf.memory().numTensors;
  const stepMs = timeMs(STEPS, trainStep);
  const fwdMs = timeMs(STEPS, () => tf.tidy(() => void forward().dataSync()));
  console.log(`${label}:`);
  console.log(`  training step (forward + backward + SGD update): ${fmt(stepMs)}`);
  console.log(`  forward only:                                    ${fmt(fwdMs)}`);
  console.log(`  tensors leaked: ${tf.memory().numTensors - before}`);
}

/** ResNet50 conv5_block3 (BN folded into biases) + GAP + dense 2048->256->3. */
function resnetBlock(): void {
  const w1 = he([1, 1, 2048, 512], 2048);
  const b1 = bias(512);
  const w2 = he([3, 3, 512, 512], 9 * 512);
  const b2 = bias(512);
  const w3 = he([1, 1, 512, 2048], 512);
  const b3 = bias(2048);
  const [d1, c1, d2, c2] = [he([2048, 256], 2048), bias(256), he([256, 3], 256), bias(3)];
  const x = tf.relu(tf.randomNormal([BATCH, 7, 7, 2048], 0, 1, 'float32', 2)) as tf.Tensor4D;
  const y = labels();
  benchModel('ResNet50 last bottleneck (1x1 2048->512, 3x3 512->512, 1x1 512->2048, add) + GAP + dense 2048->256->3', [w1, b1, w2, b2, w3, b3, d1, c1, d2, c2], () => {
    let h = tf.fused.conv2d({ x, filter: w1 as tf.Tensor4D, strides: 1, pad: 'valid', bias: b1, activation: 'relu' });
    h = tf.fused.conv2d({ x: h, filter: w2 as tf.Tensor4D, strides: 1, pad: 'same', bias: b2, activation: 'relu' });
    h = tf.fused.conv2d({ x: h, filter: w3 as tf.Tensor4D, strides: 1, pad: 'valid', bias: b3 });
    h = tf.relu(tf.add<tf.Tensor4D>(h, x));
    return head(tf.mean(h, [1, 2]) as tf.Tensor2D, d1, c1, d2, c2, y);
  });
}

/** MobileNetV2 block_16 (expand 160->960, depthwise 3x3, project ->320) + Conv_1 320->1280 + GAP + head. */
function mobilenetBlock(): void {
  const we = he([1, 1, 160, 960], 160);
  const be = bias(960);
  const wd = he([3, 3, 960, 1], 9);
  const bd = bias(960);
  const wp = he([1, 1, 960, 320], 960);
  const bp = bias(320);
  const wc = he([1, 1, 320, 1280], 320);
  const bc = bias(1280);
  const [d1, c1, d2, c2] = [he([1280, 256], 1280), bias(256), he([256, 3], 256), bias(3)];
  const x = tf.randomNormal([BATCH, 7, 7, 160], 0, 1, 'float32', 8) as tf.Tensor4D;
  const y = labels();
  benchModel('MobileNetV2 block_16 (1x1 160->960, dw 3x3 960, 1x1 960->320) + Conv_1 320->1280 + GAP + dense 1280->256->3', [we, be, wd, bd, wp, bp, wc, bc, d1, c1, d2, c2], () => {
    let h = tf.fused.conv2d({ x, filter: we as tf.Tensor4D, strides: 1, pad: 'same', bias: be, activation: 'relu6' });
    h = tf.fused.depthwiseConv2d({ x: h, filter: wd as tf.Tensor4D, strides: 1, pad: 'same', bias: bd, activation: 'relu6' });
    h = tf.fused.conv2d({ x: h, filter: wp as tf.Tensor4D, strides: 1, pad: 'same', bias: bp });
    h = tf.fused.conv2d({ x: h, filter: wc as tf.Tensor4D, strides: 1, pad: 'same', bias: bc, activation: 'relu6' });
    return head(tf.mean(h, [1, 2]) as tf.Tensor2D, d1, c1, d2, c2, y);
  });
}

async function main(): Promise<void> {
  await tf.setBackend('wasm');
  await tf.ready();
  const nativeBackpropInput = tf.getKernel('Conv2DBackpropInput', 'wasm')?.kernelFunc;
  registerWasmGradientKernels();
  console.log(
    `wasm backend (SIMD ${tf.env().getBool('WASM_HAS_SIMD_SUPPORT')}, threads ${tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT')}), ` +
      `batch ${BATCH}, median of ${STEPS} runs after a warm-up`,
  );
  resnetBlock();
  mobilenetBlock();

  // Each backprop kernel alone, at the block's shapes.
  const dyFor = (shape: number[]): tf.Tensor => tf.randomNormal(shape, 0, 1, 'float32', 3);
  const kernelCases: Array<[string, string, Record<string, tf.Tensor>, Record<string, unknown>]> = [];
  const conv = (k: number, ci: number, co: number, s: number): void => {
    const xin = tf.randomNormal([BATCH, 7 * s, 7 * s, ci], 0, 1, 'float32', 4);
    const w = tf.randomNormal([k, k, ci, co], 0, 1, 'float32', 5);
    const dy = dyFor([BATCH, 7, 7, co]);
    const common = { strides: s, pad: 'same', dataFormat: 'NHWC' };
    const tag = `conv ${k}x${k} ${ci}->${co} s${s}`;
    kernelCases.push([`${tag} dW`, 'Conv2DBackpropFilter', { x: xin, dy }, { ...common, filterShape: w.shape }]);
    kernelCases.push([`${tag} dx`, 'Conv2DBackpropInput', { dy, filter: w }, { ...common, inputShape: xin.shape }]);
  };
  conv(1, 2048, 512, 1);
  conv(3, 512, 512, 1);
  conv(1, 512, 2048, 1);
  conv(1, 1024, 2048, 2);
  for (const [c, s] of [[960, 1], [576, 2]] as const) {
    const xin = tf.randomNormal([BATCH, 7 * s, 7 * s, c], 0, 1, 'float32', 6);
    const w = tf.randomNormal([3, 3, c, 1], 0, 1, 'float32', 7);
    const dy = dyFor([BATCH, 7, 7, c]);
    const common = { strides: s, pad: 'same', dilations: 1 };
    const tag = `depthwise 3x3 ${c} s${s}`;
    kernelCases.push([`${tag} dW`, 'DepthwiseConv2dNativeBackpropFilter', { x: xin, dy }, { ...common, filterShape: w.shape }]);
    kernelCases.push([`${tag} dx`, 'DepthwiseConv2dNativeBackpropInput', { dy, filter: w }, { ...common, inputShape: xin.shape }]);
  }
  console.log('single kernels, median of 3:');
  for (const [label, kernel, inputs, attrs] of kernelCases) {
    const ms = timeMs(3, () => tf.tidy(() => void (tf.engine().runKernel(kernel, inputs, attrs as tf.NamedAttrMap) as tf.Tensor).dataSync()));
    console.log(`  ${label.padEnd(34)} ${fmt(ms)}`);
  }
  if (nativeBackpropInput !== undefined) {
    // For comparison: the backend's own scalar-loop Conv2DBackpropInput on the 3x3 layer.
    const [, , inputs, attrs] = kernelCases[3]!;
    tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
    tf.registerKernel({ kernelName: 'Conv2DBackpropInput', backendName: 'wasm', kernelFunc: nativeBackpropInput });
    const ms = timeMs(1, () => tf.tidy(() => void (tf.engine().runKernel('Conv2DBackpropInput', inputs, attrs as tf.NamedAttrMap) as tf.Tensor).dataSync()));
    console.log(`  (tfjs-backend-wasm's own conv 3x3 512->512 dx: ${fmt(ms)})`);
  }
}

await main();
