import type { NextFunction, Request, Response } from 'express';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/app.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { sendRaw } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { writeConfigFile } from '../helpers/gatehouse.ts';

const ADMIN_TOKEN = 'adm1n-t0ken-0123456789abcdefghijklmnopqrstuv';
const SESSION_KEY = 'K'.repeat(43);

/**
 * The Express side's log lines, as an operator reads them: one line per request, carrying the path the client
 * sent (mounts and routers included, never the query), and levels as labels.
 */
describe('one log line per Express request, with its original path', () => {
  let app: App;
  let url: string;
  const logs: Array<Record<string, unknown>> = [];
  const linesFor = (reqId: string) => logs.filter((l) => l['reqId'] === reqId);

  beforeAll(async () => {
    const config = loadConfig({
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      APP_BASE_URL: 'http://127.0.0.1:1',
      OIDC_ISSUER: 'http://127.0.0.1:9/unused',
      OIDC_CLIENT_ID: 'u',
      ADMIN_TOKEN,
      GATEHOUSE_CONFIG: writeConfigFile('mappings: []\n'),
    });
    const destination = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
        cb();
      },
    });
    // Stand-ins for the dev IdP's handler (a plain node handler under a mount) and for a route that fails.
    const idp = (req: IncomingMessage, res: ServerResponse) => {
      res.statusCode = req.url?.startsWith('/auth') ? 303 : 200;
      res.end();
    };
    const boom = (_req: Request, _res: Response, next: NextFunction) => next(new Error('boom'));
    const log = createLogger({ level: 'info', destination });
    app = await createApp(config, {
      log,
      mounts: [
        { path: '/dev-idp', handler: idp },
        { path: '/boom', handler: boom },
      ],
    });
    const address = await app.listen(0, '127.0.0.1');
    url = `http://127.0.0.1:${address.port}`;
  });
  afterAll(async () => {
    await app?.close();
  });

  const send = async (path: string, init: RequestInit & { id: string }) => {
    const headers = { ...(init.headers as Record<string, string>), 'x-request-id': init.id };
    const res = await fetch(`${url}${path}`, { ...init, headers, redirect: 'manual' });
    await res.body?.cancel();
    await new Promise((r) => setTimeout(r, 20));
    return res.status;
  };

  it("logs a mounted handler's request under its mount path, without the query", async () => {
    expect(await send('/dev-idp/auth?client_id=x&state=secret-state', { id: 'idp-1' })).toBe(303);
    expect(linesFor('idp-1')).toEqual([expect.objectContaining({ msg: 'request', method: 'GET', path: '/dev-idp/auth', status: 303 })]);
    expect(JSON.stringify(logs)).not.toContain('secret-state');
  });

  it('logs an admin call under /admin whether it succeeds or is refused', async () => {
    const revoke = (id: string, token: string) =>
      send(`/admin/sessions/${SESSION_KEY}`, { id, method: 'DELETE', headers: { 'x-admin-token': token } });
    expect(await revoke('admin-ok', ADMIN_TOKEN)).toBe(200);
    expect(await revoke('admin-no', 'wrong')).toBe(401);
    const ok = linesFor('admin-ok').filter((l) => l['msg'] === 'request');
    expect(ok).toEqual([expect.objectContaining({ path: `/admin/sessions/${SESSION_KEY}`, status: 200 })]);
    expect(ok[0]).not.toHaveProperty('code');
    expect(linesFor('admin-no')).toEqual([
      expect.objectContaining({ msg: 'request', path: `/admin/sessions/${SESSION_KEY}`, status: 401 }),
    ]);
  });

  it('keeps a fragment out of the line as it keeps the query (a client may send one)', async () => {
    const res = await sendRaw(
      url,
      `GET /dev-idp/auth#code=secret-fragment HTTP/1.1\r\nHost: x\r\nX-Request-Id: idp-frag\r\nConnection: close\r\n\r\n`,
    );
    expect(res.status).toBe(303);
    await new Promise((r) => setTimeout(r, 20));
    expect(linesFor('idp-frag')).toEqual([expect.objectContaining({ msg: 'request', path: '/dev-idp/auth', status: 303 })]);
    expect(JSON.stringify(logs)).not.toContain('secret-fragment');
  });

  it('answers a malformed %-escape in a route parameter with 400 bad_request, logged once at info', async () => {
    const res = await sendRaw(
      url,
      `DELETE /admin/sessions/%E0%A4%A HTTP/1.1\r\nHost: x\r\nX-Admin-Token: ${ADMIN_TOKEN}\r\nX-Request-Id: bad-escape\r\nConnection: close\r\n\r\n`,
    );
    expectError(res, 400, 'bad_request');
    await new Promise((r) => setTimeout(r, 20));
    expect(linesFor('bad-escape')).toEqual([expect.objectContaining({ msg: 'request', level: 'info', status: 400, code: 'bad_request' })]);
  });

  it('logs a refusal once, the line carrying its code and detail', async () => {
    expect(await send('/auth/nowhere', { id: 'refused-1', headers: { accept: 'application/json' } })).toBe(404);
    expect(linesFor('refused-1')).toEqual([
      expect.objectContaining({ msg: 'request', level: 'info', path: '/auth/nowhere', status: 404, code: 'not_found' }),
    ]);
    expect(await send(`/admin/sessions/${SESSION_KEY}`, { id: 'refused-2', method: 'DELETE' })).toBe(401);
    expect(linesFor('refused-2')).toEqual([expect.objectContaining({ code: 'admin_unauthorized', detail: 'missing admin token' })]);
  });

  it("still logs a failure's cause at error level, and its request line carries internal_error", async () => {
    expect(await send('/boom/x?q=1', { id: 'failed-1' })).toBe(500);
    const lines = linesFor('failed-1');
    expect(lines).toHaveLength(2);
    expect(lines.find((l) => l['msg'] === 'request failed')).toMatchObject({ level: 'error', path: '/boom/x', err: { message: 'boom' } });
    expect(lines.find((l) => l['msg'] === 'request')).toMatchObject({
      level: 'info',
      path: '/boom/x',
      status: 500,
      code: 'internal_error',
    });
  });

  it('prints levels as labels', () => {
    expect(logs.find((l) => l['msg'] === 'admin audit' && l['action'] === 'session revoked')).toMatchObject({ level: 'warn' });
    expect(logs.every((l) => typeof l['level'] === 'string')).toBe(true);
  });
});
