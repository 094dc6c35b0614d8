/** The options of `phoneside serve` and their defaults, checked once at start-up. */
import { availableParallelism } from 'node:os';
import { defaultConcurrency } from './defaults.js';
import type { UploadLimits } from './errors.js';

export interface ServeOptions {
  /** The model `/v1/classify` runs: shipped name, bundle/run folder or .onnx (default `resnet50`). */
  model?: string;
  /** The model handed to the browser at /models/device.onnx (default `mobilenet_v2`); false = none. */
  deviceModel?: string | false;
  /** Backbone weights folder for `model` (else env PHONESIDE_WEIGHTS_<ID> / cache / download). */
  weights?: string;
  /** Backbone weights folder for `deviceModel`. */
  deviceWeights?: string;
  /**
   * Test-time augmentation (horizontal flip, logits averaged, inside the ONNX graph) for `model`:
   * true = on even if its manifest lacks it, false = off; default: as the model says.
   */
  tta?: boolean;
  /** The same for `deviceModel` (the browser then runs the TTA graph). */
  deviceTta?: boolean;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Required on /v1/* when set (Authorization: Bearer KEY, or X-API-Key: KEY). */
  apiKey?: string;
  /** Inference worker threads, each with its own ONNX session (default: 1 per core, at most 4; 0 = in-process). */
  workers?: number;
  /** ONNX Runtime intra-op threads per worker (default: cores / workers). */
  threads?: number;
  /** Admitted requests allowed to wait beyond those running (default: 2 x cores). */
  queueSize?: number;
  /** Limit in ms from a classify request's arrival (upload included) to its answer (default 30000): 504 after it. */
  timeoutMs?: number;
  /** Images per request (default 16). */
  maxFiles?: number;
  /** Request body in bytes (default 64 MiB). */
  maxBodyBytes?: number;
  /** One image in bytes (default 20 MiB). */
  maxFileBytes?: number;
  /** Pixels per image, checked from the header before decoding (default 100 M). */
  maxPixels?: number;
  /**
   * Apply the models' own per-class minimum confidences (manifest `thresholds`): below it an image
   * is answered `uncertain` (default true). false = the raw top class, on /v1/classify (unless a
   * request asks `?thresholds=true`) and in the page's on-device mode (/models/device.json).
   */
  thresholds?: boolean;
  /** Use the assembled-ONNX cache under env.cacheDir (default true). */
  cache?: boolean;
  /** fastify's request log (pino, JSON lines on stdout); default false. */
  logger?: boolean;
  /** For tests: awaited inside the inference slot, before the model runs. */
  testHooks?: { beforeInference?: () => Promise<void> };
}

const MiB = 1048576;

/** ServeOptions with every default applied and every number checked. */
export interface ServeConfig {
  workers: number;
  threads: number;
  queueSize: number;
  timeoutMs: number;
  maxFiles: number;
  maxBodyBytes: number;
  maxFileBytes: number;
  maxPixels: number;
  /** Limits of a multipart request, and of a raw body (which is one image). */
  limits: UploadLimits;
  rawLimits: UploadLimits;
  apiKey: string | undefined;
  /** Whether the models' per-class thresholds apply by default (a request may say otherwise). */
  thresholds: boolean;
}

function positiveInt(name: string, v: number | undefined, dflt: number, min = 1): number {
  const x = v ?? dflt;
  if (!Number.isInteger(x) || x < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${x}`);
  return x;
}

export function resolveServeConfig(opts: ServeOptions): ServeConfig {
  const dflt = defaultConcurrency();
  const workers = positiveInt('workers', opts.workers, dflt.workers, 0);
  const threads = positiveInt('threads', opts.threads, workers === 0 ? availableParallelism() : Math.max(1, Math.floor(availableParallelism() / workers)));
  const queueSize = positiveInt('queueSize', opts.queueSize, dflt.queueSize, 0);
  const timeoutMs = positiveInt('timeoutMs', opts.timeoutMs, 30_000);
  const maxFiles = positiveInt('maxFiles', opts.maxFiles, 16);
  const maxBodyBytes = positiveInt('maxBodyBytes', opts.maxBodyBytes, 64 * MiB);
  const maxFileBytes = Math.min(positiveInt('maxFileBytes', opts.maxFileBytes, 20 * MiB), maxBodyBytes);
  const maxPixels = positiveInt('maxPixels', opts.maxPixels, 100_000_000);
  const limits = { maxBodyBytes, maxFileBytes, maxFiles };
  const rawLimits = { ...limits, maxBodyBytes: maxFileBytes }; // a raw body is one image
  const apiKey = opts.apiKey !== undefined && opts.apiKey !== '' ? opts.apiKey : undefined;
  return { workers, threads, queueSize, timeoutMs, maxFiles, maxBodyBytes, maxFileBytes, maxPixels, limits, rawLimits, apiKey, thresholds: opts.thresholds !== false };
}
