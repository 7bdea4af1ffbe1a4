import { ErrorCode, RpcError } from '../src/protocol/error-codes.js';
import { Method } from '../src/protocol/methods.js';
import {
  DEFAULT_READ_MAX_BYTES,
  MAX_READ_WAIT_MS,
  ProcessReadParams,
  ProcessResizePtyParams,
  ProcessSignalParams,
  ProcessStartParams,
  ProcessTerminateParams,
  ProcessWriteParams,
  type ProcessReadResultWire,
} from '../src/protocol/process.js';
import { parseOrThrow } from '../src/protocol/validation.js';
import type { HandlerContext, HandlerTable } from './handler-table.js';
import { toFsRpcError } from './fs-errors.js';
import { ManagedProcess } from './managed-process.js';
import { confinementFor } from './root-confinement.js';
import { base64ResponseBytes } from './response-budget.js';

function lookup(context: HandlerContext, processId: string): ManagedProcess {
  const proc = context.session.processes.get(processId);
  if (!proc) throw new RpcError(ErrorCode.NotFound, `unknown process: ${processId}`);
  return proc;
}

async function start(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const params = parseOrThrow(ProcessStartParams, rawParams);
  const { session, config } = context;
  // With --root configured the working directory must resolve (symlinks followed) inside a root.
  // Before the duplicate check, so the check and the reservation below stay in one synchronous step.
  try {
    params.cwd = await confinementFor(config).resolve(params.cwd, { access: 'read', follow: true });
  } catch (error) {
    throw toFsRpcError(error);
  }
  if (session.processes.has(params.processId) || session.starting.has(params.processId)) {
    throw new RpcError(ErrorCode.InvalidRequest, `duplicate processId: ${params.processId}`);
  }
  if (session.processes.size + session.starting.size >= session.limits.maxProcesses) {
    throw new RpcError(ErrorCode.InvalidRequest, `too many processes in this session (limit ${session.limits.maxProcesses})`);
  }
  session.starting.add(params.processId);
  const observed = context.telemetry?.processStarting();
  const audited = context.auditProcess?.(params);
  try {
    const proc = await ManagedProcess.start(params, {
      retainedOutputBytes: config.retainedOutputBytes,
      terminateGraceMs: config.terminateGraceMs,
      onEvent: audited
        ? (event) => {
            audited.observe(event);
            session.push(params.processId, event);
          }
        : (event) => session.push(params.processId, event),
      outputInFlight: () => session.outputInFlight,
      onFinished: observed?.onFinished,
    }).catch((error: unknown) => {
      audited?.failed(error);
      throw error;
    });
    if (session.ended) {
      // The session ended (expired, or the agent shut down) while the process started: it ran
      // already, so it is killed here rather than kept by a session nothing can reach.
      proc.kill();
      const ended = new RpcError(ErrorCode.Internal, 'the session ended while the process was starting');
      audited?.failed(ended);
      throw ended;
    }
    audited?.started();
    observed?.started();
    session.processes.set(params.processId, proc);
    if (session.isOutputPaused) proc.pauseOutput();
  } finally {
    session.starting.delete(params.processId);
  }
  return { processId: params.processId };
}

async function read(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const params = parseOrThrow(ProcessReadParams, rawParams);
  const proc = lookup(context, params.processId);
  const afterSeq = params.afterSeq ?? 0;
  const maxBytes = Math.min(params.maxBytes ?? DEFAULT_READ_MAX_BYTES, 4 * DEFAULT_READ_MAX_BYTES);
  const waitMs = Math.min(params.waitMs ?? 0, MAX_READ_WAIT_MS);
  await proc.waitForEvent(afterSeq, waitMs, context.detachSignal);
  if (context.detachSignal.aborted) {
    throw new RpcError(ErrorCode.InvalidRequest, `read aborted: ${String(context.detachSignal.reason ?? 'session detached')}`);
  }
  const snapshot = proc.read(afterSeq, maxBytes);
  // The chunks are already retained; what grows the heap is their base64 text and the message.
  await context.admitResponseBytes?.(snapshot.chunks.reduce((sum, c) => sum + base64ResponseBytes(c.chunk.length, 64), 256));
  const result: ProcessReadResultWire = {
    chunks: snapshot.chunks.map((c) => ({ seq: c.seq, stream: c.stream, chunk: c.chunk.toString('base64') })),
    nextSeq: snapshot.nextSeq,
    exited: snapshot.exited,
    exitCode: snapshot.exitCode,
    closed: snapshot.closed,
    failure: snapshot.failure,
  };
  if (!context.config.omitSandboxDenied) result.sandboxDenied = snapshot.sandboxDenied;
  if (snapshot.evictedThroughSeq !== null) result.evictedThroughSeq = snapshot.evictedThroughSeq;
  return result;
}

async function write(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const params = parseOrThrow(ProcessWriteParams, rawParams);
  const proc = context.session.processes.get(params.processId);
  if (!proc) {
    if (context.session.starting.has(params.processId)) return { status: 'starting' };
    throw new RpcError(ErrorCode.NotFound, `unknown process: ${params.processId}`);
  }
  if (!proc.tty && !proc.pipeStdin) {
    throw new RpcError(ErrorCode.InvalidRequest, `process ${params.processId} was started without pipeStdin or tty; stdin is not writable`);
  }
  return { status: proc.write(params.chunk, params.writeId, params.closeStdin) };
}

async function signal(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const params = parseOrThrow(ProcessSignalParams, rawParams);
  lookup(context, params.processId).signal(params.signal);
  return {};
}

async function resizePty(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const params = parseOrThrow(ProcessResizePtyParams, rawParams);
  if (!lookup(context, params.processId).resize({ cols: params.cols, rows: params.rows })) {
    throw new RpcError(ErrorCode.InvalidRequest, `process ${params.processId} was started without tty; it has no terminal to resize`);
  }
  return {};
}

async function terminate(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const params = parseOrThrow(ProcessTerminateParams, rawParams);
  const proc = context.session.processes.get(params.processId);
  return { running: proc ? proc.terminate() : false };
}

/** The `process/*` family. */
export const processHandlers: HandlerTable = {
  [Method.ProcessStart]: start,
  [Method.ProcessRead]: read,
  [Method.ProcessWrite]: write,
  [Method.ProcessSignal]: signal,
  [Method.ProcessTerminate]: terminate,
  [Method.ProcessResizePty]: resizePty,
};
