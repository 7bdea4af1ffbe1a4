import { z } from 'zod';

/** `initialize` params. `resumeSessionId` re-attaches a detached session and its processes. */
export const InitializeParams = z.object({
  clientName: z.string().max(256, 'longer than 256 characters'),
  resumeSessionId: z.string().min(1).max(256).nullish(),
});
export type InitializeParams = z.output<typeof InitializeParams>;

export const InitializeResult = z.object({
  sessionId: z.string(),
});
export type InitializeResult = z.output<typeof InitializeResult>;
