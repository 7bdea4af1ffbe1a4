import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { ErrorCode, RpcError } from '../src/protocol/error-codes.js';
import { HTTP_LIMITS, type HttpHeader, type RedirectPolicy } from '../src/protocol/http.js';
import { describeDestination, effectivePort, type AddressClass, type HttpDestinationPolicy } from './http-destination-policy.js';

/**
 * Request headers the agent never forwards: it frames the body itself (content-length from the
 * decoded body) and owns the connection, so hop-by-hop and framing headers from the caller would
 * only corrupt the exchange.
 */
const DROPPED_REQUEST_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'proxy-connection']);
/** Headers that describe a request body; dropped when a redirect turns the request into a GET. */
const BODY_HEADERS = new Set(['content-type', 'content-encoding', 'content-language', 'content-location']);
/** Credentials that must not follow a redirect to another origin (WHATWG fetch drops Authorization). */
const CROSS_ORIGIN_DROPPED = new Set(['authorization', 'proxy-authorization', 'cookie', 'host']);
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const BODYLESS_DEFAULT_METHODS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE']);

export interface UpstreamRequest {
  method: string;
  url: URL;
  headers: readonly HttpHeader[];
  body: Buffer;
  redirectPolicy: RedirectPolicy;
  signal: AbortSignal;
  policy: HttpDestinationPolicy;
  /** Resolves a host name to every address (default `dns.lookup` with `all: true`). */
  resolve?: HostResolver | undefined;
  /** Source address for the outgoing connection. */
  localAddress?: string | undefined;
  /** Called once per request sent (each redirect hop too). */
  onHop?: ((method: string, url: URL) => void) | undefined;
}

export interface UpstreamResponse {
  status: number;
  /** Names lower-cased, repeats kept, in the order received. */
  headers: Array<{ name: string; value: string }>;
  /** The URL that produced this response (after redirects). */
  url: URL;
  body: http.IncomingMessage;
}

/** Every address a host name resolves to; the agent connects only to addresses it got from here. */
export type HostResolver = (hostname: string) => Promise<LookupAddress[]>;

/** The OS resolver (`getaddrinfo`, so /etc/hosts and `localhost` count), every address. */
export const systemResolver: HostResolver = (hostname) => dnsLookup(hostname, { all: true });

/** A failure to exchange with the upstream server; the handler answers -32603 `http/request failed: ...`. */
export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
}

/** The URL without userinfo, for messages. */
export function redactUrl(url: URL): string {
  if (url.username === '' && url.password === '') return url.href;
  const copy = new URL(url.href);
  copy.username = '';
  copy.password = '';
  return copy.href;
}

/** Refusal by `--http-allow`: -32600, for the first URL and for any redirect hop. */
export function destinationRefused(url: URL, redirectedFrom?: URL): RpcError {
  const destination = describeDestination(url);
  const via = redirectedFrom ? ` (redirect from ${describeDestination(redirectedFrom)})` : '';
  return new RpcError(
    ErrorCode.InvalidRequest,
    `http/request refused: destination ${destination} is not allowed by this agent (--http-allow)${via}`,
    { reason: 'destinationNotAllowed', destination },
  );
}

/** Refusal of an address in a denied class (-32600), naming the class and how to allow it. */
export function destinationDenied(url: URL, address: string, addressClass: AddressClass, redirectedFrom?: URL): RpcError {
  const destination = describeDestination(url);
  const literal = isIP(url.hostname.replace(/^\[(.*)\]$/, '$1')) !== 0;
  const resolved = literal ? '' : `${url.hostname} resolves to ${address}; `;
  const shown = address.includes(':') ? `[${address}]` : address;
  const via = redirectedFrom ? ` (redirect from ${describeDestination(redirectedFrom)})` : '';
  return new RpcError(
    ErrorCode.InvalidRequest,
    `http/request to ${destination} refused: ${resolved}${addressClass} addresses are denied by default (allow with --http-allow ${shown}, a range holding it, or --http-allow-private)${via}`,
    { reason: 'destinationDenied', destination, address, addressClass },
  );
}

/** `promise`, or the signal's reason as soon as it aborts (a DNS lookup cannot be cancelled). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * The addresses one hop may connect to: the URL's address literal, or every address its name
 * resolves to (resolved once, here). Each is checked against the policy; one denied address
 * refuses the hop (a name that resolves partly to a private address is not trusted with it).
 */
async function checkedAddresses(url: URL, request: UpstreamRequest, redirectedFrom: URL | undefined): Promise<LookupAddress[]> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const family = isIP(host);
  const addresses =
    family !== 0 ? [{ address: host, family }] : await untilAborted((request.resolve ?? systemResolver)(host), request.signal);
  if (addresses.length === 0) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
  const port = effectivePort(url);
  for (const { address } of addresses) {
    const addressClass = request.policy.deniedClass(address, port);
    if (addressClass !== null) throw destinationDenied(url, address, addressClass, redirectedFrom);
  }
  return addresses;
}

/**
 * A `lookup` for `http.request` that answers with the addresses already checked, so the address
 * connected to is one that was checked (no second resolution: no DNS rebinding). TLS SNI and the
 * Host header stay the URL's name.
 */
function pinnedLookup(addresses: readonly LookupAddress[]): LookupFunction {
  return (hostname, options, callback) => {
    const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : options.family;
    const usable = family === 4 || family === 6 ? addresses.filter((a) => a.family === family) : [...addresses];
    // Answered asynchronously, as a real lookup is: http attaches its socket error listener only
    // after the connection was created, and a connect that fails at once must not beat it.
    setImmediate(() => {
      if (usable.length === 0) {
        callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), options.all ? [] : '');
      } else if (options.all) {
        callback(null, usable);
      } else {
        callback(null, usable[0]!.address, usable[0]!.family);
      }
    });
  };
}

/**
 * Sends the request and follows redirects (`follow`: up to 20, with WHATWG fetch's method and
 * header rules; `stop`: the 3xx is returned with its `location` untouched). Every hop is checked
 * against the destination policy (allowlist, then each resolved address) before anything is sent
 * to it, and connects only to the addresses checked. Resolves once the final
 * response's headers arrived; its body is left unread.
 */
export async function sendUpstream(request: UpstreamRequest): Promise<UpstreamResponse> {
  let method = request.method;
  let url = request.url;
  let body = request.body;
  let headers = request.headers.filter((h) => !DROPPED_REQUEST_HEADERS.has(h.name.toLowerCase()));
  let previous: URL | undefined;
  for (let hop = 0; ; hop++) {
    if (!request.policy.allows(url)) throw destinationRefused(url, previous);
    const addresses = await checkedAddresses(url, request, previous);
    request.onHop?.(method, url);
    const response = await sendOnce(method, url, headers, body, request.signal, request.localAddress, pinnedLookup(addresses));
    const status = response.statusCode ?? 0;
    const location = response.headers.location;
    if (request.redirectPolicy === 'stop' || !REDIRECT_STATUSES.has(status) || location === undefined) {
      return { status, headers: responseHeaders(response), url, body: response };
    }
    // Following: this response's body is not wanted, and the connection is not reused.
    response.destroy();
    if (hop >= HTTP_LIMITS.maxRedirects) throw new UpstreamError(`too many redirects (more than ${HTTP_LIMITS.maxRedirects})`);
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      throw new UpstreamError(`redirect location is not a valid URL: ${location.slice(0, 200)}`);
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new UpstreamError(`redirect to an unsupported scheme: ${next.protocol.replace(/:$/, '')}`);
    }
    if ((status === 303 && method !== 'GET' && method !== 'HEAD') || ((status === 301 || status === 302) && method === 'POST')) {
      method = 'GET';
      body = Buffer.alloc(0);
      headers = headers.filter((h) => !BODY_HEADERS.has(h.name.toLowerCase()));
    }
    if (next.origin !== url.origin) headers = headers.filter((h) => !CROSS_ORIGIN_DROPPED.has(h.name.toLowerCase()));
    previous = url;
    url = next;
  }
}

function responseHeaders(response: http.IncomingMessage): Array<{ name: string; value: string }> {
  const raw = response.rawHeaders;
  const headers: Array<{ name: string; value: string }> = [];
  for (let i = 0; i + 1 < raw.length; i += 2) headers.push({ name: raw[i]!.toLowerCase(), value: raw[i + 1]! });
  return headers;
}

function sendOnce(
  method: string,
  url: URL,
  headers: readonly HttpHeader[],
  body: Buffer,
  signal: AbortSignal,
  localAddress: string | undefined,
  lookup: LookupFunction,
): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const transport = url.protocol === 'https:' ? https : http;
    let req: http.ClientRequest;
    try {
      // `agent: false`: a fresh connection per request, closed after it, so aborting a request
      // always closes its socket and nothing idles in a pool.
      req = transport.request(url, { method, signal, agent: false, lookup, ...(localAddress ? { localAddress } : {}) }, resolve);
      const grouped = new Map<string, string[]>();
      for (const { name, value } of headers) {
        const key = name.toLowerCase();
        const values = grouped.get(key);
        if (values) values.push(value);
        else grouped.set(key, [value]);
      }
      for (const [name, values] of grouped) req.setHeader(name, values.length === 1 ? values[0]! : values);
      if (body.length > 0 || !BODYLESS_DEFAULT_METHODS.has(method)) req.setHeader('content-length', body.length);
    } catch (error) {
      reject(new UpstreamError((error as Error).message));
      return;
    }
    req.on('error', reject);
    req.end(body.length > 0 ? body : undefined);
  });
}
