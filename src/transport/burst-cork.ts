/**
 * Write coalescing per burst: the first frame sent on a WebSocket in one turn of the event loop
 * corks the TCP socket under it, and `process.nextTick` uncorks it, so every frame sent in that
 * turn (a burst of records, the frames routed out of one socket read) leaves in one `writev`
 * instead of one syscall each. Nothing waits longer than the turn that sent it.
 *
 * `corkForThisIteration` holds the cork a little longer: until `setImmediate`, the check phase
 * right after this loop iteration's I/O callbacks, so the frames sent by every callback of one
 * poll phase (a pipe read, then the acks that free the send window, ...) leave in one `writev`.
 * Nothing waits for a timer or for more I/O.
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

function corkUntil(ws: WebSocket | object, schedule: (uncorkIt: (tcp: Corkable) => void, tcp: Corkable) => void): void {
  const socket = (ws as { _socket?: Partial<Corkable> })._socket;
  if (!socket || typeof socket.cork !== 'function' || typeof socket.uncork !== 'function') return;
  const tcp = socket as Corkable;
  if (corked.has(tcp)) return;
  corked.add(tcp);
  tcp.cork();
  schedule(uncork, tcp);
}

const untilNextTick = (uncorkIt: (tcp: Corkable) => void, tcp: Corkable): void => process.nextTick(uncorkIt, tcp);
const untilImmediate = (uncorkIt: (tcp: Corkable) => void, tcp: Corkable): void => {
  setImmediate(uncorkIt, tcp);
};

/** Corks `ws`'s TCP socket until the end of this turn (once per turn; no-op for a socket-less stand-in). */
export function corkForThisTurn(ws: WebSocket | object): void {
  corkUntil(ws, untilNextTick);
}

/** Corks `ws`'s TCP socket until the check phase of this event loop iteration (once; no-op for a socket-less stand-in). */
export function corkForThisIteration(ws: WebSocket | object): void {
  corkUntil(ws, untilImmediate);
}
