/**
 * POST /v1/classify: the body (multipart files or one raw image) is read first, then the request
 * is admitted to the inference queue (or answered 503 at once), so a slow upload never holds an
 * inference place; then magic-byte check and decode of every image (sharp, with its pixel limit),
 * one batched inference run, JSON.
 *
 * Time limits: the whole request is bounded by the configured timeout (504; 408 while the body is
 * still arriving), and a body that stalls for the upload idle time is answered 408 (the connection
 * is closed). A request whose client goes away is cancelled: what it has not started (decode,
 * inference) is skipped, and it keeps its queue place only while work it started is running.
 */
import type { IncomingMessage } from 'node:http';
import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { checkFiniteOutput } from '../infer/classifier.js';
import { decide, type Prediction } from '../infer/prediction.js';
import type { ServeConfig } from './config.js';
import { decodeUploads, type Upload } from './decode.js';
import { ApiError, bodyTooLarge } from './errors.js';
import type { LoadedModel } from './models.js';
import type { InferenceEngine } from './pool.js';
import { QueueClosedError, QueueFullError, type InferenceQueue, type Ticket } from './queue.js';
import { Gauge } from './metrics.js';
import type { AbandonStage, ServiceMetrics } from './service-metrics.js';

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
  /** Aborted on timeout (504 / 408), a stalled upload (408) or the client going away (499). */
  abort: AbortController;
  timer?: NodeJS.Timeout;
  started: number;
  errorCode?: string;
  /** Where the request is (its body arriving, decoding, waiting for a slot, in the slot, answered). */
  stage?: AbandonStage;
  /** Stops watching the upload for stalls. */
  stopWatch?: () => void;
  /** Bytes of its body received so far, counted against the bound on bodies still arriving. */
  uploadBytes?: number;
  /** Its response has closed (answered, or the client gone): nothing of it counts any more. */
  closed?: boolean;
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

/** Headers of an answer given before the body has all arrived: the rest of it is not waited for. */
const CLOSE = { connection: 'close' };

/**
 * Calls `onStall` when no byte of the request arrives for `idleMs` while its body is incomplete.
 * It watches the socket's byte count, so it covers multipart and raw bodies alike, whoever reads
 * them. Returns the function that stops watching. (No-op on a request without a real socket, as
 * with fastify's inject().)
 */
function watchUpload(raw: IncomingMessage, idleMs: number, onStall: () => void): () => void {
  const socket = raw.socket as { bytesRead?: unknown } | null;
  if (typeof socket?.bytesRead !== 'number') return () => undefined;
  let seen = socket.bytesRead;
  let lastByteAt = performance.now();
  const timer = setInterval(
    () => {
      if (raw.complete) return clearInterval(timer); // the whole body is in: the rest is our work
      const n = socket.bytesRead as number;
      const now = performance.now();
      if (n !== seen) {
        seen = n;
        lastByteAt = now;
      } else if (now - lastByteAt >= idleMs) {
        clearInterval(timer);
        onStall();
      }
    },
    Math.max(10, Math.min(1000, Math.floor(idleMs / 5))),
  );
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * A raw body, read up to `limit` bytes: rejects with 413 beyond it, with what `onBytes` returns
 * for a chunk (refused), with the signal's reason when it aborts first (timeout, stalled upload,
 * client gone), with 400 when the connection ends early.
 */
function readRawBody(
  stream: IncomingMessage,
  limit: number,
  tooLarge: () => ApiError,
  onBytes: (n: number) => ApiError | undefined,
  signal: AbortSignal | undefined,
): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (err: unknown, body?: Buffer): void => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onEarlyEnd);
      stream.off('close', onEarlyEnd);
      signal?.removeEventListener('abort', onAbort);
      if (body !== undefined) resolve(body);
      else reject(err);
    };
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > limit) return finish(tooLarge());
      const refused = onBytes(c.length);
      if (refused) finish(refused);
      else chunks.push(c);
    };
    const onEnd = (): void => finish(undefined, Buffer.concat(chunks, size));
    const onEarlyEnd = (): void => finish(new ApiError(400, 'incomplete_body', 'the connection ended before the request body was complete'));
    const onAbort = (): void => finish(signal!.reason);
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onEarlyEnd);
    stream.once('close', onEarlyEnd);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export async function registerClassifyRoute(app: FastifyInstance, ctx: ClassifyContext): Promise<void> {
  const { cfg, model, engine, queue, metrics, state, testHooks } = ctx;
  const pre = model.info.preprocessing;
  const classes = model.info.classes;
  /**
   * Bytes of request bodies still arriving (requests not admitted yet), all together: bounded
   * like the admitted requests' (queue places x the body limit), so many fast uploads at once
   * cannot fill the memory. A slow upload holds only what it has sent.
   */
  const receiving = { bytes: 0, limit: (queue.concurrency + queue.capacity) * cfg.maxBodyBytes };
  metrics.registry.add(
    new Gauge('phoneside_upload_bytes_receiving', `Bytes of classify request bodies still arriving, all requests together (at most ${receiving.limit}, then 503 busy).`, () => receiving.bytes),
  );
  await app.register(async (scope) => {
    // Only this route takes a body: multipart, or anything else as raw bytes (the type is sniffed).
    scope.removeAllContentTypeParsers();
    await scope.register(multipart, {
      limits: { fileSize: cfg.maxFileBytes, files: cfg.maxFiles, fields: 16, fieldSize: 4096, parts: cfg.maxFiles + 16, headerPairs: 64 },
    });
    // A raw body is read here, under the request's own time limits (a stalled one is answered 408).
    const rawTooLarge = (): ApiError => bodyTooLarge(cfg.rawLimits.maxBodyBytes);
    scope.addContentTypeParser('*', (req, payload, done) => {
      const st = state.get(req);
      readRawBody(payload, cfg.maxFileBytes, rawTooLarge, (n) => receive(st, n), st?.abort.signal).then(
        (body) => done(null, body),
        (err: Error) => done(err, undefined),
      );
    });

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
          if (Number.isFinite(len) && len > limit) throw bodyTooLarge(limit);
          // A full queue answers 503 at once, before the body is read (it is checked again once the body is in).
          admission(() => queue.check());
          const st: RequestState = { abort: new AbortController(), started: performance.now(), stage: 'upload' };
          state.set(req, st);
          st.timer = setTimeout(() => {
            st.abort.abort(
              st.stage === 'upload'
                ? new ApiError(408, 'request_timeout', `the request body did not arrive within ${cfg.timeoutMs} ms`, undefined, CLOSE)
                : new ApiError(504, 'timeout', `request took longer than ${cfg.timeoutMs} ms`),
            );
          }, cfg.timeoutMs);
          st.stopWatch = watchUpload(req.raw, cfg.uploadIdleMs, () => {
            st.abort.abort(new ApiError(408, 'request_timeout', `the upload stalled: no data for ${cfg.uploadIdleMs} ms`, undefined, CLOSE));
          });
          // A client that goes away cancels its request: what has not started is skipped, and its
          // queue place is freed once the work it started (a decode, an inference) has ended.
          reply.raw.once('close', () => {
            clearTimeout(st.timer);
            st.stopWatch?.();
            st.closed = true;
            received(st);
            if (!reply.raw.writableFinished) {
              const stage = st.stage ?? 'upload';
              metrics.abandoned.inc({ stage });
              req.log.info({ stage }, 'client closed the connection before the answer; request cancelled');
              st.abort.abort(new ApiError(499, 'client_closed', 'client closed the connection'));
            }
            st.ticket?.release();
          });
        },
      },
      async (req, reply) => {
        const st = state.get(req)!;
        const minConfidence = req.query.minConfidence ?? 0;
        // The model's per-class thresholds: the server's default (--no-thresholds), or the request's.
        const thresholds = (req.query.thresholds ?? cfg.thresholds) ? model.info.thresholds : {};
        const { signal } = st.abort;
        try {
          const uploads = await untilAborted(
            readUploads(req, cfg.maxBodyBytes, (n) => receive(st, n), (refused) => st.abort.abort(refused)),
            signal,
          );
          // The body is in: from here on the work is the server's, and takes a place in the queue.
          st.stopWatch?.();
          received(st);
          signal.throwIfAborted();
          st.stage = 'decode';
          const ticket = admission(() => queue.admit());
          st.ticket = ticket;
          const decoded = await untilAborted(ticket.hold(() => decodeUploads(uploads, pre, cfg.maxPixels)), signal);
          st.stage = 'queued';
          let inferMs = 0;
          const probs = await untilAborted(
            ticket.run(async () => {
              st.stage = 'inference';
              await testHooks?.beforeInference?.();
              // Its client gone or its time up while it waited: the inference is skipped.
              signal.throwIfAborted();
              const t0 = performance.now();
              const p = await engine.run(decoded.input, decoded.count);
              inferMs = performance.now() - t0;
              try {
                // A broken model answers NaN: never turn that into a label.
                checkFiniteOutput(p, decoded.count, classes.length, model.path);
              } catch (err) {
                throw new ApiError(500, 'model_output_not_finite', err instanceof Error ? err.message : String(err));
              }
              metrics.inferSeconds.observe(inferMs / 1000);
              return p;
            }, signal),
            signal,
          );
          st.stage = 'answer';
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
          st.stopWatch?.();
          received(st);
          // Now, not in onResponse: a client that gets its answer may send its next request
          // before onResponse runs, and must find the place free.
          st.ticket?.release();
        }
      },
    );
  });

  /** Counts `n` more bytes of `st`'s body; a 503 when that would pass the bound. */
  function receive(st: RequestState | undefined, n: number): ApiError | undefined {
    if (st === undefined || st.closed === true) return undefined;
    if (receiving.bytes + n > receiving.limit) {
      metrics.rejected.inc();
      return new ApiError(503, 'busy', 'server busy: too many uploads in progress; retry later', undefined, { 'retry-after': String(queue.retryAfterSeconds()), ...CLOSE });
    }
    receiving.bytes += n;
    st.uploadBytes = (st.uploadBytes ?? 0) + n;
    return undefined;
  }
  /** `st`'s body no longer counts as arriving (it is in, or the request is over). Idempotent. */
  function received(st: RequestState): void {
    receiving.bytes -= st.uploadBytes ?? 0;
    st.uploadBytes = 0;
  }

  /** Runs queue.admit() or queue.check(): a full or closed queue -> 503. */
  function admission<T>(f: () => T): T {
    try {
      return f();
    } catch (err) {
      if (err instanceof QueueFullError) {
        metrics.rejected.inc();
        throw new ApiError(503, 'busy', 'server busy: the inference queue is full; retry later', undefined, { 'retry-after': String(err.retryAfterSeconds) });
      }
      if (err instanceof QueueClosedError) throw new ApiError(503, 'shutting_down', 'server is shutting down');
      throw err;
    }
  }
}

/**
 * Reads the request's images: multipart file parts, or the raw body as one image (read by the
 * content-type parser). Each chunk of a multipart body is passed to `onBytes`; when that refuses
 * one, `refuse` is called with why (once) and the reading is left to be abandoned.
 */
async function readUploads(req: FastifyRequest, maxBodyBytes: number, onBytes: (n: number) => ApiError | undefined, refuse: (e: ApiError) => void): Promise<Upload[]> {
  const uploads: Upload[] = [];
  if (req.isMultipart()) {
    let total = 0;
    const onData = (c: Buffer): void => {
      const refused = onBytes(c.length);
      if (refused) {
        req.raw.off('data', onData);
        refuse(refused);
      }
    };
    // Attached in the same tick as the parser's own reader (req.parts() starts it): no chunk is missed.
    req.raw.on('data', onData);
    try {
      for await (const part of req.parts()) {
        if (part.type !== 'file') continue; // other fields are ignored
        const bytes = await part.toBuffer();
        total += bytes.length;
        if (total > maxBodyBytes) throw bodyTooLarge(maxBodyBytes);
        const n = uploads.length + 1;
        const filename = part.filename !== undefined && part.filename !== '' ? part.filename : null;
        uploads.push({ filename, label: filename ?? `file #${n}`, bytes });
      }
    } finally {
      req.raw.off('data', onData);
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
