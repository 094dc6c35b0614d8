/**
 * `phoneside serve`: the HTTP service and the web page (see src/serve/server.ts). Runs until
 * SIGINT/SIGTERM, then stops accepting, finishes the requests in flight and exits 0; a second
 * signal exits at once.
 */
import { WeightsMissingError } from '../backbones/weights-source.js';
import { SERVE } from '../options/serve.js';
import type { CliValues } from '../options/schema.js';
import { resolveServeConfig, type ServeConfig } from '../serve/config.js';
import type { RunningServer, ServeOptions } from '../serve/server.js';
import { applyModelWeights, CommandUsageError, isUsageError, weightsMissingAdvice, type CliIO } from './options.js';
import { libraryOptions, parseCommandLine, runVerb } from './parse.js';

type ServeValues = CliValues<typeof SERVE.options>;

/** The server's options from the command line's values (the API key also from PHONESIDE_API_KEY). */
function serveOptions(values: ServeValues): ServeOptions {
  const apiKey = values.apiKey ?? process.env['PHONESIDE_API_KEY'];
  return {
    ...libraryOptions(SERVE.options, values),
    ...(apiKey !== undefined && apiKey !== '' ? { apiKey } : {}),
    logger: values.quiet !== true,
  };
}

/** The server options `args` ask for (usage errors throw CommandUsageError). */
export function parseServeArgs(args: string[], io: CliIO = { stdout: process.stdout, stderr: process.stderr }): { options: ServeOptions; values: ServeValues } {
  const { values } = parseCommandLine(SERVE, args, io);
  return { options: serveOptions(values), values };
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/i;

export function cmdServe(args: string[], io: CliIO): Promise<number> {
  return runVerb(SERVE, args, io, async ({ values }) => {
    const options = serveOptions(values);
    const cfg = resolveServeConfig(options); // the server's own defaults
    const { model, deviceModel } = cfg;
    // --weights / --device-weights into env.weightsDir (a bare PATH for its model's backbone);
    // the on-device model's other problems are reported by the server, which starts without it.
    const forModel = await applyModelWeights(values.weights, [model]);
    if (deviceModel !== false) {
      const forDevice = await applyModelWeights(values.deviceWeights, [deviceModel], '--device-weights').catch((err: unknown) => {
        if (isUsageError(err)) throw err;
        return {} as Record<string, string>;
      });
      // One process has one weights folder per backbone: both flags may not name two for the same one.
      const clash = Object.keys(forDevice).find((id) => forModel[id] !== undefined && forModel[id] !== forDevice[id]);
      if (clash !== undefined) throw new CommandUsageError(`--weights and --device-weights give two folders for backbone ${clash}; a server has one per backbone`);
    }
    return serve(options, cfg, io);
  });
}

async function serve(options: ServeOptions, { model, deviceModel, host, port }: ServeConfig, io: CliIO): Promise<number> {
  io.stderr.write(`phoneside serve: loading ${model}${deviceModel === false ? '' : ` and ${deviceModel} (on-device)`}...\n`);
  // Loaded here, not at the top: other verbs should not pay for fastify.
  const { describeServer, startServer } = await import('../serve/server.js');
  let server: RunningServer;
  try {
    server = await startServer(options);
  } catch (err) {
    if ((err as { code?: string }).code === 'EADDRINUSE') {
      io.stderr.write(`phoneside: port ${port} is in use on ${host}; pick another with --port\n`);
      return 1;
    }
    throw err;
  }
  const info = describeServer(server.app)!;
  const lines = [
    `phoneside serve: ${server.url}  (page /, API docs /docs)`,
    `  model      ${info.model.id} ${info.model.version} (${info.model.path})`,
    `  on-device  ${info.device === null ? 'none' : 'error' in info.device ? `unavailable: ${info.device.error}${info.device.cause instanceof WeightsMissingError ? `\n             ${weightsMissingAdvice(info.device.cause, '--device-weights').replace(/\n/g, '\n             ')}` : ''}` : `${info.device.id} ${info.device.version}`}`,
    `  inference  ${info.engine}; ${info.slots} at once, up to ${info.queueCapacity} waiting, then 503`,
    `  thresholds ${options.thresholds === false ? "off (--no-thresholds): the raw top class; ?thresholds=true turns them on" : "the model's own, when it has any (?thresholds=false for the raw top class)"}`,
    `  api key    ${options.apiKey !== undefined ? 'required on /v1/*' : 'none'}`,
  ];
  if (info.pageError) lines.push(`  web page   unavailable: ${info.pageError}`);
  if (options.apiKey === undefined && !LOOPBACK.test(host)) {
    lines.push(`  warning    listening on ${host} without an API key: anyone who can reach it can use it`);
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
