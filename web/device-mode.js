// @ts-check
/**
 * "On this device": the page runs the server's on-device model (an ONNX file) itself with
 * onnxruntime-web, so no image leaves the browser. onnxruntime-web is imported only when this
 * mode is first used, from phoneside's own /ort/ folder: the WebGPU build when the browser
 * offers a GPU adapter, else the (smaller) wasm-only build.
 */
import { preprocess } from './preprocess.js';
import { checkPreprocessing } from './resize.js';
import { blendHeat, fillOccluded, occlusionMap, occlusionPlan } from './heatmap.js';

/** @typedef {import('./resize.js').Preprocessing} Preprocessing */

/**
 * What GET models/device.json answers.
 * @typedef {object} DeviceModelInfo
 * @property {string} id
 * @property {string} version
 * @property {string[]} classes
 * @property {Preprocessing} preprocessing
 * @property {Record<string, number>} thresholds
 * @property {number} [temperature]
 * @property {string} onnx  URL of the ONNX file
 * @property {number} [bytes]
 * @property {'fp32' | 'int8'} [precision]  'int8': a quantized graph, run on wasm
 */

/**
 * @typedef {object} DeviceModel
 * @property {DeviceModelInfo} info
 * @property {'webgpu' | 'wasm'} backend
 * @property {number} threads  wasm threads (1 unless the page is cross-origin isolated)
 * @property {number} loadMs  fetching onnxruntime-web and the model, and creating the session
 * @property {(input: Float32Array) => Promise<Float32Array>} run
 */

/**
 * One image's answer: phoneside's Prediction (src/infer/prediction.ts: label — a class or
 * 'uncertain' —, predicted — the most probable class —, confidence, probabilities), the same
 * fields as Classifier.classify(), `phoneside predict` and POST /v1/classify give, plus timings:
 * `ms` decoding + preprocessing + inference, `inferenceMs` inference alone.
 * @typedef {import('../src/infer/prediction.js').Prediction & { ms: number, inferenceMs?: number }} Prediction
 */

export const UNCERTAIN = 'uncertain';

/** Base URL of the onnxruntime-web files, next to this module (works under a path prefix too). */
const ORT_BASE = new URL('./ort/', import.meta.url).href;

/** @param {string} url */
async function fetchJson(url) {
  const res = await fetch(url, { headers: { accept: 'application/json' } });
  if (!res.ok) throw new Error(res.status === 404 ? 'this server offers no on-device model' : `${url}: HTTP ${res.status}`);
  return res.json();
}

/**
 * Checks models/device.json; a clear error when it is not what this page understands.
 * @param {unknown} raw
 * @returns {DeviceModelInfo}
 */
export function checkDeviceInfo(raw) {
  const o = /** @type {Record<string, unknown>} */ (raw ?? {});
  if (typeof o.id !== 'string' || typeof o.version !== 'string') throw new Error('device model: id and version missing');
  if (!Array.isArray(o.classes) || o.classes.length < 2 || !o.classes.every((c) => typeof c === 'string')) throw new Error('device model: classes missing');
  if (typeof o.onnx !== 'string') throw new Error('device model: onnx URL missing');
  const thresholds = /** @type {Record<string, number>} */ (o.thresholds && typeof o.thresholds === 'object' ? o.thresholds : {});
  return { ...(/** @type {DeviceModelInfo} */ (o)), preprocessing: checkPreprocessing(o.preprocessing), thresholds };
}

/** Whether this browser can give onnxruntime-web a WebGPU adapter. */
async function hasWebGpu() {
  const gpu = /** @type {{ requestAdapter(): Promise<unknown> } | undefined} */ (/** @type {any} */ (navigator).gpu);
  if (!gpu) return false;
  try {
    return (await gpu.requestAdapter()) != null;
  } catch {
    return false;
  }
}

/**
 * @param {'webgpu' | 'wasm'} backend
 * @returns {Promise<any>} the onnxruntime-web module
 */
async function importOrt(backend) {
  // The /ort/ files are served by phoneside from onnxruntime-web's dist/ (src/web/assets.ts).
  const ort = await (backend === 'webgpu'
    ? // @ts-expect-error a served URL, not a file next to this one
      import('./ort/ort.webgpu.min.mjs')
    : // @ts-expect-error a served URL, not a file next to this one
      import('./ort/ort.wasm.min.mjs'));
  // Every file onnxruntime-web loads comes from phoneside itself.
  ort.env.wasm.wasmPaths = ORT_BASE;
  return ort;
}

/**
 * Fetches the model and starts onnxruntime-web. `prefer` forces a backend ('wasm' or 'webgpu');
 * by default WebGPU is used when available, falling back to wasm if it fails.
 * @param {{ prefer?: 'webgpu' | 'wasm' | null, onStatus?: (text: string) => void }} [opts]
 * @returns {Promise<DeviceModel>}
 */
export async function loadDeviceModel(opts = {}) {
  const say = opts.onStatus ?? (() => {});
  const t0 = performance.now();
  say('Fetching the model description…');
  const info = checkDeviceInfo(await fetchJson(new URL('models/device.json', document.baseURI).href));
  const modelUrl = new URL(info.onnx, document.baseURI).href;
  const modelBytes = fetch(modelUrl).then(async (res) => {
    if (!res.ok) throw new Error(`the model file answered HTTP ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  });
  modelBytes.catch(() => {}); // awaited below; avoid an unhandled rejection meanwhile
  // An int8 graph is for CPUs: WebGPU has no integer kernels for it and would hand most of it back.
  const wanted = opts.prefer ?? (info.precision !== 'int8' && (await hasWebGpu()) ? 'webgpu' : 'wasm');
  /** @type {'webgpu' | 'wasm'} */
  let backend = wanted;
  say(`Loading ONNX Runtime (${backend}) and the model (${info.precision === 'int8' ? 'int8, ' : ''}${info.bytes ? (info.bytes / 1e6).toFixed(1) + ' MB' : 'ONNX'})…`);
  let ort = await importOrt(backend);
  const bytes = await modelBytes;
  let session;
  try {
    session = await ort.InferenceSession.create(bytes, { executionProviders: [backend], graphOptimizationLevel: 'all' });
  } catch (err) {
    if (backend !== 'webgpu' || opts.prefer === 'webgpu') throw err;
    // A GPU adapter that cannot run the model: the wasm build always can.
    backend = 'wasm';
    say('WebGPU failed; loading the wasm build instead…');
    ort = await importOrt(backend);
    session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  }
  const size = info.preprocessing.size;
  const inputName = session.inputNames.includes('input') ? 'input' : session.inputNames[0];
  const outputName = session.outputNames.includes('output') ? 'output' : session.outputNames[0];
  // One inference at a time: runs on one session must not overlap.
  /** @type {Promise<unknown>} */
  let queue = Promise.resolve();
  /** @param {Float32Array} input */
  const run = (input) => {
    const job = queue.then(async () => {
      const feeds = { [inputName]: new ort.Tensor('float32', input, [1, 3, size, size]) };
      const out = await session.run(feeds);
      const data = /** @type {Float32Array} */ (out[outputName].data);
      if (data.length !== info.classes.length) throw new Error(`the model gave ${data.length} values for ${info.classes.length} classes`);
      return Float32Array.from(data);
    });
    queue = job.catch(() => {});
    return job;
  };
  return { info, backend, threads: Number(ort.env.wasm.numThreads) || 1, loadMs: performance.now() - t0, run };
}

/**
 * The Prediction of a probability vector: the top class, or 'uncertain' below its threshold
 * (the same rule and fields as decide() in src/infer/prediction.ts).
 * @param {string[]} classes
 * @param {ArrayLike<number>} probs
 * @param {Record<string, number>} thresholds
 */
export function decide(classes, probs, thresholds) {
  let best = 0;
  for (let i = 1; i < classes.length; i++) if (probs[i] > probs[best]) best = i;
  const predicted = classes[best];
  const confidence = probs[best];
  const needed = thresholds[predicted] ?? 0;
  /** @type {Record<string, number>} */
  const probabilities = {};
  classes.forEach((c, i) => (probabilities[c] = probs[i]));
  return { label: confidence < needed ? UNCERTAIN : predicted, predicted, confidence, probabilities };
}

/**
 * Classifies one file in the browser.
 * @param {DeviceModel} model
 * @param {Blob} file
 * @returns {Promise<Prediction>}
 */
export async function classifyOnDevice(model, file) {
  const t0 = performance.now();
  const input = await preprocess(file, model.info.preprocessing);
  const t1 = performance.now();
  const probs = await model.run(input);
  const t2 = performance.now();
  return { ...decide(model.info.classes, probs, model.info.thresholds), ms: t2 - t0, inferenceMs: t2 - t1 };
}

// "Show why": occlusion sensitivity computed here, with the device session (heatmap.js holds the
// arithmetic, shared with Node's src/explain).

/**
 * The photo as the model saw it, from its input (normalisation undone), as RGBA bytes.
 * @param {Float32Array} input  one CHW image
 * @param {Preprocessing} pre
 */
export function inputToRgba(input, pre) {
  const n = pre.size * pre.size;
  const src = pre.channelOrder === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  const rgba = new Uint8Array(n * 4);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < n; i++) rgba[i * 4 + src[c]] = Math.min(255, Math.max(0, Math.round(input[c * n + i] * pre.std[c] + pre.mean[c])));
  }
  for (let i = 0; i < n; i++) rgba[i * 4 + 3] = 255;
  return rgba;
}

/**
 * The occlusion map of class `classIndex` for one preprocessed image, one square at a time through
 * `run` (the device session takes one image per run).
 * @param {(input: Float32Array) => Promise<ArrayLike<number>>} run
 * @param {Float32Array} input
 * @param {Preprocessing} pre
 * @param {number} classIndex
 * @param {number} baseline  the class's probability on the whole image
 * @param {(done: number, total: number) => void} [onProgress]
 */
export async function occlusionHeat(run, input, pre, classIndex, baseline, onProgress) {
  const plan = occlusionPlan(pre.size);
  const grey = [0, 1, 2].map((c) => (128 - pre.mean[c]) / pre.std[c]);
  const copy = new Float32Array(input.length);
  const drops = new Float32Array(plan.positions.length);
  for (let i = 0; i < plan.positions.length; i++) {
    fillOccluded(input, plan, grey, i, i + 1, copy);
    drops[i] = baseline - (await run(copy))[classIndex];
    onProgress?.(i + 1, plan.positions.length);
  }
  return occlusionMap(plan, drops);
}

/**
 * "Show why" for one file: the occlusion map of the predicted class, blended over the photo as
 * the model saw it. Nothing leaves the browser.
 * @param {DeviceModel} model
 * @param {Blob} file
 * @param {{ onProgress?: (done: number, total: number) => void }} [opts]
 * @returns {Promise<{ method: 'occlusion', class: string, size: number, map: Float32Array, rgba: Uint8Array, ms: number }>}
 */
export async function explainOnDevice(model, file, opts = {}) {
  const t0 = performance.now();
  const pre = model.info.preprocessing;
  const input = await preprocess(file, pre);
  const probs = await model.run(input);
  let best = 0;
  for (let i = 1; i < probs.length; i++) if (probs[i] > probs[best]) best = i;
  const map = await occlusionHeat(model.run, input, pre, best, probs[best], opts.onProgress);
  const rgba = blendHeat(inputToRgba(input, pre), map, pre.size, pre.size, 4);
  return { method: 'occlusion', class: model.info.classes[best], size: pre.size, map, rgba, ms: performance.now() - t0 };
}
