import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A TCP forwarder in front of a server (the test IdP), standing in for an IdP that is frozen (SIGSTOP) or down.
 * - `pass`: bytes flow both ways.
 * - `paused`: connections are accepted and bytes are read, but held in both directions until resume(): what a
 *   client sent before giving up still reaches the server then (the kernel of a frozen process has it), and
 *   the answer goes nowhere if the client has gone.
 * - `refusing`: each connection is reset as soon as its first bytes arrive (an IdP whose port answers with RST).
 */
export interface PausableForwarder {
  readonly url: string;
  readonly port: number;
  /** Where connections go; set once the server behind it listens. */
  setTarget(port: number): void;
  pause(): void;
  /** Back to `pass`, releasing what was held in both directions. */
  resume(): void;
  /** `refusing` mode; existing connections are reset too. resume() ends it. */
  refuse(): void;
  /** Request lines ("POST /token") clients sent, in order, whatever the mode. */
  readonly requests: string[];
  close(): Promise<void>;
}

interface Held {
  toServer: Buffer[];
  toClient: Buffer[];
  clientEnded: boolean;
  serverEnded: boolean;
}

export async function startPausableForwarder(): Promise<PausableForwarder> {
  let target: number | undefined;
  let mode: 'pass' | 'paused' | 'refusing' = 'pass';
  const requests: string[] = [];
  const pairs = new Map<Socket, { upstream: Socket; held: Held }>();
  const requestLine = /^([A-Z]+) (\S+) HTTP\/1\.[01]\r\n/;

  const flush = (client: Socket, upstream: Socket, held: Held) => {
    const sent = held.toServer.length > 0;
    for (const chunk of held.toServer.splice(0)) upstream.write(chunk);
    if (held.clientEnded) {
      // A frozen IdP reads the request before it sees the FIN (Node's HTTP server aborts a request whose
      // connection ends first): keep the connection open until the answer starts, which then goes nowhere.
      if (sent) {
        upstream.once('data', () => upstream.destroy());
        setTimeout(() => upstream.destroy(), 10_000).unref();
      } else upstream.destroy();
    }
    if (!client.destroyed) for (const chunk of held.toClient.splice(0)) client.write(chunk);
    held.toClient.length = 0;
    if (held.serverEnded) client.end();
  };

  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    if (target === undefined) {
      client.destroy();
      return;
    }
    const upstream = connect({ port: target, host: '127.0.0.1', allowHalfOpen: true });
    const held: Held = { toServer: [], toClient: [], clientEnded: false, serverEnded: false };
    pairs.set(client, { upstream, held });
    client.on('error', () => undefined);
    upstream.on('error', () => client.destroy());
    client.on('data', (chunk: Buffer) => {
      const line = requestLine.exec(chunk.toString('latin1', 0, Math.min(chunk.length, 512)));
      if (line) requests.push(`${line[1]} ${line[2]}`);
      if (mode === 'refusing') {
        client.resetAndDestroy();
        upstream.destroy();
        return;
      }
      if (mode === 'paused') held.toServer.push(chunk);
      else upstream.write(chunk);
    });
    // A client that gives up (closes or resets) while paused: what it sent is still delivered on resume.
    const clientGone = () => {
      if (held.clientEnded) return;
      held.clientEnded = true;
      if (mode === 'pass') upstream.end();
    };
    client.on('end', clientGone);
    client.on('close', () => {
      clientGone();
      if (mode === 'pass' || mode === 'refusing') pairs.delete(client);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (mode === 'paused') held.toClient.push(chunk);
      else if (!client.destroyed) client.write(chunk);
    });
    upstream.on('end', () => {
      held.serverEnded = true;
      if (mode !== 'paused') client.end();
    });
    upstream.on('close', () => {
      if (mode !== 'paused') {
        client.destroy();
        pairs.delete(client);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    setTarget(p) {
      target = p;
    },
    pause() {
      mode = 'paused';
    },
    resume() {
      mode = 'pass';
      for (const [client, { upstream, held }] of pairs) {
        flush(client, upstream, held);
        if (client.destroyed && held.clientEnded) pairs.delete(client);
      }
    },
    refuse() {
      mode = 'refusing';
      for (const [client, { upstream }] of pairs) {
        client.resetAndDestroy();
        upstream.destroy();
      }
      pairs.clear();
    },
    close() {
      for (const [client, { upstream }] of pairs) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
