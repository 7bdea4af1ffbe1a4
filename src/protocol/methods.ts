/** Every method and notification name on the exec protocol wire. Defined here and nowhere else. */
export const Method = {
  Initialize: 'initialize',
  ProcessStart: 'process/start',
  ProcessRead: 'process/read',
  ProcessWrite: 'process/write',
  ProcessSignal: 'process/signal',
  ProcessTerminate: 'process/terminate',
} as const;

/** Notifications the client sends to the agent. */
export const ClientNotification = {
  Initialized: 'initialized',
} as const;

/** Notifications the agent pushes to the client. */
export const ServerNotification = {
  ProcessOutput: 'process/output',
  ProcessExited: 'process/exited',
  ProcessClosed: 'process/closed',
} as const;

export type MethodName = (typeof Method)[keyof typeof Method];
export type ServerNotificationName = (typeof ServerNotification)[keyof typeof ServerNotification];
