import { isIP } from 'node:net';

/**
 * One `--http-allow` entry. `host` is canonical (lower-case name, IPv4 dotted quad, or IPv6 in
 * brackets as `URL.hostname` shows it); `port` null matches any port; `subdomains` is set for
 * `*.example.com`, which matches names under example.com (not example.com itself);
 * `prefixLength` is set for an address range (`10.0.0.0/8`, `[fc00::]/7`), `host` being its address.
 */
export interface HttpAllowRule {
  host: string;
  port: number | null;
  subdomains: boolean;
  prefixLength?: number;
}

/**
 * Parses `--http-allow` values. Each value is `HOST`, `HOST:PORT`, `*.DOMAIN[:PORT]`, `[IPv6]`,
 * `[IPv6]:PORT`, or a range `ADDRESS/LENGTH[:PORT]` (`10.0.0.0/8`, `[fc00::]/7:443`, `fd00::/8`); a
 * value may hold several entries separated by commas (for an environment variable). Throws an
 * Error naming the bad entry.
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
  if (/[\s?#@\\]/.test(entry) || (entry.match(/\//g) ?? []).length > 1) fail('give a host and optional port, not a URL');
  if (entry.includes('/')) return parseRange(entry, fail);
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

/** `ADDRESS/LENGTH[:PORT]`, the address bare or in brackets (`10.0.0.0/8`, `[fc00::]/7:443`, `fd00::/8`). */
function parseRange(entry: string, fail: (why: string) => never): HttpAllowRule {
  const slash = entry.indexOf('/');
  const addressPart = entry.slice(0, slash).replace(/^\[(.*)\]$/, '$1');
  const match = /^(\d{1,3})(?::(.*))?$/.exec(entry.slice(slash + 1));
  const family = isIP(addressPart);
  if (family === 0) fail('a range needs an address (ADDRESS/LENGTH, e.g. 10.0.0.0/8 or [fc00::]/7)');
  const bits = family === 4 ? 32 : 128;
  if (!match || Number(match[1]) > bits) fail(`prefix length must be 0-${bits}`);
  const portPart = match![2];
  if (portPart !== undefined && (!/^\d{1,5}$/.test(portPart) || Number(portPart) < 1 || Number(portPart) > 65535)) fail('port must be 1-65535');
  const host = new URL(`http://${family === 6 ? `[${addressPart}]` : addressPart}/`).hostname;
  return { host, port: portPart === undefined ? null : Number(portPart), subdomains: false, prefixLength: Number(match![1]) };
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
 * The address classes `http/request` refuses by default: what an agent can reach that a caller
 * elsewhere cannot (its own services, the cloud metadata endpoint, the private network).
 */
export type AddressClass = 'loopback' | 'link-local' | 'private' | 'unique-local' | 'unspecified';

/** Each denied class with its ranges, for messages and the startup log. */
export const DENIED_ADDRESS_CLASSES: Readonly<Record<AddressClass, string>> = {
  loopback: '127.0.0.0/8, ::1',
  'link-local': '169.254.0.0/16, fe80::/10',
  private: '10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16',
  'unique-local': 'fc00::/7',
  unspecified: '0.0.0.0/8, ::',
};

/**
 * The bytes of an IP address (4 for IPv4, 16 for IPv6; brackets and a `%zone` are ignored), an
 * IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the 4 bytes it maps. Null for anything else.
 */
export function addressBytes(text: string): number[] | null {
  const address = text.replace(/^\[(.*)\]$/, '$1').replace(/%.*$/, '');
  const family = isIP(address);
  if (family === 4) return address.split('.').map(Number);
  if (family !== 6) return null;
  let hex = address;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(hex);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    hex = `${hex.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = hex.split('::') as [string, string | undefined];
  const groupsOf = (part: string | undefined) => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const headGroups = groupsOf(head);
  const tailGroups = groupsOf(tail);
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<number>(8 - headGroups.length - tailGroups.length).fill(0), ...tailGroups];
  const bytes = groups.flatMap((g) => [g >> 8, g & 0xff]);
  const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  return mapped ? bytes.slice(12) : bytes;
}

/** Whether the first `prefixLength` bits of `address` are those of `network` (same length). */
function inPrefix(address: readonly number[], network: readonly number[], prefixLength: number): boolean {
  if (address.length !== network.length) return false;
  for (let bit = 0; bit < prefixLength; bit += 8) {
    const take = Math.min(8, prefixLength - bit);
    const mask = (0xff << (8 - take)) & 0xff;
    if ((address[bit / 8]! & mask) !== (network[bit / 8]! & mask)) return false;
  }
  return true;
}

const CLASS_PREFIXES: ReadonlyArray<[AddressClass, number[], number]> = [
  ['unspecified', [0, 0, 0, 0], 8],
  ['loopback', [127, 0, 0, 0], 8],
  ['link-local', [169, 254, 0, 0], 16],
  ['private', [10, 0, 0, 0], 8],
  ['private', [172, 16, 0, 0], 12],
  ['private', [192, 168, 0, 0], 16],
  ['unspecified', Array<number>(16).fill(0), 128],
  ['loopback', [...Array<number>(15).fill(0), 1], 128],
  ['link-local', [0xfe, 0x80, ...Array<number>(14).fill(0)], 10],
  ['unique-local', [0xfc, ...Array<number>(15).fill(0)], 7],
];

/** The denied class an address (IPv4, IPv6, IPv4-mapped IPv6) belongs to, or null (a public address). */
export function classifyAddress(address: string): AddressClass | null {
  const bytes = addressBytes(address);
  if (!bytes) return null;
  return CLASS_PREFIXES.find(([, network, length]) => inPrefix(bytes, network, length))?.[0] ?? null;
}

/** The address bytes and prefix length of an entry that names an address or range; null for a name. */
function ruleNetwork(rule: HttpAllowRule): { bytes: number[]; prefixLength: number } | null {
  if (rule.subdomains) return null;
  const bytes = addressBytes(rule.host);
  if (!bytes) return null;
  const full = rule.host.startsWith('[') ? 128 : 32;
  let prefixLength = rule.prefixLength ?? full;
  // An IPv4-mapped entry (`[::ffff:127.0.0.1]`, `[::ffff:0:0]/96`) is compared as the IPv4 it maps.
  if (bytes.length === 4 && full === 128) prefixLength = Math.max(0, prefixLength - 96);
  return { bytes, prefixLength: Math.min(prefixLength, bytes.length * 8) };
}

function showRule(rule: HttpAllowRule): string {
  return `${rule.subdomains ? '*.' : ''}${rule.host}${rule.prefixLength === undefined ? '' : `/${rule.prefixLength}`}${rule.port === null ? '' : `:${rule.port}`}`;
}

/**
 * Which destinations the agent's `http/request` may reach; the agent checks the first URL and
 * every redirect hop. Two checks:
 * - the allowlist (`allows`): no rules, any URL; with rules, only a URL whose host and port match
 *   one (a name rule matches the name as written, an address or range rule an address literal);
 * - the address (`deniedClass`), for every address the host resolves to: loopback, link-local,
 *   private, unique-local and unspecified addresses are refused unless a rule names that address
 *   or a range holding it (port included), or `allowPrivate` (`--http-allow-private`) is set.
 *   A name rule never lets its name through to such an address on its own.
 */
export class HttpDestinationPolicy {
  constructor(
    readonly rules: readonly HttpAllowRule[] = [],
    readonly allowPrivate = false,
  ) {}

  get restricted(): boolean {
    return this.rules.length > 0;
  }

  allows(url: URL): boolean {
    if (this.rules.length === 0) return true;
    const host = url.hostname.toLowerCase().replace(/\.$/, '');
    const port = effectivePort(url);
    const literal = addressBytes(host);
    return this.rules.some((rule) => {
      if (rule.port !== null && rule.port !== port) return false;
      const network = ruleNetwork(rule);
      if (network) return literal !== null && inPrefix(literal, network.bytes, network.prefixLength);
      return rule.subdomains ? host.endsWith(`.${rule.host}`) : host === rule.host;
    });
  }

  /** The class that refuses connecting to `address` on `port`, or null when it is allowed. */
  deniedClass(address: string, port: number): AddressClass | null {
    const addressClass = classifyAddress(address);
    if (addressClass === null || this.allowPrivate) return null;
    const bytes = addressBytes(address)!;
    const named = this.rules.some((rule) => {
      if (rule.port !== null && rule.port !== port) return false;
      const network = ruleNetwork(rule);
      return network !== null && inPrefix(bytes, network.bytes, network.prefixLength);
    });
    return named ? null : addressClass;
  }

  /** What is allowed, for the startup log. */
  describe(): string {
    const where = this.rules.length === 0 ? 'any destination' : `only ${this.rules.map(showRule).join(', ')}`;
    if (this.allowPrivate) return `http/request may reach ${where}, at any address (--http-allow-private)`;
    const classes = Object.keys(DENIED_ADDRESS_CLASSES).join(', ');
    const named = this.rules.filter((rule) => ruleNetwork(rule) !== null && classifyAddress(rule.host) !== null);
    const except = named.length === 0 ? '' : ` except ${named.map(showRule).join(', ')}`;
    return `http/request may reach ${where}; ${classes} addresses are denied${except}`;
  }

  /** The settings as fields for the startup log. */
  logFields(): { httpAllow: string[]; httpAllowPrivate: boolean; deniedAddressClasses: Record<AddressClass, string> | 'none' } {
    return {
      httpAllow: this.rules.map(showRule),
      httpAllowPrivate: this.allowPrivate,
      deniedAddressClasses: this.allowPrivate ? 'none' : { ...DENIED_ADDRESS_CLASSES },
    };
  }
}
