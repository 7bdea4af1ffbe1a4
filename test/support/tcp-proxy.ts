import net from 'node:net';

export type ProxyDirection = 'upstream' | 'downstream';

export interface TcpProxy {
  readonly port: number;
  readonly url: string;
  /** Every byte seen, per direction, in order. */
  captured(direction: ProxyDirection): Buffer;
  /** Destroys every live connection (a cut link); new connections are still accepted. */
  cutAll(): void;
  close(): Promise<void>;
}

/**
 * A loopback TCP proxy in front of `targetPort` that records every byte both ways (to prove what
 * a hop can see) and can cut its connections (to inject link failures).
 */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const chunks: Record<ProxyDirection, Buffer[]> = { upstream: [], downstream: [] };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.on('data', (d) => chunks.upstream.push(Buffer.from(d)));
    upstream.on('data', (d) => chunks.downstream.push(Buffer.from(d)));
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `ws://127.0.0.1:${port}`,
    captured: (direction) => Buffer.concat(chunks[direction]),
    cutAll() {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
