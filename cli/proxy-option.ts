import { Option } from 'commander';

/** `--proxy URL` (EXECRELAY_PROXY), shared by the agent and every client command; resolved by `relayProxyFor`. */
export function proxyOption(): Option {
  return new Option(
    '--proxy <url>',
    'reach the relay through this HTTP CONNECT proxy (http://[USER:PASS@]HOST:PORT, or https:// for TLS to the proxy; credentials percent-encoded, sent as Basic). Without it HTTPS_PROXY (wss://) or HTTP_PROXY (ws://), ' +
      'or ALL_PROXY, lower-case names too, unless NO_PROXY names the relay host; --proxy "" dials directly',
  ).env('EXECRELAY_PROXY');
}
