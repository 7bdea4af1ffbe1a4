/**
 * Write coalescing per burst: the first frame sent on a WebSocket in one turn of the event loop
 * corks the TCP socket under it, and `process.nextTick` uncorks it, so every frame sent in that
 * turn (a burst of records, the frames routed out of one socket read) leaves in one `writev`
 * instead of one syscall each. Nothing waits longer than the turn that sent it.
 */
import type WebSocket from 'ws';

interface Corkable {
  cork(): void;
  uncork(): void;
}

const corked = new WeakSet<Corkable>();

function uncork(socket: Corkable): void {
  corked.delete(socket);
  socket.uncork();
}

/** Corks `ws`'s TCP socket until the end of this turn (once per turn; no-op for a socket-less stand-in). */
export function corkForThisTurn(ws: WebSocket | object): void {
  const socket = (ws as { _socket?: Partial<Corkable> })._socket;
  if (!socket || typeof socket.cork !== 'function' || typeof socket.uncork !== 'function') return;
  const tcp = socket as Corkable;
  if (corked.has(tcp)) return;
  corked.add(tcp);
  tcp.cork();
  process.nextTick(uncork, tcp);
}
