import WebSocket from 'ws';
import { MAX_RELAY_FRAME_BYTES } from '../relay-frame/limits.js';
import { CODEX_REJECTION_REASON_HEADER } from '../codex-registry/registry-endpoints.js';
import { explainRefusal, REFUSAL_REASON_HEADER } from '../relay-control/relay-endpoints.js';
import { proxyAgent, ProxyRefusedError, proxyUrlHasCredentials, redactProxyUrl, type RelayProxy } from './relay-proxy.js';

/** Raised when the relay answers the upgrade with an HTTP error (bad token, unknown environment…). */
export class RelayRefusedError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
  ) {
    const explanation = explainRefusal(reason);
    super(`relay refused the connection: HTTP ${status} ${reason}${explanation ? ` (${explanation})` : ''}`);
    this.name = 'RelayRefusedError';
  }

  /** A refusal that will not change by retrying (bad token, bad id). */
  get permanent(): boolean {
    return this.status === 400 || this.status === 401 || this.status === 403;
  }
}


/**
 * Opens a WebSocket to the relay with a bearer token (none when `token` is '') (and `headers`, e.g. an executor's proof of
 * identity), tunnelled through `proxy` (HTTP CONNECT) when given; rejects with RelayRefusedError on
 * an HTTP refusal of the relay, ProxyRefusedError when the proxy refuses the CONNECT. The socket
 * comes back paused: attach listeners, then call `socket.resume()`.
 */
export function connectRelaySocket(
  url: string,
  token: string,
  timeoutMs: number,
  headers: Readonly<Record<string, string>> = {},
  proxy?: RelayProxy,
): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    // The proxy's answer to the CONNECT, when it was not 200 (its response then reaches the WebSocket).
    let proxyRefusal: ProxyRefusedError | undefined;
    const relayHost = (() => {
      try {
        return new URL(url).host;
      } catch {
        return url;
      }
    })();
    const agent = proxy
      ? proxyAgent(proxy, (status, statusText) => {
          if (status !== 200) proxyRefusal = new ProxyRefusedError(redactProxyUrl(proxy.url), status, statusText, relayHost, proxyUrlHasCredentials(proxy.url));
        })
      : undefined;
    const socket = new WebSocket(url, {
      // No token (''): the URL carries its own credential (a codex rendezvous URL).
      headers: token === '' ? { ...headers } : { ...headers, Authorization: `Bearer ${token}` },
      maxPayload: MAX_RELAY_FRAME_BYTES * 2,
      perMessageDeflate: false,
      handshakeTimeout: timeoutMs,
      ...(agent ? { agent } : {}),
    });
    socket.binaryType = 'nodebuffer';
    const fail = (error: Error) => {
      socket.removeAllListeners('open');
      reject(error);
    };
    socket.once('unexpected-response', (_req, res) => {
      const reason = String(res.headers[REFUSAL_REASON_HEADER.toLowerCase()] ?? res.headers[CODEX_REJECTION_REASON_HEADER] ?? res.statusMessage ?? 'refused');
      res.resume();
      socket.terminate();
      fail(proxyRefusal ?? new RelayRefusedError(res.statusCode ?? 0, reason));
    });
    const via = proxy ? ` through proxy ${redactProxyUrl(proxy.url)}` : '';
    socket.once('error', (error) => fail(proxyRefusal ?? new Error(`cannot connect to relay ${url}${via}: ${error.message}`)));
    socket.once('open', () => {
      // Paused until the caller has attached its listeners: the relay speaks first, and a message
      // arriving with the upgrade response would otherwise be emitted before anyone listens.
      socket.pause();
      socket.removeAllListeners('error');
      socket.on('error', () => undefined);
      resolve(socket);
    });
  });
}
