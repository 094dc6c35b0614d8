/**
 * POST /v1/classify: admission to the inference queue (or 503 at once), the body (multipart files
 * or one raw image), magic-byte check and decode of every image (sharp, with its pixel limit), one
 * batched inference run, JSON. The whole request is bounded by the configured timeout (504).
 */
import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { decide, type Prediction } from '../infer/prediction.js';
import type { ServeConfig } from './config.js';
import { decodeUploads, type Upload } from './decode.js';
import { ApiError, toApiError } from './errors.js';
import type { LoadedModel } from './models.js';
import type { InferenceEngine } from './pool.js';
import { QueueClosedError, QueueFullError, type InferenceQueue, type Ticket } from './queue.js';
import type { ServiceMetrics } from './service-metrics.js';

/** One image's entry in the answer of POST /v1/classify: its Prediction (figures rounded to 6 decimals), file name and time. */
export interface ClassifyResult extends Prediction {
  /** The multipart file name; null for a raw body or a part without one. */
  filename: string | null;
  /** Milliseconds: the image's decode plus its share of the batch's inference. */
  ms: number;
}

/** The answer of POST /v1/classify. */
export interface ClassifyResponse {
  model: { id: string; version: string };
  results: ClassifyResult[];
  /** Milliseconds from the request's arrival to the answer. */
  ms: number;
}

/** Per-request bookkeeping shared with the server's hooks (timer, queue ticket, error code). */
export interface RequestState {
  ticket?: Ticket;
  abort: AbortController;
  timer?: NodeJS.Timeout;
  started: number;
  errorCode?: string;
}

export interface ClassifyContext {
  cfg: ServeConfig;
  model: LoadedModel;
  engine: InferenceEngine;
  queue: InferenceQueue;
  metrics: ServiceMetrics;
  state: WeakMap<FastifyRequest, RequestState>;
  /** For tests: awaited inside the inference slot, before the model runs. */
  testHooks?: { beforeInference?: () => Promise<void> } | undefined;
}

/** Rejects with the signal's reason when it aborts first. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

const round = (x: number, d: number): number => Number(x.toFixed(d));

export async function registerClassifyRoute(app: FastifyInstance, ctx: ClassifyContext): Promise<void> {
  const { cfg, model, engine, queue, metrics, state, testHooks } = ctx;
  const pre = model.info.preprocessing;
  const classes = model.info.classes;
  await app.register(async (scope) => {
    // Only this route takes a body: multipart, or anything else as raw bytes (the type is sniffed).
    scope.removeAllContentTypeParsers();
    await scope.register(multipart, {
      limits: { fileSize: cfg.maxFileBytes, files: cfg.maxFiles, fields: 16, fieldSize: 4096, parts: cfg.maxFiles + 16, headerPairs: 64 },
    });
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: cfg.maxFileBytes }, (_req, body, done) => done(null, body));

    scope.post<{ Querystring: { minConfidence?: number; thresholds?: boolean } }>(
      '/v1/classify',
      {
        schema: {
          querystring: {
            type: 'object',
            properties: { minConfidence: { type: 'number', minimum: 0, maximum: 1 }, thresholds: { type: 'boolean' } },
            additionalProperties: false,
          },
        },
        onRequest: async (req, reply) => {
          const len = Number(req.headers['content-length']);
          const multi = /^multipart\/form-data/i.test(req.headers['content-type'] ?? '');
          const limit = multi ? cfg.maxBodyBytes : cfg.maxFileBytes;
          if (Number.isFinite(len) && len > limit) throw toApiError({ code: 'FST_ERR_CTP_BODY_TOO_LARGE' }, { ...cfg.limits, maxBodyBytes: limit });
          const st: RequestState = { abort: new AbortController(), started: performance.now() };
          state.set(req, st);
          try {
            st.ticket = queue.admit();
          } catch (err) {
            if (err instanceof QueueFullError) {
              metrics.rejected.inc();
              throw new ApiError(503, 'busy', 'server busy: the inference queue is full; retry later', undefined, { 'retry-after': String(err.retryAfterSeconds) });
            }
            if (err instanceof QueueClosedError) throw new ApiError(503, 'shutting_down', 'server is shutting down');
            throw err;
          }
          st.timer = setTimeout(() => st.abort.abort(new ApiError(504, 'timeout', `request took longer than ${cfg.timeoutMs} ms`)), cfg.timeoutMs);
          // A client that goes away stops waiting for a slot (a running inference finishes regardless).
          reply.raw.once('close', () => {
            if (!reply.raw.writableFinished) st.abort.abort(new ApiError(499, 'client_closed', 'client closed the connection'));
            clearTimeout(st.timer);
            st.ticket?.release();
          });
        },
      },
      async (req, reply) => {
        const st = state.get(req)!;
        const minConfidence = req.query.minConfidence ?? 0;
        // The model's per-class thresholds: the server's default (--no-thresholds), or the request's.
        const thresholds = (req.query.thresholds ?? cfg.thresholds) ? model.info.thresholds : {};
        try {
          const uploads = await untilAborted(readUploads(req, cfg.maxBodyBytes), st.abort.signal);
          const decoded = await untilAborted(decodeUploads(uploads, pre, cfg.maxPixels), st.abort.signal);
          let inferMs = 0;
          const probs = await untilAborted(
            st.ticket!.run(async () => {
              await testHooks?.beforeInference?.();
              const t0 = performance.now();
              const p = await engine.run(decoded.input, decoded.count);
              inferMs = performance.now() - t0;
              metrics.inferSeconds.observe(inferMs / 1000);
              return p;
            }, st.abort.signal),
            st.abort.signal,
          );
          const k = classes.length;
          const results = uploads.map((u, i): ClassifyResult => {
            const d = decide(classes, probs.subarray(i * k, (i + 1) * k), minConfidence, thresholds);
            metrics.images.inc({ label: d.label });
            return {
              filename: u.filename,
              label: d.label,
              predicted: d.predicted,
              confidence: round(d.confidence, 6),
              probabilities: Object.fromEntries(Object.entries(d.probabilities).map(([c, p]) => [c, round(p, 6)])),
              ms: round(decoded.decodeMs[i]! + inferMs / uploads.length, 1),
            };
          });
          const body: ClassifyResponse = { model: { id: model.id, version: model.version }, results, ms: round(performance.now() - st.started, 1) };
          return reply.send(body);
        } catch (err) {
          if (err instanceof ApiError && err.code === 'timeout') metrics.timeouts.inc();
          throw err;
        } finally {
          // Now, not in onResponse: a client that gets its answer may send its next request
          // before onResponse runs, and must find the place free.
          st.ticket?.release();
        }
      },
    );
  });
}

/** Reads the request's images: multipart file parts, or the raw body as one image. */
async function readUploads(req: FastifyRequest, maxBodyBytes: number): Promise<Upload[]> {
  const uploads: Upload[] = [];
  if (req.isMultipart()) {
    let total = 0;
    for await (const part of req.parts()) {
      if (part.type !== 'file') continue; // other fields are ignored
      const bytes = await part.toBuffer();
      total += bytes.length;
      if (total > maxBodyBytes) throw toApiError({ code: 'FST_ERR_CTP_BODY_TOO_LARGE' }, { maxBodyBytes, maxFileBytes: 0, maxFiles: 0 });
      const n = uploads.length + 1;
      const filename = part.filename !== undefined && part.filename !== '' ? part.filename : null;
      uploads.push({ filename, label: filename ?? `file #${n}`, bytes });
    }
    if (uploads.length === 0) throw new ApiError(400, 'no_image', 'the multipart body holds no file: send images as file fields (e.g. -F file=@photo.jpg)');
    return uploads;
  }
  const body = req.body;
  if (!Buffer.isBuffer(body) || body.length === 0) {
    throw new ApiError(400, 'no_image', 'no image in the request: send it as the raw body (--data-binary @photo.jpg) or as multipart file fields');
  }
  return [{ filename: null, label: 'body', bytes: body }];
}
