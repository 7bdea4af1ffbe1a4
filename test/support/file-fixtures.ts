import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, readdirSync } from 'node:fs';
import { open } from 'node:fs/promises';

const MiB = 1024 * 1024;
/** The name of a temporary file an upload or download writes beside its target (`src/temporary-file-name.ts`). */
const TEMPORARY_NAME = /\.execrelay-[0-9a-f]+\.tmp$/;

/** The SHA-256 of a file's contents, read in 4 MiB pieces (hex). */
export async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Writes `bytes` random bytes to `file`, 16 MiB at a time. */
export async function writeRandomFile(file: string, bytes: number): Promise<void> {
  const handle = await open(file, 'w');
  try {
    for (let written = 0; written < bytes; ) {
      const chunk = randomBytes(Math.min(16 * MiB, bytes - written));
      await handle.write(chunk);
      written += chunk.length;
    }
  } finally {
    await handle.close();
  }
}

/** Every temporary file (`.NAME.execrelay-RANDOM.tmp`) under `root`, recursively. */
export function temporaryFiles(root: string): string[] {
  return (readdirSync(root, { recursive: true }) as string[]).filter((name) => TEMPORARY_NAME.test(name));
}
