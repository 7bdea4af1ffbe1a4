/**
 * The spawner process (see `process-spawner.ts`): forks each requested child, hands its stdio
 * sockets to the agent over the IPC channel, reports its exit; ends when the agent disconnects.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import type { SpawnerReply, SpawnRequest } from './process-spawner.js';

function reply(message: SpawnerReply, handle?: Socket): void {
  if (!process.connected) return;
  if (handle) process.send!(message, handle);
  else process.send!(message);
}

function start(request: SpawnRequest): void {
  let child: ChildProcess;
  try {
    child = spawn(request.file, request.args, {
      cwd: request.cwd,
      env: request.env,
      argv0: request.argv0,
      detached: true,
      stdio: [request.pipeStdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      windowsHide: true,
    });
  } catch (error) {
    reply({ type: 'failed', id: request.id, code: (error as NodeJS.ErrnoException).code, message: (error as Error).message });
    return;
  }
  if (child.pid === undefined) {
    child.once('error', (error: NodeJS.ErrnoException) => reply({ type: 'failed', id: request.id, code: error.code, message: error.message }));
    return;
  }
  reply({ type: 'forked', id: request.id, pid: child.pid });
  child.on('error', () => {
    /* after a successful start (a failed kill): nothing to report */
  });
  // node started reading the sockets as it created them; a read here would drop output (a socket
  // being handed over reads into nothing). The reads happen only in the event loop's poll phase,
  // so stopping them now, before returning to it, leaves every byte in the kernel for the agent.
  for (const socket of [child.stdout, child.stderr]) (socket as unknown as { _handle?: { readStop(): number } })._handle?.readStop();
  reply({ type: 'stream', id: request.id, stream: 'stdout' }, child.stdout as Socket);
  reply({ type: 'stream', id: request.id, stream: 'stderr' }, child.stderr as Socket);
  if (child.stdin) reply({ type: 'stream', id: request.id, stream: 'stdin' }, child.stdin as Socket);
  reply({ type: 'spawned', id: request.id });
  child.on('exit', (code, signal) => reply({ type: 'exit', id: request.id, code, signal }));
}

process.on('message', (message: SpawnRequest) => {
  if (message?.type === 'spawn') start(message);
});
process.on('disconnect', () => process.exit(0));
