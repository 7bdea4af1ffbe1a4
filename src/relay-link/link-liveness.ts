import WebSocket from 'ws';

/** WebSocket keepalive of an endpoint's relay link (the codex relay's reference values). */
export interface LivenessOptions {
  /** A ping goes out this often. */
  pingIntervalMs: number;
  /** A link whose pongs (answers to its own pings) stopped for this long is declared dead. */
  pongTimeoutMs: number;
}

export const DEFAULT_LIVENESS: LivenessOptions = { pingIntervalMs: 30_000, pongTimeoutMs: 60_000 };

/**
 * Pings `socket` every `pingIntervalMs` and terminates it when no pong came back for
 * `pongTimeoutMs`: a half-open link (a NAT that dropped its mapping, a relay host that vanished)
 * then closes locally and the owner's close handler reconnects. Only pongs count: they prove the
 * round trip. Messages from the relay would not — when only this side's sends are lost, the
 * relay's traffic keeps arriving while nothing this side sends gets through. Returns a function
 * that stops watching (also stopped by the socket's close).
 */
export function watchLinkLiveness(socket: WebSocket, options: LivenessOptions, onDead: () => void): () => void {
  let lastHeard = Date.now();
  const heard = () => {
    lastHeard = Date.now();
  };
  socket.on('pong', heard);
  const check = Math.max(10, Math.min(options.pingIntervalMs, Math.floor(options.pongTimeoutMs / 2)));
  const timer = setInterval(() => {
    if (socket.readyState !== WebSocket.OPEN) return;
    if (Date.now() - lastHeard >= options.pongTimeoutMs) {
      stop();
      onDead();
      socket.terminate();
      return;
    }
    try {
      socket.ping();
    } catch {
      /* closing */
    }
  }, check);
  timer.unref();
  const stop = () => {
    clearInterval(timer);
    socket.off('pong', heard);
  };
  socket.once('close', stop);
  return stop;
}
