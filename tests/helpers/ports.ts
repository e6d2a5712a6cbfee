import { createServer } from 'node:net';

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
