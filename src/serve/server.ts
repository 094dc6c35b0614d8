/**
 * `phoneside serve`: the HTTP service (fastify). `createServer` loads the models and returns the
 * app ready for `.inject()` or `.listen()`; `startServer` also listens.
 *
 * The classify route is in classify-route.ts; the options and their defaults in config.ts.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { DEFAULT_MODEL } from '../infer/load.js';
import { packageVersion } from '../infer/package.js';
import { webAssets } from '../web/assets.js';
import { keyMatches, presentedKey } from './auth.js';
import { registerClassifyRoute, type RequestState } from './classify-route.js';
import { resolveServeConfig, type ServeOptions } from './config.js';
import { DEFAULT_DEVICE_MODEL, defaultConcurrency } from './defaults.js';
import { ApiError, errorBody, toApiError } from './errors.js';
import { deviceJson, loadModel, onnxBytes, type DeviceModelJson, type LoadedModel } from './models.js';
import { openApiDocument, renderDocsHtml } from './openapi.js';
import { startEngine, type InferenceEngine } from './pool.js';
import { InferenceQueue } from './queue.js';
import { createServiceMetrics } from './service-metrics.js';
import { fresh, registerAssets, SECURITY_HEADERS } from './static.js';

export type { ServeOptions } from './config.js';

type DeviceState = { kind: 'none' } | { kind: 'error'; message: string } | { kind: 'ready'; model: LoadedModel; bytes: Uint8Array; json: DeviceModelJson };

export async function createServer(opts: ServeOptions = {}): Promise<FastifyInstance> {
  const cfg = resolveServeConfig(opts);
  const { workers, threads, queueSize, timeoutMs, maxFiles, maxBodyBytes, maxFileBytes, maxPixels, apiKey } = cfg;
  const loadOpts = (weights: string | undefined, tta: boolean | undefined): { weights?: string; cache?: boolean; tta?: boolean } => ({
    ...(weights ? { weights } : {}),
    ...(opts.cache === false ? { cache: false } : {}),
    ...(tta !== undefined ? { tta } : {}),
  });

  // Models first: a server that cannot load its model does not start.
  const model = await loadModel(opts.model ?? DEFAULT_MODEL, loadOpts(opts.weights, opts.tta));
  let device: DeviceState = { kind: 'none' };
  if (opts.deviceModel !== false) {
    try {
      const m = await loadModel(opts.deviceModel ?? DEFAULT_DEVICE_MODEL, loadOpts(opts.deviceWeights, opts.deviceTta));
      const bytes = await onnxBytes(m);
      const json = deviceJson(m, bytes, '/models/device.onnx');
      // The page applies what device.json says: none when the server runs with --no-thresholds.
      device = { kind: 'ready', model: m, bytes, json: cfg.thresholds ? json : { ...json, thresholds: {} } };
    } catch (err) {
      // The API works without it; the page reports the message in its on-device mode.
      const message = err instanceof Error ? err.message : String(err);
      // The weights layer speaks of --weights; for serve the device model's flag is --device-weights.
      device = { kind: 'error', message: message.replace(/pass --weights\b/g, 'pass --device-weights') };
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

    const metrics = createServiceMetrics(queue, model, device.kind === 'ready' ? device.model : undefined);
    const { registry, requests, errors, latency } = metrics;

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
      const e = toApiError(err, onRaw ? cfg.rawLimits : cfg.limits);
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
    await registerClassifyRoute(app, { cfg, model, engine, queue, metrics, state, testHooks: opts.testHooks });

    // --- models, health, metrics, docs -----------------------------------------------------------
    const describe = (m: LoadedModel, role: 'server' | 'device'): Record<string, unknown> => ({
      id: m.id,
      version: m.version,
      role,
      backbone: m.info.backbone.id,
      classes: m.info.classes,
      preprocessing: m.info.preprocessing,
      thresholds: m.info.thresholds,
      // Whether those thresholds apply by default (false under --no-thresholds).
      thresholdsApplied: cfg.thresholds,
      temperature: m.info.temperature,
      // Test-time augmentation inside the graph ('hflip'), or null.
      tta: m.info.tta ?? null,
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
      ...(device.kind === 'error' ? { deviceModelError: device.message } : {}),
    }));

    app.get('/healthz', async () => ({ status: 'ok' }));
    app.get('/readyz', async (req, reply) => {
      if (!ready) return sendError(req, reply, new ApiError(503, 'not_ready', 'server is shutting down'));
      return { status: 'ready', model: { id: model.id, version: model.version } };
    });
    app.get('/metrics', async (_req, reply) => reply.type('text/plain; version=0.0.4; charset=utf-8').send(registry.render()));

    const doc = openApiDocument({ maxFiles, maxFileBytes, maxBodyBytes, maxPixels, timeoutMs, apiKey: apiKey !== undefined, thresholds: cfg.thresholds }, packageVersion());
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
