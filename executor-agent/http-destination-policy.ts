import { isIP } from 'node:net';

/**
 * One `--http-allow HOST[:PORT]` entry. `host` is canonical (lower-case name, IPv4 dotted quad, or
 * IPv6 in brackets as `URL.hostname` shows it); `port` null matches any port; `subdomains` is set
 * for `*.example.com`, which matches names under example.com (not example.com itself).
 */
export interface HttpAllowRule {
  host: string;
  port: number | null;
  subdomains: boolean;
}

/**
 * Parses `--http-allow` values. Each value is `HOST`, `HOST:PORT`, `*.DOMAIN[:PORT]`, `[IPv6]` or
 * `[IPv6]:PORT`; a value may hold several entries separated by commas (for an environment variable).
 * Throws an Error naming the bad entry.
 */
export function parseHttpAllow(values: readonly string[]): HttpAllowRule[] {
  return values
    .flatMap((value) => value.split(','))
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .map(parseEntry);
}

function parseEntry(entry: string): HttpAllowRule {
  const fail = (why: string): never => {
    throw new Error(`invalid --http-allow entry "${entry}": ${why} (expected HOST, HOST:PORT, *.DOMAIN or [IPv6]:PORT)`);
  };
  if (/[\s/?#@\\]/.test(entry)) fail('give a host and optional port, not a URL');
  let hostPart = entry;
  let portPart: string | undefined;
  if (entry.startsWith('[')) {
    const close = entry.indexOf(']');
    if (close === -1) fail('unterminated [IPv6] address');
    hostPart = entry.slice(0, close + 1);
    const rest = entry.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) fail('unexpected text after ]');
      portPart = rest.slice(1);
    }
  } else if ((entry.match(/:/g) ?? []).length > 1) {
    // A bare IPv6 address (no brackets, so no port).
    if (isIP(entry) !== 6) fail('not a valid IPv6 address');
    hostPart = `[${entry}]`;
  } else {
    const colon = entry.indexOf(':');
    if (colon !== -1) {
      hostPart = entry.slice(0, colon);
      portPart = entry.slice(colon + 1);
    }
  }
  let port: number | null = null;
  if (portPart !== undefined) {
    if (!/^\d{1,5}$/.test(portPart) || Number(portPart) < 1 || Number(portPart) > 65535) fail('port must be 1-65535');
    port = Number(portPart);
  }
  let subdomains = false;
  if (hostPart.startsWith('*.')) {
    subdomains = true;
    hostPart = hostPart.slice(2);
  }
  if (hostPart === '' || hostPart.includes('*')) fail('a wildcard is only allowed as a leading "*."');
  let host: string;
  try {
    host = new URL(`http://${hostPart}/`).hostname;
  } catch {
    return fail('not a valid host name or address');
  }
  if (subdomains && (host.startsWith('[') || isIP(host) !== 0)) fail('"*." needs a domain name, not an address');
  return { host, port, subdomains };
}

/** The port a URL connects to (its explicit port or the scheme's default). */
export function effectivePort(url: URL): number {
  if (url.port !== '') return Number(url.port);
  return url.protocol === 'https:' ? 443 : 80;
}

/** `host:port` as shown in messages (IPv6 keeps its brackets). */
export function describeDestination(url: URL): string {
  return `${url.hostname}:${effectivePort(url)}`;
}

/**
 * Which destinations the agent's `http/request` may reach. No rules: every destination (the
 * agent's network is the boundary). With rules: only a URL whose host and port match one of them;
 * the agent checks the first URL and every redirect hop.
 */
export class HttpDestinationPolicy {
  constructor(readonly rules: readonly HttpAllowRule[] = []) {}

  get restricted(): boolean {
    return this.rules.length > 0;
  }

  allows(url: URL): boolean {
    if (this.rules.length === 0) return true;
    const host = url.hostname.toLowerCase().replace(/\.$/, '');
    const port = effectivePort(url);
    return this.rules.some((rule) => {
      if (rule.port !== null && rule.port !== port) return false;
      return rule.subdomains ? host.endsWith(`.${rule.host}`) : host === rule.host;
    });
  }

  describe(): string {
    if (this.rules.length === 0) return 'http/request may reach any destination';
    const shown = this.rules.map((r) => `${r.subdomains ? '*.' : ''}${r.host}${r.port === null ? '' : `:${r.port}`}`);
    return `http/request restricted to ${shown.join(', ')}`;
  }
}
