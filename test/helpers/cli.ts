/** Runs the CLI in this process, with an injected IO that records what it prints. */
import { main } from '../../src/cli/main.js';

export async function runCli(args: string[], opts: { tty?: boolean } = {}): Promise<{ code: number; out: string; err: string }> {
  const f = fakeIO(opts.tty ?? false);
  const code = await main(args, f.io);
  return { code, out: f.out(), err: f.err() };
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
