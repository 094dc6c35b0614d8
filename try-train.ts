import { train } from './src/train/train.js';
import { env } from './src/env.js';
env.cacheDir = '/tmp/phoneside-cache';
const r = await train('../shared/datasets/phones', { backbone: process.argv[2] ?? 'mobilenet_v2', weights: process.argv[2] === 'resnet50' ? undefined : '../shared/weights/mobilenet_v2_0.35_224', limitPerClass: Number(process.argv[3] ?? 40), epochs: Number(process.argv[4] ?? 5), views: 2, out: '/tmp/run-try', topBlocks: process.argv[5] ? Number(process.argv[5]) : undefined });
console.log(r.evaluation.accuracy, r.timings, r.nearDuplicates.length);
