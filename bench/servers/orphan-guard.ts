/**
 * Preloaded (`node --import`) into every child the bench starts with an IPC channel, Gatehouse included:
 * when the bench dies without cleaning up (SIGKILL, crash), the channel closes and the child stops itself
 * with SIGTERM, so no server is left running on the machine. Touches nothing on the request path.
 */
if (process.connected) {
  process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  process.channel?.unref();
}
