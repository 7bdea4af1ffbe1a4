// Types of proxy-from-env 2.x, which ships none: the proxy URL for a URL from *_PROXY / NO_PROXY, '' for none.
declare module 'proxy-from-env' {
  export function getProxyForUrl(url: string | URL): string;
}
