import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Listens on 127.0.0.1 (PORT, or a free port when unset) and tells the bench the port over IPC.
 * SIGTERM and a closed IPC channel both stop the process.
 */
export function listenAndReport(server: Server, name: string): void {
  const port = Number(process.env['PORT'] ?? 0);
  server.listen(port, '127.0.0.1', () => {
    const { port: actual } = server.address() as AddressInfo;
    if (process.send) process.send({ port: actual });
    else process.stdout.write(`${name} listening on 127.0.0.1:${actual}\n`);
  });
  const stop = () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('disconnect', stop);
}
