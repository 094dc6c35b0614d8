/**
 * Defaults of `phoneside serve` that need no heavy import (the CLI's help text shows them without
 * loading fastify or ONNX Runtime).
 */
import { availableParallelism } from 'node:os';

/**
 * The defaults, from the machine's cores: one single-threaded ONNX session per core (at most 4
 * sessions, to bound memory; beyond 4 cores the sessions get more threads), and 2 waiting requests
 * per core. On 2 cores with ResNet50, 2 sessions x 1 thread served 23-24.5 img/s at saturation
 * against 17-19 for 1 session x 2 threads (which answers one lone request faster: 54 vs 75-84 ms).
 */
export function defaultConcurrency(cores = availableParallelism()): { workers: number; threads: number; queueSize: number } {
  const workers = Math.max(1, Math.min(4, cores));
  return { workers, threads: Math.max(1, Math.floor(cores / workers)), queueSize: 2 * cores };
}
