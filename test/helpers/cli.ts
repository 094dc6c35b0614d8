/**
 * Runs the CLI in this process and captures what it prints. Only string writes are captured: the
 * test runner reports to its parent through process.stdout with Buffers, asynchronously, and
 * swallowing those would lose other tests' results.
 */
import { main } from '../../src/cli/main.js';

export async function runCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const write = process.stdout.write.bind(process.stdout);
  const writeErr = process.stderr.write.bind(process.stderr);
  let out = '';
  let err = '';
  const capture = (real: typeof write, add: (s: string) => void): typeof write =>
    ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      if (typeof chunk !== 'string') return (real as (c: Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
      add(chunk);
      return true;
    }) as typeof write;
  process.stdout.write = capture(write, (s) => (out += s));
  process.stderr.write = capture(writeErr, (s) => (err += s));
  try {
    return { code: await main(args), out, err };
  } finally {
    process.stdout.write = write;
    process.stderr.write = writeErr;
  }
}

/** A stdout/stderr pair for a command's injected CliIO that records what it writes. */
export interface FakeStream {
  write(s: string): boolean;
  isTTY: boolean;
}

export function fakeIO(tty = false): { io: { stdout: FakeStream; stderr: FakeStream }; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    io: { stdout: { write: (s) => ((out += s), true), isTTY: tty }, stderr: { write: (s) => ((err += s), true), isTTY: tty } },
    out: () => out,
    err: () => err,
  };
}
