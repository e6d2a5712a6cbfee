import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatehouse, type TestGatehouse } from '../helpers/gatehouse.ts';

/** A backend (compromised or careless) must not plant or overwrite Gatehouse's session or login cookie. */
describe('backend Set-Cookie for Gatehouse cookie names is dropped', () => {
  let backend: Server;
  let gh: TestGatehouse;

  beforeAll(async () => {
    backend = createServer((_req, res) => {
      res.setHeader('set-cookie', [
        '__Host-gh_session=planted-by-backend; Path=/; Secure; HttpOnly',
        '__HOST-GH_LOGIN=planted; Path=/; Secure',
        'app=1; Path=/',
      ]);
      res.end('ok');
    });
    // The WebSocket handshake (101) carries headers too.
    const wss = new WebSocketServer({ server: backend });
    wss.on('headers', (headers) =>
      headers.push('Set-Cookie: __Host-gh_session=planted-on-upgrade; Path=/; Secure', 'Set-Cookie: app=ws; Path=/'),
    );
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
    gh = await startGatehouse({
      yaml: `mappings:\n  - frontendHost: "*"\n    backend: "${url}"\n    auth: none\n`,
      env: { OIDC_ISSUER: 'http://127.0.0.1:9', OIDC_CLIENT_ID: 'unused' },
    });
  });
  afterAll(async () => {
    await gh?.close();
    await new Promise<void>((r) => backend.close(() => r()));
  });

  it("keeps the backend's own cookies and drops the ones named like Gatehouse's", async () => {
    const res = await fetch(`${gh.url}/api/x`);
    expect(res.status).toBe(200);
    expect(res.headers.getSetCookie()).toEqual(['app=1; Path=/']);
  });

  it('filters the same cookies from a WebSocket handshake', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${gh.port}/api/ws`);
    const cookies = await new Promise<string[]>((resolve, reject) => {
      ws.once('upgrade', (res) => resolve(([] as string[]).concat(res.headers['set-cookie'] ?? [])));
      ws.once('error', reject);
    });
    ws.close();
    expect(cookies).toEqual(['app=ws; Path=/']);
  });
});
