import { once } from 'node:events';

/**
 * Lets a command survive its reader closing stdout or stderr (`| head`: EPIPE): the stream's error
 * is not thrown, and writeLocal reports the stream gone instead.
 */
export function tolerateClosedOutput(): void {
  for (const stream of [process.stdout, process.stderr]) if (stream.listenerCount('error') === 0) stream.on('error', () => undefined);
}

/** The stream can take no more: its reader went away (EPIPE) or it was otherwise closed. */
function gone(stream: NodeJS.WritableStream & { destroyed: boolean; errored: Error | null }): boolean {
  return stream.destroyed || stream.errored !== null;
}

/**
 * Writes `chunk` to a local output stream honouring backpressure (waits for `drain`), so a slow
 * reader slows the producer down. Resolves false once the stream is gone, so the caller stops.
 */
export async function writeLocal(stream: NodeJS.WriteStream, chunk: Uint8Array | string): Promise<boolean> {
  if (gone(stream)) return false;
  try {
    if (!stream.write(chunk)) await Promise.race([once(stream, 'drain'), once(stream, 'close')]);
  } catch (error) {
    // The EPIPE can reach us before the stream records it as its error.
    if ((error as NodeJS.ErrnoException).code === 'EPIPE') return false;
    if (!gone(stream)) throw error;
  }
  return !gone(stream);
}
