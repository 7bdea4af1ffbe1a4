/**
 * A request handler's result that goes out as one binary message of the transport instead of a
 * JSON response (a negotiated binary path: the `fs/readBlock` result of `binaryFileBlocks`,
 * `src/protocol/binary-message.ts`). `encode` builds the message for the request's id; `json` is the
 * same result as JSON, sent where no binary message can carry it (a string id, an id above 2^53 - 1,
 * a transport without binary messages), so the answer is never lost.
 */
export class BinaryResponse {
  constructor(
    readonly encode: (id: number) => Uint8Array | undefined,
    readonly json: () => unknown,
  ) {}
}
