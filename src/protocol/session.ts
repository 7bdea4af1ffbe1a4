import { z } from 'zod';

/**
 * What a client asks for at `initialize` (execrelay extension; a codex client sends none).
 * `binaryOutput`: `process/output` as raw bytes (`src/protocol/binary-output.ts`).
 */
export const ClientCapabilities = z.object({
  binaryOutput: z.boolean().optional(),
});
export type ClientCapabilities = z.output<typeof ClientCapabilities>;

/** `initialize` params. `resumeSessionId` re-attaches a detached session and its processes. */
export const InitializeParams = z.object({
  clientName: z.string().max(256, 'longer than 256 characters'),
  resumeSessionId: z.string().min(1).max(256).nullish(),
  capabilities: ClientCapabilities.nullish(),
});
export type InitializeParams = z.output<typeof InitializeParams>;

/**
 * What an agent offers beyond the codex exec-server (execrelay extension; a codex peer sends none,
 * so every capability is absent = not offered). `ptyResize`: `process/start {ptySize}` and
 * `process/resizePty`. `fileTransfer`: `fs/openWrite`, `fs/writeBlock`, `fs/commitWrite`,
 * `fs/getAttributes` and `fs/setAttributes` (streaming writes of any size, modes and mtimes).
 * `binaryOutput`: `process/output` as raw bytes (`src/protocol/binary-output.ts`) from here on; offered
 * only to a client that asked for it in `initialize {capabilities}` and only on transports that carry
 * binary messages (WebSocket, Noise; not stdio).
 */
export const SessionCapabilities = z.object({
  ptyResize: z.boolean().optional(),
  fileTransfer: z.boolean().optional(),
  binaryOutput: z.boolean().optional(),
});
export type SessionCapabilities = z.output<typeof SessionCapabilities>;

export const InitializeResult = z.object({
  sessionId: z.string(),
  capabilities: SessionCapabilities.nullish(),
});
export type InitializeResult = z.output<typeof InitializeResult>;

