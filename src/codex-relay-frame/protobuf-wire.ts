/**
 * The few pieces of the protobuf binary encoding the codex relay frame uses: varints (uint32 fields,
 * tags, lengths) and length-delimited fields (strings, bytes, embedded messages), written as prost
 * writes them. Hand-written because the frame needs only these, and every path is tested
 * (test/unit/src/codex-relay-frame/). The reader never reads past its buffer; a malformed input makes
 * it throw {@link ProtobufWireError}, which the frame decoder turns into a result (it never throws).
 */

/** Wire types this encoding knows. Groups (3, 4) are refused. */
export const WIRE_TYPE = { varint: 0, fixed64: 1, lengthDelimited: 2, fixed32: 5 } as const;

/** Longest varint (a uint64 takes at most 10 bytes). */
const MAX_VARINT_BYTES = 10;

/** Malformed protobuf input (truncated, over-long varint, bad tag or wire type). */
export class ProtobufWireError extends Error {
  override readonly name = 'ProtobufWireError';
}

/** One field's key. */
export interface FieldKey {
  readonly field: number;
  readonly wireType: number;
}

/** Reads fields from one message's bytes. */
export class ProtobufReader {
  #offset = 0;

  constructor(private readonly bytes: Uint8Array) {}

  get done(): boolean {
    return this.#offset >= this.bytes.length;
  }

  /** The next field key. Field 0 and the group wire types are malformed. */
  key(): FieldKey {
    const { low, high } = this.#varint();
    if (high) throw new ProtobufWireError('field key out of range');
    const field = low >>> 3;
    const wireType = low & 7;
    if (field === 0) throw new ProtobufWireError('field number 0');
    if (wireType !== 0 && wireType !== 1 && wireType !== 2 && wireType !== 5) throw new ProtobufWireError(`wire type ${wireType}`);
    return { field, wireType };
  }

  /** A varint as uint32: the low 32 bits, as prost truncates a uint32 field. */
  uint32(): number {
    return this.#varint().low;
  }

  /** A length-delimited field's bytes (a view of the input). */
  lengthDelimited(): Uint8Array {
    const { low: length, high } = this.#varint();
    if (high || length > this.bytes.length - this.#offset) throw new ProtobufWireError('length-delimited field runs past the end');
    const value = this.bytes.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    return value;
  }

  /** Skips a field of an unknown number. */
  skip(wireType: number): void {
    switch (wireType) {
      case WIRE_TYPE.varint:
        this.#varint();
        return;
      case WIRE_TYPE.fixed64:
        this.#advance(8);
        return;
      case WIRE_TYPE.lengthDelimited:
        this.lengthDelimited();
        return;
      case WIRE_TYPE.fixed32:
        this.#advance(4);
        return;
      default:
        throw new ProtobufWireError(`wire type ${wireType}`);
    }
  }

  #advance(count: number): void {
    if (count > this.bytes.length - this.#offset) throw new ProtobufWireError('fixed-size field runs past the end');
    this.#offset += count;
  }

  /** `low`: bits 0..31; `high`: whether any bit above 31 is set. */
  #varint(): { low: number; high: boolean } {
    let low = 0;
    let high = false;
    for (let index = 0; index < MAX_VARINT_BYTES; index++) {
      if (this.#offset >= this.bytes.length) throw new ProtobufWireError('truncated varint');
      const byte = this.bytes[this.#offset++]!;
      const bits = byte & 0x7f;
      if (index < 4) low += bits * 2 ** (7 * index);
      else if (index === 4) {
        low += (bits & 0x0f) * 2 ** 28;
        if (bits >> 4 !== 0) high = true;
      } else if (bits !== 0) high = true;
      if (index === MAX_VARINT_BYTES - 1 && byte > 1) throw new ProtobufWireError('varint overflows 64 bits');
      if ((byte & 0x80) === 0) return { low: low >>> 0, high };
    }
    throw new ProtobufWireError('varint longer than 10 bytes');
  }
}

/** Appends fields to one message. */
export class ProtobufWriter {
  readonly #chunks: Uint8Array[] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  /** A uint32 field; omitted when 0 (proto3 default), as prost does. */
  uint32(field: number, value: number): this {
    if (value === 0) return this;
    this.#varint((field << 3) | WIRE_TYPE.varint);
    this.#varint(value);
    return this;
  }

  /** A bytes / string / embedded-message field (always written, even when empty). */
  lengthDelimited(field: number, value: Uint8Array): this {
    this.#varint((field << 3) | WIRE_TYPE.lengthDelimited);
    this.#varint(value.length);
    this.#push(value);
    return this;
  }

  /** A bytes / string field; omitted when empty (proto3 default). */
  nonEmptyBytes(field: number, value: Uint8Array): this {
    return value.length === 0 ? this : this.lengthDelimited(field, value);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let offset = 0;
    for (const chunk of this.#chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }

  #varint(value: number): void {
    const bytes: number[] = [];
    let rest = value >>> 0;
    while (rest >= 0x80) {
      bytes.push((rest & 0x7f) | 0x80);
      rest >>>= 7;
    }
    bytes.push(rest);
    this.#push(Uint8Array.from(bytes));
  }

  #push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }
}
