/**
 * Hard limits of the relay frame format (layer 2). Both the encoder and the strict decoder enforce
 * them, so anything that decodes is within them. The reliable stream (layer 3) derives its defaults
 * from these.
 */

/** The frame format version this code speaks. A frame with any other version is refused. */
export const RELAY_FRAME_VERSION = 1;

/**
 * Largest frame, in bytes, that is produced or accepted: the reference WebSocket frame limit
 * (256 KiB). Every valid frame is far smaller (see {@link MAX_DATA_FRAME_BYTES}); the check exists
 * so that a decoder never works on an oversized input.
 */
export const MAX_RELAY_FRAME_BYTES = 256 * 1024;

/**
 * Largest `data` payload (one segment): 64 KiB. A Noise transport message (at most 65,535 bytes)
 * therefore always travels as a single segment, and a full data frame (65,574 bytes) stays at a
 * quarter of {@link MAX_RELAY_FRAME_BYTES}.
 */
export const MAX_SEGMENT_PAYLOAD_BYTES = 64 * 1024;

/** Largest number of segments of one message (`segmentCount` is a u16). */
export const MAX_SEGMENT_COUNT = 0xffff;

/** Largest `open` payload, in bytes. `open` carries at most a small hint; it is not a data path. */
export const MAX_OPEN_PAYLOAD_BYTES = 1024;

/** Largest `reset` reason, in UTF-8 bytes. */
export const MAX_RESET_REASON_BYTES = 256;

/**
 * Largest sequence number. Seqs are u32 on the wire, but the header carries `ack + 1` as a u32
 * (0 meaning "nothing received yet"), so the top value 0xFFFF_FFFF is reserved.
 */
export const MAX_SEQ = 0xffff_fffe;

/** The `ack` value that means "no peer seq received yet" (encoded on the wire as 0). */
export const NO_ACK = -1;

/** Number of seqs after `ack` that `ackBits` can acknowledge selectively (it is a u32). */
export const ACK_BITS_WIDTH = 32;

/** Size of the header shared by every frame, in bytes. */
export const FRAME_HEADER_BYTES = 26;

/** Size of the fixed part of a `data` body (seq, segmentIndex, segmentCount, payloadLength). */
export const DATA_BODY_FIXED_BYTES = 12;

/** Size of the largest valid `data` frame. */
export const MAX_DATA_FRAME_BYTES = FRAME_HEADER_BYTES + DATA_BODY_FIXED_BYTES + MAX_SEGMENT_PAYLOAD_BYTES;
