/** Small filesystem questions asked in several places. */
import { stat } from 'node:fs/promises';

/** Whether `path` is a regular file (following symbolic links); false when it does not exist. */
export async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}
