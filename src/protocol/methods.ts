/** Every method and notification name on the exec protocol wire. Defined here and nowhere else. */

/** The session and `process/*` methods. */
export const Method = {
  Initialize: 'initialize',
  ProcessStart: 'process/start',
  ProcessRead: 'process/read',
  ProcessWrite: 'process/write',
  ProcessSignal: 'process/signal',
  ProcessTerminate: 'process/terminate',
  /** execrelay extension, offered as the `ptyResize` capability of `initialize`: resize a tty process's terminal. */
  ProcessResizePty: 'process/resizePty',
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

/** The `fs/*` method family (shapes follow the codex exec-server 0.169.0; schemas in fs.ts). */
export const FsMethod = {
  ReadFile: 'fs/readFile',
  WriteFile: 'fs/writeFile',
  CreateDirectory: 'fs/createDirectory',
  GetMetadata: 'fs/getMetadata',
  ReadDirectory: 'fs/readDirectory',
  Remove: 'fs/remove',
  Copy: 'fs/copy',
  Walk: 'fs/walk',
  Open: 'fs/open',
  ReadBlock: 'fs/readBlock',
  Close: 'fs/close',
  /**
   * execrelay extensions, offered as the `fileTransfer` capability of `initialize`: a streaming,
   * atomic write (a temporary file renamed over the target at commit) and a file's mode and mtime.
   */
  OpenWrite: 'fs/openWrite',
  WriteBlock: 'fs/writeBlock',
  CommitWrite: 'fs/commitWrite',
  GetAttributes: 'fs/getAttributes',
  SetAttributes: 'fs/setAttributes',
} as const;
export type FsMethodName = (typeof FsMethod)[keyof typeof FsMethod];

/** The `http/*` method family (schemas in http.ts). */
export const HttpMethod = {
  Request: 'http/request',
  /** execrelay extension: grant flow-control credit for a streamed body (bytes consumed so far). */
  Ack: 'http/request/ack',
  /** execrelay extension: abandon an active request; the agent aborts the upstream exchange. */
  Cancel: 'http/request/cancel',
} as const;
export type HttpMethodName = (typeof HttpMethod)[keyof typeof HttpMethod];

/** Notifications the agent pushes for `http/request {streamResponse: true}`. */
export const HttpNotification = {
  BodyDelta: 'http/request/bodyDelta',
} as const;
