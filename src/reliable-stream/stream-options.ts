/** Configuration of a reliable stream, its defaults and their validation. */
import { MAX_SEGMENT_COUNT, MAX_SEGMENT_PAYLOAD_BYTES } from '../relay-frame/limits.js';
import { systemClock, type StreamClock } from './stream-clock.js';

export interface ReliableStreamOptions {
  /** The stream id (UUID string). */
  readonly streamId: string;
  /**
   * 'initiator' sends `open` (with `openPayload`) when first attached and repeats it on every
   * retransmission timeout and re-attach until any frame from the peer arrives. Default
   * 'responder'.
   */
  readonly role?: 'initiator' | 'responder';
  /** Payload of the `open` frame (initiator only, ≤ 1,024 bytes). */
  readonly openPayload?: Uint8Array;
  /** Largest payload per data segment. Default and maximum 65,536. */
  readonly maxSegmentPayload?: number;
  /** Largest message `send` accepts, and the largest the peer may send. Default 1 MiB. */
  readonly maxMessageBytes?: number;
  /** Unacknowledged payload bytes this side may hold; `send` waits beyond. Default 1 MiB. */
  readonly sendWindowBytes?: number;
  /** Unacknowledged data segments this side may hold. Default 256. */
  readonly sendWindowSegments?: number;
  /** Budget for received in-order data not yet consumed or reassembled. Default 1 MiB. */
  readonly receiveWindowBytes?: number;
  /** Budget for segments received out of order. Default 1 MiB. */
  readonly reorderBufferBytes?: number;
  /** Out-of-order segments are kept only below the next expected seq + this. Default 256. */
  readonly receiveWindowSegments?: number;
  /** First retransmission timeout. Default 1,000 ms. */
  readonly initialRtoMs?: number;
  /** Retransmission timeout ceiling; the timeout doubles on each expiry up to it. Default 10,000 ms. */
  readonly maxRtoMs?: number;
  /** A standalone `ack` goes out after this long with nothing else to send. Default 20 ms. */
  readonly ackDelayMs?: number;
  /** A close handshake not done within this long resets the stream. Default 30,000 ms. */
  readonly closeTimeoutMs?: number;
  /** Time source; default the system clock with unref'd timers. */
  readonly clock?: StreamClock;
}

/** Options with every default applied. */
export type ResolvedStreamOptions = Required<Omit<ReliableStreamOptions, 'openPayload'>> & {
  readonly openPayload: Uint8Array;
};

/** The defaults, shared by both ends so that their windows match. */
export const DEFAULT_STREAM_OPTIONS = {
  maxSegmentPayload: MAX_SEGMENT_PAYLOAD_BYTES,
  maxMessageBytes: 1024 * 1024,
  sendWindowBytes: 1024 * 1024,
  sendWindowSegments: 256,
  receiveWindowBytes: 1024 * 1024,
  reorderBufferBytes: 1024 * 1024,
  receiveWindowSegments: 256,
  initialRtoMs: 1_000,
  maxRtoMs: 10_000,
  ackDelayMs: 20,
  closeTimeoutMs: 30_000,
} as const;

function positiveInteger(name: string, value: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new RangeError(`ReliableStream option ${name} must be an integer in [1, ${max}], got ${value}`);
  }
  return value;
}

/** Applies defaults and checks consistency. Throws RangeError on an invalid combination. */
export function resolveStreamOptions(options: ReliableStreamOptions): ResolvedStreamOptions {
  const d = DEFAULT_STREAM_OPTIONS;
  const resolved: ResolvedStreamOptions = {
    streamId: options.streamId,
    role: options.role ?? 'responder',
    openPayload: options.openPayload ?? new Uint8Array(0),
    maxSegmentPayload: positiveInteger('maxSegmentPayload', options.maxSegmentPayload ?? d.maxSegmentPayload, MAX_SEGMENT_PAYLOAD_BYTES),
    maxMessageBytes: positiveInteger('maxMessageBytes', options.maxMessageBytes ?? d.maxMessageBytes),
    sendWindowBytes: positiveInteger('sendWindowBytes', options.sendWindowBytes ?? d.sendWindowBytes),
    sendWindowSegments: positiveInteger('sendWindowSegments', options.sendWindowSegments ?? d.sendWindowSegments),
    receiveWindowBytes: positiveInteger('receiveWindowBytes', options.receiveWindowBytes ?? d.receiveWindowBytes),
    reorderBufferBytes: positiveInteger('reorderBufferBytes', options.reorderBufferBytes ?? d.reorderBufferBytes),
    receiveWindowSegments: positiveInteger('receiveWindowSegments', options.receiveWindowSegments ?? d.receiveWindowSegments),
    initialRtoMs: positiveInteger('initialRtoMs', options.initialRtoMs ?? d.initialRtoMs),
    maxRtoMs: positiveInteger('maxRtoMs', options.maxRtoMs ?? d.maxRtoMs),
    ackDelayMs: positiveInteger('ackDelayMs', options.ackDelayMs ?? d.ackDelayMs),
    closeTimeoutMs: positiveInteger('closeTimeoutMs', options.closeTimeoutMs ?? d.closeTimeoutMs),
    clock: options.clock ?? systemClock,
  };
  const segmentsPerMessage = Math.ceil(resolved.maxMessageBytes / resolved.maxSegmentPayload);
  if (resolved.maxMessageBytes > resolved.sendWindowBytes || resolved.maxMessageBytes > resolved.receiveWindowBytes) {
    throw new RangeError('ReliableStream: maxMessageBytes must not exceed sendWindowBytes or receiveWindowBytes');
  }
  if (segmentsPerMessage > resolved.sendWindowSegments || segmentsPerMessage > MAX_SEGMENT_COUNT) {
    throw new RangeError('ReliableStream: a maxMessageBytes message needs more segments than sendWindowSegments allows');
  }
  if (resolved.maxRtoMs < resolved.initialRtoMs) {
    throw new RangeError('ReliableStream: maxRtoMs must be at least initialRtoMs');
  }
  return resolved;
}
