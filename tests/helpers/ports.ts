import { connect, createServer } from 'node:net';

/** A port the OS just handed out on 127.0.0.1 (for servers that cannot listen on 0 themselves, like redis-server). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface PortWait {
  /** Names the server in errors. */
  readonly name?: string;
  /** True once the server has died: waiting stops at once. */
  readonly exited?: () => boolean;
  /** The server's last words, appended to errors. */
  readonly tail?: () => string;
}

/** Resolves when something accepts TCP connections on 127.0.0.1:port; rejects after timeoutMs, or as soon as the server has exited. */
export function waitForPort(port: number, timeoutMs: number, w: PortWait = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const name = w.name ?? 'server';
  const tail = () => w.tail?.() ?? '';
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (w.exited?.()) return reject(new Error(`${name} exited before listening on ${port}${tail()}`));
      const sock = connect(port, '127.0.0.1');
      sock.once('connect', () => {
        sock.destroy();
        resolve();
      });
      sock.once('error', () => {
        sock.destroy();
        if (Date.now() > deadline) reject(new Error(`${name} did not listen on ${port} within ${timeoutMs} ms${tail()}`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}
