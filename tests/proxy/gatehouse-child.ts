/**
 * Gatehouse alone in a child process, so a test can read its RSS without the client's and the backend's
 * buffers (and their garbage) in the same heap. Started by large-bodies.test.ts with --expose-gc.
 * IPC: 'reset' → { base } after a GC; 'peak' → { peak }; 'close' → exits.
 */
import { startGatehouse } from '../helpers/gatehouse.ts';

const gh = await startGatehouse({
  redisUrl: process.env['GH_REDIS_URL'] ?? '',
  yaml: process.env['GH_YAML'] ?? 'mappings: []\n',
  env: { OIDC_ISSUER: 'http://127.0.0.1:9/unused', OIDC_CLIENT_ID: 'unused', OIDC_CLIENT_SECRET: 'unused', LOG_LEVEL: 'warn' },
});
let peak = process.memoryUsage.rss();
const sampler = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage.rss());
}, 5);
process.on('message', (m: unknown) => {
  if (m === 'reset') {
    (globalThis as { gc?: () => void }).gc?.();
    peak = process.memoryUsage.rss();
    process.send?.({ base: peak });
  } else if (m === 'peak') {
    process.send?.({ peak: Math.max(peak, process.memoryUsage.rss()) });
  } else if (m === 'close') {
    clearInterval(sampler);
    void gh.close().finally(() => process.exit(0));
  }
});
process.send?.({ url: gh.url });
