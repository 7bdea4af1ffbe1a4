import { randomBytes } from 'node:crypto';
import path from 'node:path';

/**
 * A name for a temporary file next to `target` (same directory, so a rename onto `target` is
 * atomic): `.NAME.execrelay-RANDOM.tmp`.
 */
export function temporaryPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target).slice(0, 200)}.execrelay-${randomBytes(6).toString('hex')}.tmp`);
}
