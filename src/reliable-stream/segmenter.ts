/**
 * Segmentation: a message larger than one segment travels as consecutive seqs
 * `start .. start + segmentCount - 1`, segment i at seq `start + i`, so a receiver finds the
 * message start of any segment as `seq - segmentIndex`.
 */

/** Number of segments a message of `byteLength` bytes needs (an empty message is one segment). */
export function segmentCountFor(byteLength: number, maxSegmentPayload: number): number {
  return byteLength === 0 ? 1 : Math.ceil(byteLength / maxSegmentPayload);
}

/**
 * Splits `message` into views (no copy) of at most `maxSegmentPayload` bytes each, in order.
 * An empty message yields one empty segment; a message that fits one segment is returned as is.
 */
export function segmentMessage(message: Uint8Array, maxSegmentPayload: number): Uint8Array[] {
  // One segment: the message itself (not a new view), so a payload from allocateDataPayload keeps
  // its identity and is framed without a copy.
  if (message.length <= maxSegmentPayload) return [message];
  const count = segmentCountFor(message.length, maxSegmentPayload);
  const segments = new Array<Uint8Array>(count);
  for (let i = 0; i < count; i++) {
    segments[i] = message.subarray(i * maxSegmentPayload, Math.min(message.length, (i + 1) * maxSegmentPayload));
  }
  return segments;
}

/** Joins received segment payloads into one message; a single segment is returned as is. */
export function joinSegments(parts: readonly Uint8Array[], totalBytes: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const message = new Uint8Array(totalBytes);
  let offset = 0;
  for (const part of parts) {
    message.set(part, offset);
    offset += part.length;
  }
  return message;
}
