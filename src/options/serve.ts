/** The options of `serve`: the same names in the CLI (kebab-case) and in `startServer()`. */
import { ENV_OPTIONS, MODEL_OPTION, PRECISION_OPTIONS } from './common.js';
import { defineVerb, type OptionsInput, type ResolvedOptions } from './schema.js';

export const SERVE = defineVerb({
  name: 'serve',
  usage: '[--model M] [--host 127.0.0.1] [--port 8080] [options]',
  summary: 'web service and web page (on-device mode in the browser)',
  description:
    "Serves the classifier over HTTP and the web page at '/':\n  POST /v1/classify: images as multipart file fields, or one image as the raw body -> JSON (?thresholds=false: the raw top class)\n  GET /v1/models: loaded models (classes, preprocessing, thresholds, validation figures); GET /healthz, /readyz, /metrics (Prometheus), /docs (OpenAPI); GET /models/device.{json,onnx}: the on-device model",
  positionals: { min: 0, max: 0, name: '' },
  options: {
    ...MODEL_OPTION,
    deviceModel: {
      kind: 'string',
      placeholder: 'MODEL',
      default: 'mobilenet_v2',
      deprecated: [{ flag: 'no-device-model', value: 'none' }],
      help: "model the page runs in the browser; 'none' for no on-device model",
    },
    thresholds: {
      kind: 'boolean',
      default: true,
      help: "apply the models' per-class minimum confidences (below them the answer is 'uncertain'), in the API and the page's on-device mode; a request may say ?thresholds=false|true",
    },
    tta: { kind: 'boolean', help: "test-time augmentation for --model (image + mirror image, logits averaged, inside the ONNX graph; on by default when the model's manifest asks for it)" },
    deviceTta: { kind: 'boolean', help: 'the same for --device-model (the browser runs the TTA graph)' },
    ...PRECISION_OPTIONS,
    devicePrecision: {
      kind: 'choice',
      choices: ['fp32', 'int8'],
      default: 'fp32',
      help: "the same as --precision for --device-model: int8 is a smaller download (shipped models carry their int8 recipe; others are calibrated on --calibration and checked on --gate-data)",
    },
    host: { kind: 'string', default: '127.0.0.1', placeholder: 'HOST', help: 'address to bind (0.0.0.0 exposes it to the network: set an API key)' },
    port: { kind: 'integer', short: 'p', min: 0, max: 65535, default: 8080, help: 'port (0 = any free port)' },
    apiKey: { kind: 'string', placeholder: 'KEY', envVar: 'PHONESIDE_API_KEY', help: 'require KEY on /v1/* (Authorization: Bearer KEY or X-API-Key: KEY)' },
    workers: { kind: 'integer', group: 'Capacity', min: 0, defaultText: '1 per core, at most 4', help: 'inference worker threads (0 = on the main thread)' },
    threads: { kind: 'integer', group: 'Capacity', min: 1, defaultText: 'cores / workers', help: 'ONNX Runtime threads per worker' },
    queueSize: { kind: 'integer', group: 'Capacity', min: 0, defaultText: '2 x cores', deprecated: ['queue'], help: 'requests that may wait for inference before 503' },
    timeoutMs: {
      kind: 'integer',
      group: 'Capacity',
      min: 1,
      default: 30000,
      deprecated: ['timeout'],
      help: 'per-request limit in milliseconds, upload included; answered 504, or 408 (connection closed) while the request is still arriving',
    },
    uploadIdleMs: {
      kind: 'integer',
      group: 'Capacity',
      min: 1,
      default: 10000,
      help: 'longest pause in milliseconds while a request body arrives; a longer one is answered 408 and the connection closed',
    },
    maxFiles: { kind: 'integer', group: 'Limits', min: 1, default: 16, help: 'images per request' },
    maxImageMb: { kind: 'number', group: 'Limits', min: 0, exclusiveMin: true, default: 20, help: 'one image, in MiB' },
    maxBodyMb: { kind: 'number', group: 'Limits', min: 0, exclusiveMin: true, default: 64, help: 'whole request, in MiB' },
    maxPixels: { kind: 'integer', group: 'Limits', min: 1, default: 100_000_000, help: 'pixels per image, checked from the header before decoding' },
    quiet: { kind: 'boolean', short: 'q', cli: 'only', help: 'no request log (JSON lines on stdout otherwise)' },
    deviceWeights: {
      kind: 'strings',
      repeatable: true,
      cli: 'only',
      group: 'Environment',
      placeholder: '[ID=]PATH',
      help: "backbone weights for --device-model (as --weights is for --model)",
    },
    ...ENV_OPTIONS,
  },
});

export type ServeInput = OptionsInput<typeof SERVE.options>;
export type ServeSettings = ResolvedOptions<typeof SERVE.options>;
