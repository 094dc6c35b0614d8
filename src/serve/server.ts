/**
 * `phoneside serve`: the HTTP service (fastify). `createServer` loads the models and returns the
 * app ready for `.inject()` or `.listen()`; `startServer` also listens.
 *
 * The classify route is in classify-route.ts; the options and their defaults in config.ts.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { packageVersion } from '../infer/package.js';
import { webAssets } from '../web/assets.js';
import { keyMatches, presentedKey } from './auth.js';
import { registerClassifyRoute, type RequestState } from './classify-route.js';
import { resolveServeConfig, type ServeConfig, type ServeOptions } from './config.js';
import { defaultConcurrency } from './defaults.js';
import { ApiError, clientApiError, errorBody, isExpectedUnavailable, toApiError } from './errors.js';
import { deviceJson, loadModel, onnxBytes, type DeviceModelJson, type LoadedModel, type ModelLoadOptions } from './models.js';
import { openApiDocument, renderDocsHtml } from './openapi.js';
import { startEngine, type InferenceEngine } from './pool.js';
import { InferenceQueue } from './queue.js';
import { createServiceMetrics, type ServiceMetrics } from './service-metrics.js';
import { fresh, registerAssets, SECURITY_HEADERS } from './static.js';
import { definedOnly } from '../util/defined.js';

export type { ServeOptions } from './config.js';

type DeviceState = { kind: 'none' } | { kind: 'error'; error: Error } | { kind: 'ready'; model: LoadedModel; bytes: Uint8Array; json: DeviceModelJson };

/** What the route groups below share. */
interface ServerContext {
  cfg: ServeConfig;
  model: LoadedModel;
  device: DeviceState;
  engine: InferenceEngine;
  queue: InferenceQueue;
  metrics: ServiceMetrics;
  state: WeakMap<FastifyRequest, RequestState>;
  /** False once the server is closing. */
  ready(): boolean;
  sendError(req: FastifyRequest, reply: FastifyReply, e: ApiError): FastifyReply;
}

/**
 * Loads the models, starts the inference workers and returns the app with every route, ready for
 * `.inject()` or `.listen()`. A server that cannot load its model does not start; one whose
 * on-device model fails serves the API without it.
 */
export async function createServer(opts: ServeOptions = {}): Promise<FastifyInstance> {
  return buildServer(resolveServeConfig(opts), opts);
}

async function buildServer(cfg: ServeConfig, opts: ServeOptions): Promise<FastifyInstance> {
  const loadOpts = (tta: boolean | undefined): ModelLoadOptions => ({
    ...(opts.cache === false ? { cache: false } : {}),
    ...(tta !== undefined ? { tta } : {}),
  });
  const int8 = definedOnly(opts, ['calibration', 'gateData', 'force']);
  const model = await loadModel(cfg.model, { ...loadOpts(opts.tta), ...definedOnly(opts, ['precision']), ...int8 });
  const device =
    cfg.deviceModel === false
      ? ({ kind: 'none' } as const)
      : await loadDeviceModel(cfg.deviceModel, { ...loadOpts(opts.deviceTta), ...(opts.devicePrecision === 'int8' ? { precision: 'int8', ...int8 } : {}) }, cfg.thresholds);
  const pre = model.info.preprocessing;
  const engine = await startEngine({ model: model.onnx, size: pre.size, classes: model.info.classes.length, workers: cfg.workers, threads: cfg.threads });
  try {
    const queue = new InferenceQueue({ concurrency: engine.parallelism, capacity: cfg.queueSize });
    const metrics = createServiceMetrics(queue, model, device.kind === 'ready' ? device.model : undefined);
    // Node's own limits on a connection, a backstop to the classify route's (which answers 408
    // itself when a body stalls or is late): headers must arrive within the per-request timeout,
    // a whole request within twice it; checked every quarter of that (Node's default: 30 s).
    const headersTimeout = Math.min(60_000, cfg.timeoutMs);
    const app = Fastify({
      logger: opts.logger === true ? true : typeof opts.logger === 'object' ? { level: opts.logger.level ?? 'info', stream: opts.logger.stream } : false,
      bodyLimit: cfg.maxFileBytes,
      requestTimeout: 2 * cfg.timeoutMs,
      http: { headersTimeout, connectionsCheckingInterval: Math.max(100, Math.min(5_000, Math.floor(headersTimeout / 4))) },
      // Malformed requests, oversized headers and Node's timeouts get the service's error shape too.
      clientErrorHandler: (err, socket) => {
        const e = answerClientError(err, socket, metrics);
        if (e) app.log.debug({ status: e.status, code: e.code, cause: err.code }, e.message);
      },
      forceCloseConnections: 'idle',
      // Requests arriving while closing get our own 503 (below), in the service's error shape.
      return503OnClosing: false,
    });
    let ready = true;
    const state = new WeakMap<FastifyRequest, RequestState>();
    const sendError = (req: FastifyRequest, reply: FastifyReply, e: ApiError): FastifyReply => {
      const st = state.get(req);
      if (st) st.errorCode = e.code;
      else state.set(req, { abort: new AbortController(), started: performance.now(), errorCode: e.code });
      for (const [k, v] of Object.entries(e.headers)) reply.header(k, v);
      return reply.code(e.status).type('application/json; charset=utf-8').send(errorBody(e));
    };
    const ctx: ServerContext = { cfg, model, device, engine, queue, metrics, state, ready: () => ready, sendError };

    registerHooks(app, ctx);
    await registerClassifyRoute(app, { cfg, model, engine, queue, metrics, state, testHooks: opts.testHooks });
    registerInfoRoutes(app, ctx);
    registerDeviceRoutes(app, ctx);
    const pageError = registerPage(app, ctx);
    serverInfo.set(app, {
      model: { id: model.id, version: model.version, path: model.path },
      device: device.kind === 'ready' ? { id: device.model.id, version: device.model.version, path: device.model.path } : device.kind === 'error' ? { error: device.error.message, cause: device.error } : null,
      engine: engine.description,
      slots: queue.concurrency,
      queueCapacity: queue.capacity,
      pageError,
    });

    // Shutdown: fastify stops accepting and lets in-flight requests finish; then the workers go.
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

/** The on-device model, or why it is unavailable (the API works without it; the page says why). */
async function loadDeviceModel(ref: string, opts: ModelLoadOptions, thresholds: boolean): Promise<DeviceState> {
  try {
    const m = await loadModel(ref, opts);
    const bytes = await onnxBytes(m);
    const json = deviceJson(m, bytes, '/models/device.onnx');
    // The page applies what device.json says: no thresholds when the server runs without them.
    return { kind: 'ready', model: m, bytes, json: thresholds ? json : { ...json, thresholds: {} } };
  } catch (err) {
    return { kind: 'error', error: err instanceof Error ? err : new Error(String(err)) };
  }
}

/** Errors in the service's shape, security headers, shutdown, the API key on /v1/*, request metrics. */
function registerHooks(app: FastifyInstance, ctx: ServerContext): void {
  const { cfg, state, sendError } = ctx;
  const { requests, errors, latency } = ctx.metrics;
  app.setErrorHandler((err, req, reply) => {
    const onRaw = req.routeOptions.url === '/v1/classify' && !req.isMultipart();
    const e = toApiError(err, onRaw ? cfg.rawLimits : cfg.limits);
    // A busy or stopping server answers 503 by design: one line, no stack. Other 5xx are
    // failures: a deliberate one (504) as one error line, anything else with its stack.
    if (isExpectedUnavailable(e)) req.log.warn({ status: e.status, code: e.code }, e.message);
    else if (e.status >= 500 && err instanceof ApiError) req.log.error({ status: e.status, code: e.code }, e.message);
    else if (e.status >= 500) req.log.error({ err }, 'request failed');
    return sendError(req, reply, e);
  });
  app.setNotFoundHandler((req, reply) => sendError(req, reply, new ApiError(404, 'not_found', `no route ${req.method} ${req.url.split('?')[0]}`)));

  app.addHook('onSend', async (_req, reply, payload) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) if (!reply.hasHeader(k)) reply.header(k, v);
    // While shutting down, in-flight answers close their keep-alive connection so close() ends.
    if (!ctx.ready()) reply.header('connection', 'close');
    return payload;
  });

  app.addHook('onRequest', async (req, reply) => {
    if (!ctx.ready()) {
      reply.header('connection', 'close');
      throw new ApiError(503, 'shutting_down', 'server is shutting down', undefined, { 'retry-after': '5' });
    }
    const apiKey = cfg.apiKey;
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
      st.stopWatch?.();
      st.ticket?.release();
    }
    const route = req.routeOptions.url ?? 'unmatched';
    requests.inc({ route, method: req.method, status: String(reply.statusCode) });
    latency.observe(reply.elapsedTime / 1000, { route });
    if (reply.statusCode >= 400) errors.inc({ route, code: st?.errorCode ?? String(reply.statusCode) });
  });
}

/**
 * Node's HTTP server failed a connection before any route ('clientError': a malformed request,
 * headers over the size limit, Node's header or request timeout): answers it in the service's
 * error shape (unless an answer has already started on it) and closes it.
 */
function answerClientError(err: Error & { code?: string }, socket: Socket, metrics: ServiceMetrics): ApiError | undefined {
  if (err.code === 'ECONNRESET' || socket.destroyed) return undefined; // nobody to answer
  const e = clientApiError(err.code);
  metrics.clientErrors.inc({ code: e.code });
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (socket.writable && inFlight?.headersSent !== true) {
    const body = JSON.stringify(errorBody(e));
    const headers = { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), connection: 'close', ...SECURITY_HEADERS };
    const head = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    socket.write(`HTTP/1.1 ${e.status} ${STATUS_CODES[e.status] ?? ''}\r\n${head}\r\n${body}`);
  }
  socket.destroy();
  return e;
}

/** /v1/models, /healthz, /readyz, /metrics and the OpenAPI docs. */
function registerInfoRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { cfg, model, device, engine, queue } = ctx;
  const { maxFiles, maxFileBytes, maxBodyBytes, maxPixels, timeoutMs, apiKey } = cfg;
  const describe = (m: LoadedModel, role: 'server' | 'device'): Record<string, unknown> => ({
    id: m.id,
    version: m.version,
    role,
    backbone: m.info.backbone.id,
    classes: m.info.classes,
    preprocessing: m.info.preprocessing,
    thresholds: m.info.thresholds,
    // Whether those thresholds apply by default (false when the server runs without them).
    thresholdsApplied: cfg.thresholds,
    temperature: m.info.temperature,
    // Test-time augmentation inside the graph ('hflip'), or null.
    tta: m.info.tta ?? null,
    // 'int8' for a statically quantized graph (--precision int8), else 'fp32'.
    precision: m.info.precision ?? 'fp32',
    // For an ensemble: its members (backbone, temperature, preprocessing), averaged in the graph.
    ...(m.info.ensemble !== undefined ? { ensemble: m.info.ensemble } : {}),
    createdAt: m.info.createdAt,
    metrics: m.metrics,
    card: m.card,
  });
  app.get('/v1/models', async () => ({
    models: [describe(model, 'server'), ...(device.kind === 'ready' ? [describe(device.model, 'device')] : [])],
    inference: { engine: engine.description, slots: queue.concurrency, queueCapacity: queue.capacity, timeoutMs },
    limits: { maxFiles, maxFileBytes, maxBodyBytes, maxPixels },
    ...(device.kind === 'error' ? { deviceModelError: device.error.message } : {}),
  }));

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (req, reply) => {
    if (!ctx.ready()) return ctx.sendError(req, reply, new ApiError(503, 'not_ready', 'server is shutting down'));
    return { status: 'ready', model: { id: model.id, version: model.version } };
  });
  app.get('/metrics', async (_req, reply) => reply.type('text/plain; version=0.0.4; charset=utf-8').send(ctx.metrics.registry.render()));

  const doc = openApiDocument({ maxFiles, maxFileBytes, maxBodyBytes, maxPixels, timeoutMs, apiKey: apiKey !== undefined, thresholds: cfg.thresholds }, packageVersion());
  const docsHtml = renderDocsHtml(doc);
  app.get('/docs/openapi.json', async () => doc);
  app.get('/docs', async (req, reply) => {
    const accept = req.headers.accept ?? '';
    if (/text\/html/.test(accept)) return reply.type('text/html; charset=utf-8').send(docsHtml);
    return reply.send(doc);
  });
}

/** The model for the page's on-device mode (no API key: the page fetches it). */
function registerDeviceRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { device, sendError } = ctx;
  const deviceUnavailable = (): ApiError =>
    device.kind === 'none'
      ? new ApiError(404, 'no_device_model', 'this server runs without an on-device model')
      : new ApiError(503, 'device_model_unavailable', `the on-device model could not be loaded: ${device.kind === 'error' ? device.error.message : ''}`);
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
}

/** The web page; returns why it is unavailable (an incomplete install loses the page, not the API). */
function registerPage(app: FastifyInstance, ctx: ServerContext): string | undefined {
  try {
    registerAssets(app, webAssets());
    return undefined;
  } catch (err) {
    const pageError = err instanceof Error ? err.message : String(err);
    app.log.warn(`web page unavailable: ${pageError}`);
    app.get('/', async (req, reply) => ctx.sendError(req, reply, new ApiError(503, 'page_unavailable', `the web page is unavailable: ${pageError}`)));
    return pageError;
  }
}

/** What a server runs, for start-up messages. */
export interface ServerInfo {
  model: { id: string; version: string; path: string };
  /** The on-device model; when it could not be loaded, why (`cause`: the error, e.g. a WeightsMissingError, for the caller to word). */
  device: { id: string; version: string; path: string } | { error: string; cause: Error } | null;
  engine: string;
  slots: number;
  queueCapacity: number;
  /** Why the web page is not served (files missing), if it is not. */
  pageError: string | undefined;
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
  const cfg = resolveServeConfig(opts);
  const { host, port: wanted } = cfg;
  const app = await buildServer(cfg, opts);
  try {
    await app.listen({ host, port: wanted });
  } catch (err) {
    await app.close();
    throw err;
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : wanted;
  const shown = host.includes(':') ? `[${host}]` : host;
  return { app, url: `http://${shown}:${port}`, close: () => app.close() };
}

export { defaultConcurrency };
