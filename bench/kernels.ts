/**
 * Speed of one training step on the wasm backend for the workload the trainer targets: ResNet50's
 * last bottleneck block (1x1 2048->512, 3x3 512->512, 1x1 512->2048, residual add; 7x7 input) +
 * global average pooling + dense 2048->256->3, batch 8. Also times each conv backprop kernel alone.
 *
 *   node --import tsx bench/kernels.ts [steps]
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmGradientKernels } from '../src/train/kernels/wasm-gradients.js';

const BATCH = 8;
const STEPS = Number(process.argv[2] ?? 5);

function timeMs(steps: number, fn: () => void): number {
  fn(); // warm-up: XNNPACK operator creation, heap growth
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) fn();
  return (performance.now() - t0) / steps;
}

const he = (shape: number[], fanIn: number): tf.Variable =>
  tf.variable(tf.mul(tf.randomNormal(shape, 0, 1, 'float32', 1), Math.sqrt(2 / fanIn)), true);

async function main(): Promise<void> {
  await tf.setBackend('wasm');
  await tf.ready();
  const nativeBackpropInput = tf.getKernel('Conv2DBackpropInput', 'wasm')?.kernelFunc;
  registerWasmGradientKernels();

  const w1 = he([1, 1, 2048, 512], 2048);
  const b1 = tf.variable(tf.zeros([512]));
  const w2 = he([3, 3, 512, 512], 9 * 512);
  const b2 = tf.variable(tf.zeros([512]));
  const w3 = he([1, 1, 512, 2048], 512);
  const b3 = tf.variable(tf.zeros([2048]));
  const d1 = he([2048, 256], 2048);
  const c1 = tf.variable(tf.zeros([256]));
  const d2 = he([256, 3], 256);
  const c2 = tf.variable(tf.zeros([3]));
  const vars = [w1, b1, w2, b2, w3, b3, d1, c1, d2, c2];

  const x = tf.relu(tf.randomNormal([BATCH, 7, 7, 2048], 0, 1, 'float32', 2)) as tf.Tensor4D;
  const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32'), 3);

  const forward = (): tf.Scalar => {
    let h = tf.fused.conv2d({ x, filter: w1 as tf.Tensor4D, strides: 1, pad: 'valid', bias: b1, activation: 'relu' });
    h = tf.fused.conv2d({ x: h, filter: w2 as tf.Tensor4D, strides: 1, pad: 'same', bias: b2, activation: 'relu' });
    h = tf.fused.conv2d({ x: h, filter: w3 as tf.Tensor4D, strides: 1, pad: 'valid', bias: b3 });
    h = tf.relu(tf.add(h, x));
    const pooled = tf.mean(h, [1, 2]) as tf.Tensor2D;
    const z = tf.fused.matMul({ a: pooled, b: d1 as tf.Tensor2D, bias: c1, activation: 'relu' });
    const logits = tf.fused.matMul({ a: z, b: d2 as tf.Tensor2D, bias: c2 });
    return tf.neg(tf.mean(tf.sum(tf.mul(labels, tf.logSoftmax(logits)), 1)));
  };

  const lr = 1e-3;
  const trainStep = (): void => {
    tf.tidy(() => {
      const { grads, value } = tf.variableGrads(forward, vars);
      for (const v of vars) v.assign(tf.sub(v, tf.mul(grads[v.name]!, lr)));
      value.dataSync();
    });
  };
  const forwardOnly = (): void => {
    tf.tidy(() => forward().dataSync());
  };

  const before = tf.memory().numTensors;
  const stepMs = timeMs(STEPS, trainStep);
  const fwdMs = timeMs(STEPS, forwardOnly);
  const leaked = tf.memory().numTensors - before;

  console.log(`wasm (SIMD ${tf.env().getBool('WASM_HAS_SIMD_SUPPORT')}, threads ${tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT')}), batch ${BATCH}, ${STEPS} steps`);
  console.log(`ResNet50 last bottleneck + GAP + dense 2048->256->3:`);
  console.log(`  training step (forward + backward + SGD update): ${stepMs.toFixed(1)} ms`);
  console.log(`  forward only:                                    ${fwdMs.toFixed(1)} ms`);
  console.log(`  tensors leaked per run: ${leaked}`);

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
  console.log('single kernels (ms):');
  for (const [label, kernel, inputs, attrs] of kernelCases) {
    const ms = timeMs(3, () => tf.tidy(() => void (tf.engine().runKernel(kernel, inputs, attrs as tf.NamedAttrMap) as tf.Tensor).dataSync()));
    console.log(`  ${label.padEnd(36)} ${ms.toFixed(1)}`);
  }
  if (nativeBackpropInput !== undefined) {
    // For comparison: the backend's own scalar-loop Conv2DBackpropInput on the 3x3 layer.
    const [, , inputs, attrs] = kernelCases[3]!;
    tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
    tf.registerKernel({ kernelName: 'Conv2DBackpropInput', backendName: 'wasm', kernelFunc: nativeBackpropInput });
    const ms = timeMs(1, () => tf.tidy(() => void (tf.engine().runKernel('Conv2DBackpropInput', inputs, attrs as tf.NamedAttrMap) as tf.Tensor).dataSync()));
    console.log(`  (tfjs-backend-wasm's own conv 3x3 512->512 dx: ${ms.toFixed(1)})`);
  }
}

await main();
