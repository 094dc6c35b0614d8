import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** SHA-256 of a buffer or (UTF-8) string, as lowercase hex. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** SHA-256 of a file's bytes, streamed so big files never sit in memory whole. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
