/** The options of `phoneside serve` and their defaults, checked once at start-up. */
import { availableParallelism } from 'node:os';
import { DEFAULT_MODEL } from '../infer/load.js';
import { SERVE, type ServeInput } from '../options/serve.js';
import { resolveOptions } from '../options/schema.js';
import { warnDeprecated } from '../util/deprecate.js';
import { defaultConcurrency } from './defaults.js';
import type { UploadLimits } from './errors.js';

/**
 * `startServer()` / `createServer()` options: the table in src/options/serve.ts (the same names as
 * `phoneside serve`'s flags, in camelCase; defaults and range checks come from there), plus what
 * is not a flag.
 */
export type ServeOptions = Omit<ServeInput, 'deviceModel'> & {
  /** The model the page runs in the browser (default mobilenet_v2); 'none' or false: none. */
  deviceModel?: string | false;
  /** Use the assembled-ONNX cache under env.cacheDir (default true). */
  cache?: boolean;
  /**
   * fastify's request log (pino, JSON lines on stdout); default false (the CLI turns it on unless
   * --quiet). `{ stream, level }`: JSON lines written to `stream` instead (level default 'info').
   */
  logger?: boolean | ServeLogger;
  /** For tests: awaited inside the inference slot, before the model runs. */
  testHooks?: { beforeInference?: () => Promise<void> };
  /** @deprecated for one release: `maxImageMb`. */
  maxFileBytes?: number;
  /** @deprecated for one release: `maxBodyMb`. */
  maxBodyBytes?: number;
};

/** Where the request log goes instead of stdout. */
export interface ServeLogger {
  stream: { write(line: string): void };
  level?: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
}

const MiB = 1048576;

/** ServeOptions with every default applied and every number checked. */
export interface ServeConfig {
  model: string;
  /** false: no on-device model. */
  deviceModel: string | false;
  host: string;
  port: number;
  workers: number;
  threads: number;
  queueSize: number;
  timeoutMs: number;
  /** Longest pause while a request body arrives (408 beyond it). */
  uploadIdleMs: number;
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

/** Checks `opts` against the serve table (OptionError names the option) and applies every default. */
export function resolveServeConfig(opts: ServeOptions): ServeConfig {
  const { deviceModel, cache: _c, logger: _l, testHooks: _t, maxFileBytes: oldImage, maxBodyBytes: oldBody, ...rest } = opts;
  if (oldImage !== undefined) warnDeprecated('the serve option maxFileBytes', 'maxImageMb');
  if (oldBody !== undefined) warnDeprecated('the serve option maxBodyBytes', 'maxBodyMb');
  const s = resolveOptions(SERVE.options, {
    ...(oldImage !== undefined ? { maxImageMb: oldImage / MiB } : {}),
    ...(oldBody !== undefined ? { maxBodyMb: oldBody / MiB } : {}),
    ...rest,
    ...(typeof deviceModel === 'string' ? { deviceModel } : {}),
  });
  const dflt = defaultConcurrency();
  const workers = s.workers ?? dflt.workers;
  const threads = s.threads ?? (workers === 0 ? availableParallelism() : Math.max(1, Math.floor(availableParallelism() / workers)));
  const maxBodyBytes = Math.floor(s.maxBodyMb * MiB);
  const maxFileBytes = Math.min(Math.floor(s.maxImageMb * MiB), maxBodyBytes);
  const limits = { maxBodyBytes, maxFileBytes, maxFiles: s.maxFiles };
  const rawLimits = { ...limits, maxBodyBytes: maxFileBytes }; // a raw body is one image
  return {
    model: s.model ?? DEFAULT_MODEL,
    deviceModel: deviceModel === false || s.deviceModel === 'none' ? false : s.deviceModel,
    host: s.host,
    port: s.port,
    workers,
    threads,
    queueSize: s.queueSize ?? dflt.queueSize,
    timeoutMs: s.timeoutMs,
    uploadIdleMs: s.uploadIdleMs,
    maxFiles: s.maxFiles,
    maxBodyBytes,
    maxFileBytes,
    maxPixels: s.maxPixels,
    limits,
    rawLimits,
    apiKey: s.apiKey !== undefined && s.apiKey !== '' ? s.apiKey : undefined,
    thresholds: s.thresholds,
  };
}
