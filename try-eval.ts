import { evaluate } from './src/eval/evaluate.js';
import { formatClassificationReport, formatConfusionMatrix } from './src/eval/report.js';
const r = await evaluate('/tmp/run-try', '../shared/datasets/phones', { subset: 'val' });
console.log(formatConfusionMatrix(r.metrics)); console.log(formatClassificationReport(r.metrics, 4)); console.log(r.seconds);
