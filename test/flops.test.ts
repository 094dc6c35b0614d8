/** countMacs: hand-counted on a tiny graph, and MobileNetV2-0.35 against its published MAC count. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countMacs } from '../src/backbones/flops.js';
import type { LayerGraph, WeightTensor } from '../src/backbones/graph.js';
import { loadBackbone } from '../src/backbones/load.js';
import { getBackbone } from '../src/backbones/registry.js';
import { envWithMobilenet } from './helpers/infer-fixture.js';
import { haveWeights } from './helpers/paths.js';

const none: Record<string, WeightTensor> = {};

test('counts conv, depthwise and dense MACs with strides and padding', () => {
  const graph: LayerGraph = {
    input: 'in',
    output: 'fc',
    nodes: [
      { name: 'in', op: { kind: 'input', shape: [8, 8, 3] }, inputs: [], weights: none },
      // same, stride 1: 8x8x4 outputs, each 3*3*3 MACs = 6912
      { name: 'conv', op: { kind: 'conv2d', filters: 4, kernel: [3, 3], strides: [1, 1], dilation: [1, 1], padding: 'same', useBias: true, activation: 'relu' }, inputs: ['in'], weights: none },
      { name: 'bn', op: { kind: 'batchNorm', epsilon: 1e-3 }, inputs: ['conv'], weights: none },
      // valid 3x3 stride 2 on 8x8 -> 3x3, 4 channels x multiplier 2 = 8: 3*3*8*9 = 648
      { name: 'dw', op: { kind: 'depthwiseConv2d', kernel: [3, 3], strides: [2, 2], dilation: [1, 1], padding: 'valid', depthMultiplier: 2, useBias: false, activation: 'linear' }, inputs: ['bn'], weights: none },
      { name: 'gap', op: { kind: 'globalAvgPool' }, inputs: ['dw'], weights: none },
      // 8 -> 5: 40
      { name: 'fc', op: { kind: 'dense', units: 5, useBias: true, activation: 'linear' }, inputs: ['gap'], weights: none },
    ],
  };
  const c = countMacs(graph);
  assert.deepEqual(c.byKind, { conv2d: 6912, depthwiseConv2d: 648, dense: 40 });
  assert.equal(c.macs, 7600);
  assert.equal(c.flops, 15200);
});

test('MobileNetV2-0.35 at 224 (no top): ~59M MACs as published, less the 1.28M of the ImageNet classifier', { skip: !haveWeights && 'weights missing' }, async () => {
  const bb = await loadBackbone(getBackbone('mobilenet_v2_0.35'), { env: envWithMobilenet() });
  const { macs, byKind } = countMacs(bb.graph);
  assert.equal(byKind.dense, 0);
  assert.ok(macs > 55e6 && macs < 59e6, `MACs ${macs}`);
});
