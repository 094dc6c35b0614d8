/**
 * `phoneside serve`: the HTTP service (fastify). `createServer` loads the models and returns the
 * app ready for `.inject()` or `.listen()`; `startServer` also listens.
 *
 * Request path of POST /v1/classify: API key (onRequest) -> size check on Content-Length ->
 * admission to the inference queue, or 503 at once -> body (multipart files or raw bytes) ->
 * magic-byte check and decode of every image (sharp, with its pixel limit) -> one batched run in an
 * inference worker -> JSON. The whole request is bounded by `timeoutMs` (504).
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import multipart from '@fastify/multipart';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { DEFAULT_MODEL } from '../infer/load.js';
import { decide } from '../infer/predict.js';
import { packageVersion } from '../infer/package.js';
import { webAssets } from '../web/assets.js';
import { decodeUploads, type Upload } from './decode.js';
import { DEFAULT_DEVICE_MODEL, defaultConcurrency } from './defaults.js';
import { ApiError, errorBody, toApiError } from './errors.js';
import { Counter, Gauge, Histogram, LATENCY_BUCKETS, Registry } from './metrics.js';
import { deviceJson, loadModel, onnxBytes, type DeviceModelJson, type LoadedModel } from './models.js';
import { openApiDocument, renderDocsHtml } from './openapi.js';
import { startEngine, type InferenceEngine } from './pool.js';
import { InferenceQueue, QueueClosedError, QueueFullError, type Ticket } from './queue.js';
import { fresh, registerAssets, SECURITY_HEADERS } from './static.js';

export interface ServeOptions {
  /** The model `/v1/classify` runs: shipped name, bundle/run folder or .onnx (default `resnet50`). */
  model?: string;
  /** The model handed to the browser at /models/device.onnx (default `mobilenet_v2`); false = none. */
  deviceModel?: string | false;
  /** Backbone weights folder for `model` (else env PHONESIDE_WEIGHTS_<ID> / cache / download). */
  weights?: string;
  /** Backbone weights folder for `deviceModel`. */
  deviceWeights?: string;
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
  /** Use the assembled-ONNX cache under env.cacheDir (default true). */
  cache?: boolean;
  /** fastify's request log (pino, JSON lines on stdout); default false. */
  logger?: boolean;
  /** For tests: awaited inside the inference slot, before the model runs. */
  testHooks?: { beforeInference?: () => Promise<void> };
}

const MiB = 1048576;

interface RequestState {
  ticket?: Ticket;
  abort: AbortController;
  timer?: NodeJS.Timeout;
  started: number;
  errorCode?: string;
}

type DeviceState = { kind: 'none' } | { kind: 'error'; message: string } | { kind: 'ready'; model: LoadedModel; bytes: Uint8Array; json: DeviceModelJson };

function positiveInt(name: string, v: number | undefined, dflt: number, min = 1): number {
  const x = v ?? dflt;
  if (!Number.isInteger(x) || x < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${x}`);
  return x;
}

/** Constant-time comparison of the presented key with the configured one. */
function keyMatches(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function presentedKey(req: FastifyRequest): string | undefined {
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && /^bearer\s+/i.test(auth)) return auth.replace(/^bearer\s+/i, '').trim();
  const x = req.headers['x-api-key'];
  return typeof x === 'string' ? x : undefined;
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

export async function createServer(opts: ServeOptions = {}): Promise<FastifyInstance> {
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
  const loadOpts = (weights: string | undefined): { weights?: string; cache?: boolean } => ({
    ...(weights ? { weights } : {}),
    ...(opts.cache === false ? { cache: false } : {}),
  });

  // Models first: a server that cannot load its model does not start.
  const model = await loadModel(opts.model ?? DEFAULT_MODEL, loadOpts(opts.weights));
  let device: DeviceState = { kind: 'none' };
  if (opts.deviceModel !== false) {
    try {
      const m = await loadModel(opts.deviceModel ?? DEFAULT_DEVICE_MODEL, loadOpts(opts.deviceWeights));
      const bytes = await onnxBytes(m);
      device = { kind: 'ready', model: m, bytes, json: deviceJson(m, bytes, '/models/device.onnx') };
    } catch (err) {
      // The API works without it; the page reports the message in its on-device mode.
      device = { kind: 'error', message: err instanceof Error ? err.message : String(err) };
    }
  }
  const pre = model.info.preprocessing;
  const classes = model.info.classes;
  const engine: InferenceEngine = await startEngine({ model: model.onnx, size: pre.size, classes: classes.length, workers, threads });
  try {
    const queue = new InferenceQueue({ concurrency: engine.parallelism, capacity: queueSize });
    let ready = true;
    let pageError: string | undefined;

    const app = Fastify({
      logger: opts.logger === true,
      bodyLimit: maxFileBytes,
      // Slow uploads (slowloris) are cut by Node itself.
      requestTimeout: Math.max(60_000, 2 * timeoutMs),
      forceCloseConnections: 'idle',
      // Requests arriving while closing get our own 503 (below), in the service's error shape.
      return503OnClosing: false,
    });
    serverInfo.set(app, {
      model: { id: model.id, version: model.version, path: model.path },
      device: device.kind === 'ready' ? { id: device.model.id, version: device.model.version, path: device.model.path } : device.kind === 'error' ? { error: device.message } : null,
      engine: engine.description,
      slots: queue.concurrency,
      queueCapacity: queue.capacity,
      get pageError() {
        return pageError;
      },
    });

    // --- metrics -------------------------------------------------------------------------------
    const registry = new Registry();
    const requests = registry.add(new Counter('phoneside_http_requests_total', 'HTTP requests by route, method and status.'));
    const errors = registry.add(new Counter('phoneside_http_errors_total', 'HTTP error responses by route and error code.'));
    const latency = registry.add(new Histogram('phoneside_http_request_duration_seconds', 'Time from request to response, by route.', LATENCY_BUCKETS));
    const inferSeconds = registry.add(new Histogram('phoneside_inference_duration_seconds', 'Time of one inference run (one request batch), in the worker.', LATENCY_BUCKETS));
    const images = registry.add(new Counter('phoneside_images_classified_total', 'Images classified, by label.'));
    const rejected = registry.add(new Counter('phoneside_queue_rejected_total', 'Requests answered 503 because the inference queue was full.'));
    const timeouts = registry.add(new Counter('phoneside_timeouts_total', 'Requests answered 504 after the per-request timeout.'));
    rejected.inc({}, 0);
    timeouts.inc({}, 0);
    registry.add(new Gauge('phoneside_queue_depth', 'Admitted classify requests not yet running (decoding or waiting for a slot).', () => queue.depth));
    registry.add(new Gauge('phoneside_inference_running', 'Inference runs in progress.', () => queue.running));
    registry.add(new Gauge('phoneside_queue_capacity', 'Requests that may wait beyond the running ones before 503.', () => queue.capacity));
    registry.add(new Gauge('phoneside_inference_slots', 'Inference runs allowed at once (worker threads).', () => queue.concurrency));
    registry.add(
      new Gauge('phoneside_model_info', 'Loaded models (value 1).', () => [
        [{ role: 'server', id: model.id, version: model.version }, 1],
        ...(device.kind === 'ready' ? ([[{ role: 'device', id: device.model.id, version: device.model.version }, 1]] as [Record<string, string>, number][]) : []),
      ]),
    );
    registry.add(new Gauge('process_resident_memory_bytes', 'Resident memory of the process.', () => process.memoryUsage.rss()));

    const state = new WeakMap<FastifyRequest, RequestState>();

    const sendError = (req: FastifyRequest, reply: FastifyReply, e: ApiError): FastifyReply => {
      const st = state.get(req);
      if (st) st.errorCode = e.code;
      else state.set(req, { abort: new AbortController(), started: performance.now(), errorCode: e.code });
      for (const [k, v] of Object.entries(e.headers)) reply.header(k, v);
      return reply.code(e.status).type('application/json; charset=utf-8').send(errorBody(e));
    };

    app.setErrorHandler((err, req, reply) => {
      const onRaw = req.routeOptions.url === '/v1/classify' && !req.isMultipart();
      const e = toApiError(err, onRaw ? rawLimits : limits);
      if (e.status >= 500) req.log.error({ err }, 'request failed');
      return sendError(req, reply, e);
    });
    app.setNotFoundHandler((req, reply) => sendError(req, reply, new ApiError(404, 'not_found', `no route ${req.method} ${req.url.split('?')[0]}`)));

    app.addHook('onSend', async (_req, reply, payload) => {
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) if (!reply.hasHeader(k)) reply.header(k, v);
      // While shutting down, in-flight answers close their keep-alive connection so close() ends.
      if (!ready) reply.header('connection', 'close');
      return payload;
    });

    app.addHook('onRequest', async (req, reply) => {
      if (!ready) {
        reply.header('connection', 'close');
        throw new ApiError(503, 'shutting_down', 'server is shutting down', undefined, { 'retry-after': '5' });
      }
      if (apiKey !== undefined && (req.url.startsWith('/v1/') || req.routeOptions.url?.startsWith('/v1/') === true)) {
        const k = presentedKey(req);
        if (k === undefined) throw new ApiError(401, 'unauthorized', 'API key required: send Authorization: Bearer KEY (or X-API-Key: KEY)', undefined, { 'www-authenticate': 'Bearer' });
        if (!keyMatches(k, apiKey)) throw new ApiError(401, 'unauthorized', 'wrong API key', undefined, { 'www-authenticate': 'Bearer error="invalid_token"' });
      }
    });

    app.addHook('onResponse', async (req, reply) => {
      const st = state.get(req);
      if (st) {
        clearTimeout(st.timer);
        st.ticket?.release();
      }
      const route = req.routeOptions.url ?? 'unmatched';
      requests.inc({ route, method: req.method, status: String(reply.statusCode) });
      latency.observe(reply.elapsedTime / 1000, { route });
      if (reply.statusCode >= 400) errors.inc({ route, code: st?.errorCode ?? String(reply.statusCode) });
    });

    // --- classify --------------------------------------------------------------------------------
    await app.register(async (scope) => {
      // Only this route takes a body: multipart, or anything else as raw bytes (the type is sniffed).
      scope.removeAllContentTypeParsers();
      await scope.register(multipart, {
        limits: { fileSize: maxFileBytes, files: maxFiles, fields: 16, fieldSize: 4096, parts: maxFiles + 16, headerPairs: 64 },
      });
      scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: maxFileBytes }, (_req, body, done) => done(null, body));

      scope.post<{ Querystring: { minConfidence?: number } }>(
        '/v1/classify',
        {
          schema: { querystring: { type: 'object', properties: { minConfidence: { type: 'number', minimum: 0, maximum: 1 } }, additionalProperties: false } },
          onRequest: async (req, reply) => {
            const len = Number(req.headers['content-length']);
            const multi = /^multipart\/form-data/i.test(req.headers['content-type'] ?? '');
            const limit = multi ? maxBodyBytes : maxFileBytes;
            if (Number.isFinite(len) && len > limit) throw toApiError({ code: 'FST_ERR_CTP_BODY_TOO_LARGE' }, { ...limits, maxBodyBytes: limit });
            const st: RequestState = { abort: new AbortController(), started: performance.now() };
            state.set(req, st);
            try {
              st.ticket = queue.admit();
            } catch (err) {
              if (err instanceof QueueFullError) {
                rejected.inc();
                throw new ApiError(503, 'busy', 'server busy: the inference queue is full; retry later', undefined, { 'retry-after': String(err.retryAfterSeconds) });
              }
              if (err instanceof QueueClosedError) throw new ApiError(503, 'shutting_down', 'server is shutting down');
              throw err;
            }
            st.timer = setTimeout(() => st.abort.abort(new ApiError(504, 'timeout', `request took longer than ${timeoutMs} ms`)), timeoutMs);
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
          try {
            const uploads = await untilAborted(readUploads(req, maxBodyBytes), st.abort.signal);
            const decoded = await untilAborted(decodeUploads(uploads, pre, maxPixels), st.abort.signal);
            let inferMs = 0;
            const probs = await untilAborted(
              st.ticket!.run(async () => {
                await opts.testHooks?.beforeInference?.();
                const t0 = performance.now();
                const p = await engine.run(decoded.input, decoded.count);
                inferMs = performance.now() - t0;
                inferSeconds.observe(inferMs / 1000);
                return p;
              }, st.abort.signal),
              st.abort.signal,
            );
            const k = classes.length;
            const results = uploads.map((u, i) => {
              const d = decide(classes, Array.from(probs.subarray(i * k, (i + 1) * k)), minConfidence, model.info.thresholds);
              images.inc({ label: d.label! });
              return {
                filename: u.filename,
                label: d.label!,
                predicted: d.top!,
                confidence: round(d.confidence!, 6),
                probabilities: Object.fromEntries(Object.entries(d.probabilities!).map(([c, p]) => [c, round(p, 6)])),
                ms: round(decoded.decodeMs[i]! + inferMs / uploads.length, 1),
              };
            });
            return reply.send({ model: { id: model.id, version: model.version }, results, ms: round(performance.now() - st.started, 1) });
          } catch (err) {
            if (err instanceof ApiError && err.code === 'timeout') timeouts.inc();
            throw err;
          } finally {
            // Now, not in onResponse: a client that gets its answer may send its next request
            // before onResponse runs, and must find the place free.
            st.ticket?.release();
          }
        },
      );
    });

    // --- models, health, metrics, docs -----------------------------------------------------------
    const describe = (m: LoadedModel, role: 'server' | 'device'): Record<string, unknown> => ({
      id: m.id,
      version: m.version,
      role,
      backbone: m.info.backbone.id,
      classes: m.info.classes,
      preprocessing: m.info.preprocessing,
      thresholds: m.info.thresholds,
      temperature: m.info.temperature,
      createdAt: m.info.createdAt,
      metrics: m.metrics,
      card: m.card,
    });
    app.get('/v1/models', async () => ({
      models: [describe(model, 'server'), ...(device.kind === 'ready' ? [describe(device.model, 'device')] : [])],
      inference: { engine: engine.description, slots: queue.concurrency, queueCapacity: queue.capacity, timeoutMs },
      limits: { maxFiles, maxFileBytes, maxBodyBytes, maxPixels },
      ...(device.kind === 'error' ? { deviceModelError: device.message } : {}),
    }));

    app.get('/healthz', async () => ({ status: 'ok' }));
    app.get('/readyz', async (req, reply) => {
      if (!ready) return sendError(req, reply, new ApiError(503, 'not_ready', 'server is shutting down'));
      return { status: 'ready', model: { id: model.id, version: model.version } };
    });
    app.get('/metrics', async (_req, reply) => reply.type('text/plain; version=0.0.4; charset=utf-8').send(registry.render()));

    const doc = openApiDocument({ maxFiles, maxFileBytes, maxBodyBytes, maxPixels, timeoutMs, apiKey: apiKey !== undefined }, packageVersion());
    const docsHtml = renderDocsHtml(doc);
    app.get('/docs/openapi.json', async () => doc);
    app.get('/docs', async (req, reply) => {
      const accept = req.headers.accept ?? '';
      if (/text\/html/.test(accept)) return reply.type('text/html; charset=utf-8').send(docsHtml);
      return reply.send(doc);
    });

    // --- device model for the page's on-device mode (no API key: the page fetches it) -----------
    const deviceUnavailable = (): ApiError =>
      device.kind === 'none'
        ? new ApiError(404, 'no_device_model', 'this server runs without an on-device model')
        : new ApiError(503, 'device_model_unavailable', `the on-device model could not be loaded: ${device.kind === 'error' ? device.message : ''}`);
    app.get('/models/device.json', async (req, reply) => {
      if (device.kind !== 'ready') return sendError(req, reply, deviceUnavailable());
      return reply.header('cache-control', 'no-cache').send(device.json);
    });
    app.get('/models/device.onnx', async (req, reply) => {
      if (device.kind !== 'ready') return sendError(req, reply, deviceUnavailable());
      const etag = `"${device.json.sha256.slice(0, 32)}"`;
      reply.header('etag', etag).header('cache-control', 'no-cache');
      if (fresh(req, etag)) return reply.code(304).send();
      return reply.type('application/octet-stream').send(Buffer.from(device.bytes.buffer, device.bytes.byteOffset, device.bytes.byteLength));
    });

    try {
      registerAssets(app, webAssets());
    } catch (err) {
      // An incomplete install loses the page, not the API.
      pageError = err instanceof Error ? err.message : String(err);
      app.log.warn(`web page unavailable: ${pageError}`);
      app.get('/', async (req, reply) => sendError(req, reply, new ApiError(503, 'page_unavailable', `the web page is unavailable: ${pageError}`)));
    }

    // --- shutdown: fastify stops accepting and lets in-flight requests finish; then the workers go.
    app.addHook('preClose', async () => {
      ready = false;
    });
    app.addHook('onClose', async () => {
      await queue.drain();
      await engine.close();
    });

    await app.ready();
    return app;
  } catch (err) {
    // Setting up the routes failed: the workers must not keep the process alive.
    await engine.close();
    throw err;
  }
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

/** What a server runs, for start-up messages. */
export interface ServerInfo {
  model: { id: string; version: string; path: string };
  device: { id: string; version: string; path: string } | { error: string } | null;
  engine: string;
  slots: number;
  queueCapacity: number;
  /** Why the web page is not served (files missing), if it is not. */
  readonly pageError: string | undefined;
}

const serverInfo = new WeakMap<FastifyInstance, ServerInfo>();

export function describeServer(app: FastifyInstance): ServerInfo | undefined {
  return serverInfo.get(app);
}

export interface RunningServer {
  app: FastifyInstance;
  /** e.g. http://127.0.0.1:8080 */
  url: string;
  /** Stops accepting, finishes in-flight requests, stops the inference workers. */
  close(): Promise<void>;
}

export async function startServer(opts: ServeOptions = {}): Promise<RunningServer> {
  const app = await createServer(opts);
  const host = opts.host ?? '127.0.0.1';
  try {
    await app.listen({ host, port: opts.port ?? 8080 });
  } catch (err) {
    await app.close();
    throw err;
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : (opts.port ?? 8080);
  const shown = host.includes(':') ? `[${host}]` : host;
  return { app, url: `http://${shown}:${port}`, close: () => app.close() };
}

export { DEFAULT_DEVICE_MODEL, defaultConcurrency };
