import { spawn } from 'node:child_process';

/**
 * `node supervise.ts <command> [args…]`: runs a non-Node server (nginx, redis-server) under a Node parent
 * that holds the bench's IPC channel. If the bench dies without cleaning up (SIGKILL), the channel closes
 * and the server is stopped too; SIGTERM/SIGINT are passed on. Output is inherited (the bench's log file).
 */
const [command, ...args] = process.argv.slice(2);
if (!command) throw new Error('usage: supervise.ts <command> [args…]');
const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'] });
let stopping = false;
const stop = (signal: NodeJS.Signals) => {
  if (stopping) return;
  stopping = true;
  if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  setTimeout(() => child.kill('SIGKILL'), 3000).unref();
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGTERM'));
process.on('disconnect', () => stop('SIGTERM'));
child.on('error', (err) => {
  process.stderr.write(`supervise: cannot start ${command}: ${err.message}\n`);
  process.exit(127);
});
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
