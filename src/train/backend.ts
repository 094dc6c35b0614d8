/** Selects the tfjs backend for training: wasm (SIMD) with our gradient kernels, or the pure-JS cpu one. */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmGradientKernels } from './kernels/wasm-gradients.js';

export type TrainingBackend = 'wasm' | 'cpu';

export async function initTrainingBackend(kind: TrainingBackend = 'wasm'): Promise<void> {
  if (kind === 'wasm') registerWasmGradientKernels();
  if (tf.getBackend() === kind) return;
  const ok = await tf.setBackend(kind);
  if (!ok) throw new Error(`could not initialise the tfjs '${kind}' backend`);
  await tf.ready();
}
