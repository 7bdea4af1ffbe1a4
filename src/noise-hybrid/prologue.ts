/**
 * The handshake prologue that binds a hybrid IK handshake to one environment, registration and relay
 * stream: four parts, each an 8-byte big-endian length then its UTF-8 bytes — the label
 * `codex-exec-server-relay-noise/v1`, environment id, executor registration id, stream id. A
 * handshake whose two sides disagree on any part fails at the first authenticated field.
 */
import { HYBRID_PROLOGUE_LABEL, PROLOGUE_LENGTH_PREFIX_BYTES } from './suite.js';

/** What the prologue binds. */
export interface HybridPrologueContext {
  readonly environmentId: string;
  readonly executorRegistrationId: string;
  readonly streamId: string;
}

/** The prologue bytes for `context`. */
export function hybridPrologue(context: HybridPrologueContext): Buffer {
  const parts = [HYBRID_PROLOGUE_LABEL, context.environmentId, context.executorRegistrationId, context.streamId];
  return Buffer.concat(
    parts.flatMap((part) => {
      const bytes = Buffer.from(part, 'utf8');
      const length = Buffer.alloc(PROLOGUE_LENGTH_PREFIX_BYTES);
      length.writeBigUInt64BE(BigInt(bytes.length));
      return [length, bytes];
    }),
  );
}
