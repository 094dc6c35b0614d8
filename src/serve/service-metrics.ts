/** The service's Prometheus metrics (GET /metrics): what is counted, and the live gauges. */
import { Counter, Gauge, Histogram, LATENCY_BUCKETS, Registry } from './metrics.js';
import type { LoadedModel } from './models.js';
import type { InferenceQueue } from './queue.js';

export interface ServiceMetrics {
  registry: Registry;
  requests: Counter;
  errors: Counter;
  latency: Histogram;
  inferSeconds: Histogram;
  images: Counter;
  rejected: Counter;
  timeouts: Counter;
  /** Classify requests whose client went away before the answer, by the stage they were in. */
  abandoned: Counter;
  /** Connections the server answered itself, before any route (malformed request, header or request timeout). */
  clientErrors: Counter;
}

/** Where a classify request is when its client goes away (the `stage` label of phoneside_requests_abandoned_total). */
export const ABANDON_STAGES = ['upload', 'decode', 'queued', 'inference', 'answer'] as const;
export type AbandonStage = (typeof ABANDON_STAGES)[number];

export function createServiceMetrics(queue: InferenceQueue, model: LoadedModel, device: LoadedModel | undefined): ServiceMetrics {
  const registry = new Registry();
  const m: ServiceMetrics = {
    registry,
    requests: registry.add(new Counter('phoneside_http_requests_total', 'HTTP requests by route, method and status.')),
    errors: registry.add(new Counter('phoneside_http_errors_total', 'HTTP error responses by route and error code.')),
    latency: registry.add(new Histogram('phoneside_http_request_duration_seconds', 'Time from request to response, by route.', LATENCY_BUCKETS)),
    inferSeconds: registry.add(new Histogram('phoneside_inference_duration_seconds', 'Time of one inference run (one request batch), in the worker.', LATENCY_BUCKETS)),
    images: registry.add(new Counter('phoneside_images_classified_total', 'Images classified, by label.')),
    rejected: registry.add(new Counter('phoneside_queue_rejected_total', 'Requests answered 503 busy: the inference queue was full, or too many bytes of uploads were arriving at once.')),
    timeouts: registry.add(new Counter('phoneside_timeouts_total', 'Requests answered 504 after the per-request timeout.')),
    abandoned: registry.add(
      new Counter(
        'phoneside_requests_abandoned_total',
        'Classify requests whose client closed the connection before the answer, by stage (upload, decode, queued, inference, answer); their work not yet started was skipped. Not counted as errors.',
      ),
    ),
    clientErrors: registry.add(
      new Counter('phoneside_http_client_errors_total', 'Connections answered by the HTTP server before any route, by code (bad_request, headers_too_large, request_timeout).'),
    ),
  };
  // Present from the start (at 0), so dashboards and alerts see the series before the first event.
  m.rejected.inc({}, 0);
  m.timeouts.inc({}, 0);
  for (const stage of ABANDON_STAGES) m.abandoned.inc({ stage }, 0);
  registry.add(new Gauge('phoneside_queue_depth', 'Admitted classify requests not yet running (decoding or waiting for a slot).', () => queue.depth));
  registry.add(new Gauge('phoneside_inference_running', 'Inference runs in progress.', () => queue.running));
  registry.add(new Gauge('phoneside_queue_capacity', 'Requests that may wait beyond the running ones before 503.', () => queue.capacity));
  registry.add(new Gauge('phoneside_inference_slots', 'Inference runs allowed at once (worker threads).', () => queue.concurrency));
  registry.add(
    new Gauge('phoneside_model_info', 'Loaded models (value 1).', () => [
      [{ role: 'server', id: model.id, version: model.version }, 1],
      ...(device ? ([[{ role: 'device', id: device.id, version: device.version }, 1]] as [Record<string, string>, number][]) : []),
    ]),
  );
  registry.add(new Gauge('process_resident_memory_bytes', 'Resident memory of the process.', () => process.memoryUsage.rss()));
  return m;
}
