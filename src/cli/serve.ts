/**
 * `phoneside serve`: the HTTP service and the web page (see src/serve/server.ts). Runs until
 * SIGINT/SIGTERM, then stops accepting, finishes the requests in flight and exits 0; a second
 * signal exits at once.
 */
import { parseArgs } from 'node:util';
import { NoDefaultModelError } from '../infer/load.js';
import { defaultConcurrency } from '../serve/defaults.js';
import type { RunningServer, ServeOptions } from '../serve/server.js';
import { CommandUsageError, intOpt, isUsageError, numberOpt, usage, type CliIO, type OptionValues, applyEnvOptions, applyWeightsOption, ENV_OPTIONS } from './options.js';

const d = defaultConcurrency();

export const SERVE_HELP = `phoneside serve [--model M] [--host 127.0.0.1] [--port 8080] [options]

Serves the classifier over HTTP and the web page at '/':
  POST /v1/classify      images as multipart file fields, or one image as the raw body -> JSON
                         (?thresholds=false: the raw top class, ignoring the model's thresholds)
  GET  /v1/models        loaded models: classes, preprocessing, thresholds, validation metrics
  GET  /healthz /readyz  liveness / readiness        GET /metrics   Prometheus text
  GET  /docs             OpenAPI description         GET /models/device.{json,onnx}  on-device model
Options:
  --model M              model for /v1/classify: resnet50 (default), mobilenet_v2, a bundle, run or ensemble folder, or an .onnx
  --device-model M       model the page runs in the browser (default mobilenet_v2)
  --no-device-model      serve no on-device model
  --no-thresholds        answer the top class even below the model's per-class minimum confidence
                         (by default below it is 'uncertain'), in the API and the page's on-device mode
  --host H               address to bind (default 127.0.0.1; 0.0.0.0 exposes it to the network: set an API key)
  --port N               (default 8080; 0 = any free port)
  --api-key KEY          require KEY on /v1/* (Authorization: Bearer KEY or X-API-Key: KEY); env PHONESIDE_API_KEY
  --workers N            inference worker threads (default ${d.workers} here: 1 per core, at most 4; 0 = on the main thread)
  --threads N            ONNX Runtime threads per worker (default ${d.threads} here: cores / workers)
  --queue N              requests that may wait for inference before 503 (default ${d.queueSize} here: 2 x cores)
  --timeout MS           per-request limit, answered 504 (default 30000)
  --max-files N          images per request (default 16)
  --max-image-mb X       one image (default 20)       --max-body-mb X   whole request (default 64)
  --max-pixels N         pixels per image, checked before decoding (default 100000000)
  --tta                  test-time augmentation for --model (image + mirror image, logits averaged,
                         inside the ONNX graph; on by default when the model's manifest asks for it)
  --device-tta           the same for --device-model (the browser runs the TTA graph)
  --weights [ID=]PATH    backbone weights for --model   --device-weights PATH   for --device-model
                         (ID=PATH: for one backbone, e.g. an ensemble's; repeatable)
  --quiet                no request log (JSON lines on stdout otherwise)
  --cache-dir DIR, --offline
`;

function mbOpt(v: OptionValues, name: string): number | undefined {
  const n = numberOpt(v, name, (x) => x > 0, 'a positive number');
  return n === undefined ? undefined : Math.floor(n * 1048576);
}

/** The options `args` ask for (usage errors throw CommandUsageError); `v` is parseArgs' values. */
export function parseServeArgs(args: string[]): { options: ServeOptions; v: OptionValues } {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      model: { type: 'string', short: 'm' },
      'device-model': { type: 'string' },
      'no-device-model': { type: 'boolean' },
      'no-thresholds': { type: 'boolean' },
      host: { type: 'string' },
      port: { type: 'string', short: 'p' },
      'api-key': { type: 'string' },
      workers: { type: 'string' },
      threads: { type: 'string' },
      queue: { type: 'string' },
      timeout: { type: 'string' },
      'max-files': { type: 'string' },
      'max-image-mb': { type: 'string' },
      'max-body-mb': { type: 'string' },
      'max-pixels': { type: 'string' },
      tta: { type: 'boolean' },
      'device-tta': { type: 'boolean' },
      weights: { type: 'string', multiple: true },
      'device-weights': { type: 'string', multiple: true },
      quiet: { type: 'boolean', short: 'q' },
      ...ENV_OPTIONS,
      help: { type: 'boolean', short: 'h' },
    },
  });
  const v: OptionValues = values;
  if (positionals.length > 0) throw new CommandUsageError(`serve takes no positional arguments (got '${positionals[0]}'); use --model`);
  if (v['device-model'] !== undefined && v['no-device-model']) throw new CommandUsageError('--device-model and --no-device-model exclude each other');
  const port = intOpt(v, 'port', 0);
  if (port !== undefined && port > 65535) throw new CommandUsageError(`--port must be 0..65535, got ${port}`);
  const str = (k: string): string | undefined => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const apiKey = str('api-key') ?? process.env['PHONESIDE_API_KEY'];
  const options: ServeOptions = Object.fromEntries(
    Object.entries({
      model: str('model'),
      deviceModel: v['no-device-model'] ? false : str('device-model'),
      host: str('host'),
      port,
      apiKey: apiKey !== undefined && apiKey !== '' ? apiKey : undefined,
      workers: intOpt(v, 'workers', 0),
      threads: intOpt(v, 'threads', 1),
      queueSize: intOpt(v, 'queue', 0),
      timeoutMs: intOpt(v, 'timeout', 1),
      maxFiles: intOpt(v, 'max-files', 1),
      maxFileBytes: mbOpt(v, 'max-image-mb'),
      maxBodyBytes: mbOpt(v, 'max-body-mb'),
      maxPixels: intOpt(v, 'max-pixels', 1),
      weights: applyWeightsOption(v, 'weights'),
      deviceWeights: applyWeightsOption(v, 'device-weights'),
      tta: v['tta'] ? true : undefined,
      deviceTta: v['device-tta'] ? true : undefined,
      thresholds: v['no-thresholds'] ? false : undefined,
      logger: !v['quiet'],
    }).filter(([, x]) => x !== undefined),
  ) as ServeOptions;
  return { options, v };
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/i;

export async function cmdServe(args: string[], io: CliIO = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let options: ServeOptions;
  let v: OptionValues;
  try {
    ({ options, v } = parseServeArgs(args));
    if (v['help']) {
      io.stdout.write(SERVE_HELP);
      return 0;
    }
  } catch (err) {
    if (isUsageError(err)) {
      return usage(io, err, 'serve');
    }
    throw err;
  }
  applyEnvOptions(v);

  io.stderr.write(`phoneside serve: loading ${options.model ?? 'resnet50'}${options.deviceModel === false ? '' : ` and ${options.deviceModel || 'mobilenet_v2'} (on-device)`}...\n`);
  // Loaded here, not at the top: other verbs should not pay for fastify.
  const { describeServer, startServer } = await import('../serve/server.js');
  let server: RunningServer;
  try {
    server = await startServer(options);
  } catch (err) {
    if (err instanceof NoDefaultModelError) {
      io.stderr.write(`phoneside: ${err.message}\n`);
      return 2;
    }
    if ((err as { code?: string }).code === 'EADDRINUSE') {
      io.stderr.write(`phoneside: port ${options.port ?? 8080} is in use on ${options.host ?? '127.0.0.1'}; pick another with --port\n`);
      return 1;
    }
    throw err;
  }
  const info = describeServer(server.app)!;
  const lines = [
    `phoneside serve: ${server.url}  (page /, API docs /docs)`,
    `  model      ${info.model.id} ${info.model.version} (${info.model.path})`,
    `  on-device  ${info.device === null ? 'none' : 'error' in info.device ? `unavailable: ${info.device.error}` : `${info.device.id} ${info.device.version}`}`,
    `  inference  ${info.engine}; ${info.slots} at once, up to ${info.queueCapacity} waiting, then 503`,
    `  thresholds ${options.thresholds === false ? "off (--no-thresholds): the raw top class; ?thresholds=true turns them on" : "the model's own, when it has any (?thresholds=false for the raw top class)"}`,
    `  api key    ${options.apiKey !== undefined ? 'required on /v1/*' : 'none'}`,
  ];
  if (info.pageError) lines.push(`  web page   unavailable: ${info.pageError}`);
  if (options.apiKey === undefined && !LOOPBACK.test(options.host ?? '127.0.0.1')) {
    lines.push(`  warning    listening on ${options.host} without an API key: anyone who can reach it can use it`);
  }
  io.stderr.write(lines.join('\n') + '\n');

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        io.stderr.write(`phoneside serve: ${signal} again, exiting now\n`);
        process.exit(1);
      }
      stopping = true;
      io.stderr.write(`phoneside serve: ${signal}, finishing requests in flight...\n`);
      server.close().then(
        () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          io.stderr.write('phoneside serve: stopped\n');
          resolve(0);
        },
        (err: unknown) => {
          io.stderr.write(`phoneside serve: error while stopping: ${err instanceof Error ? err.message : String(err)}\n`);
          resolve(1);
        },
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
