import { z } from 'zod';

/**
 * What an older execrelay client asked for in `initialize {capabilities}` (before the agent offered
 * extensions first). Still honoured, so those clients keep the binary output path; today's client
 * sends none and takes extensions up in `initialized` ({@link InitializedParams}). A codex client
 * sends none.
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
 * `binaryOutput` (`process/output` as raw bytes) and `binaryFileBlocks` (`fs/writeBlock` requests
 * and `fs/readBlock` results as raw bytes), both `src/protocol/binary-message.ts`: offered only on
 * transports that carry binary messages (WebSocket, Noise; not stdio), and used only once the client
 * took them up in `initialized` ({@link InitializedParams}).
 */
export const SessionCapabilities = z.object({
  ptyResize: z.boolean().optional(),
  fileTransfer: z.boolean().optional(),
  binaryOutput: z.boolean().optional(),
  binaryFileBlocks: z.boolean().optional(),
});
export type SessionCapabilities = z.output<typeof SessionCapabilities>;

export const InitializeResult = z.object({
  sessionId: z.string(),
  capabilities: SessionCapabilities.nullish(),
});
export type InitializeResult = z.output<typeof InitializeResult>;

/**
 * `initialized` params (execrelay extension): the offered binary paths the client takes up, from
 * this message on. A client sends them only to an agent that offered them, so a codex server gets
 * `initialized {}` as before; a codex client sends none (or nothing), which takes nothing up. Any
 * other shape is ignored, as the codex exec-server ignores these params.
 */
export const InitializedParams = z.object({
  binaryOutput: z.boolean().optional(),
  binaryFileBlocks: z.boolean().optional(),
});
export type InitializedParams = z.output<typeof InitializedParams>;
