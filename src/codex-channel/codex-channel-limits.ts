/**
 * The limits of JSON-RPC over a codex Noise stream (protocol notes §8), defined here and nowhere
 * else. The whole-message cap is `DEFAULT_MAX_MESSAGE_BYTES` (64 MiB, `src/transport/message-transport.ts`).
 */

/** Plaintext bytes of one Noise record (one Data frame): 60 KiB, as codex cuts its byte stream. */
export const CODEX_RECORD_PLAINTEXT_BYTES = 61_440;
/** Bytes of a message's length prefix (big-endian). */
export const CODEX_MESSAGE_LENGTH_PREFIX_BYTES = 4;
/** A Data frame at most this many seqs ahead of the next expected one is held; further ahead resets the stream. */
export const CODEX_REORDER_WINDOW_FRAMES = 64;
/** Bytes of Data frames held for reordering, at most. */
export const CODEX_REORDER_BUFFER_BYTES = 1024 * 1024;
/**
 * While Data frames are held behind a missing seq, the stream must move on in order within this
 * long (the missing frame arrives); else the frame is taken as lost (0.169.0 resends nothing) and
 * the stream is reset (`frame-lost`), so the client recovers as for a dropped link.
 */
export const CODEX_MISSING_FRAME_TIMEOUT_MS = 2_000;
/** The reset reason our client sends when it ends a stream (codex requires a non-empty one). */
export const CODEX_CLIENT_CLOSED_RESET_REASON = 'client_closed';
/** The reset reason our client sends when the executor broke the stream's protocol. */
export const CODEX_PROTOCOL_ERROR_RESET_REASON = 'noise_relay_protocol_error';
/** The reset reason our executor (`agent --wire codex`) sends when it ends a stream. */
export const CODEX_EXECUTOR_CLOSED_RESET_REASON = 'executor_closed';
/** Streams one codex executor serves at once on its socket (codex 0.169.0's limit, enforced by our executor too). */
export const CODEX_EXECUTOR_MAX_STREAMS = 128;
/** Handshakes one codex executor holds at once while the relay validates them (codex 0.169.0's limit). */
export const CODEX_EXECUTOR_MAX_PENDING_HANDSHAKES = 32;
/** Bound on the executor's `/validate` call; no answer by then resets the handshake (as codex: 10 s). */
export const CODEX_VALIDATION_TIMEOUT_MS = 10_000;
