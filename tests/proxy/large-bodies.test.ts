import { fork, type ChildProcess } from 'node:child_process';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';

const MiB = 1 << 20;
// The issue asks for a 1 GiB upload with flat memory: the test moves exactly that, both ways.
const TOTAL_MIB = 1024;

/**
 * Gatehouse runs in a child process so its RSS is its own: the client and the backend here allocate
 * (and leave for the GC) every byte they move, which would drown a measurement taken in one process.
 */
describe('large bodies stream through Gatehouse in bounded memory', () => {
  let backend: TestBackend;
  let child: ChildProcess;
  let url: string;
  const chunk = Buffer.alloc(MiB, 0x5a);

  const ask = <T>(message: string, key: string) =>
    new Promise<T>((resolve) => {
      const onMessage = (m: Record<string, unknown>) => {
        if (key in m) {
          child.off('message', onMessage);
          resolve(m[key] as T);
        }
      };
      child.on('message', onMessage);
      child.send(message);
    });

  beforeAll(async () => {
    backend = await startBackend((req, res) => {
      if (req.url !== '/download') return;
      req.resume();
      let sent = 0;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': TOTAL_MIB * MiB });
      const pump = () => {
        while (sent < TOTAL_MIB) {
          sent++;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return true;
    });
    child = fork(fileURLToPath(new URL('./gatehouse-child.ts', import.meta.url)), [], {
      execArgv: ['--expose-gc'],
      env: {
        ...process.env,
        GH_REDIS_URL: inject('redisUrl'),
        GH_YAML: mappingsYaml([{ frontendHost: '*', backend: backend.url, auth: 'none' }]),
      },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    url = await new Promise<string>((resolve, reject) => {
      child.once('message', (m: { url: string }) => resolve(m.url));
      child.once('exit', (code) => reject(new Error(`gatehouse child exited with ${code}`)));
    });
  });
  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      if (child.connected) child.send('close');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    }
    await backend?.close();
  });

  const open = (path: string, method: string, headers: Record<string, string> = {}) => {
    const u = new URL(url);
    return httpRequest({ host: u.hostname, port: u.port, path, method, headers, agent: false });
  };
  const responseOf = (req: ReturnType<typeof open>) =>
    new Promise<IncomingMessage>((resolve, reject) => {
      req.on('response', resolve);
      req.on('error', reject);
    });

  it(`uploads ${TOTAL_MIB} MiB from a generator with Gatehouse RSS growth under 100 MB`, async () => {
    const base = await ask<number>('reset', 'base');
    const req = open('/api/upload', 'POST', { 'content-type': 'application/octet-stream', 'content-length': String(TOTAL_MIB * MiB) });
    const response = responseOf(req);
    async function* body() {
      for (let i = 0; i < TOTAL_MIB; i++) yield chunk;
    }
    for await (const c of body()) {
      if (!req.write(c)) await new Promise((r) => req.once('drain', r));
    }
    req.end();
    const res = await response;
    const parts: Buffer[] = [];
    for await (const c of res) parts.push(c as Buffer);
    const peak = await ask<number>('peak', 'peak');
    expect(res.statusCode).toBe(200);
    expect((JSON.parse(Buffer.concat(parts).toString()) as { bodySize: number }).bodySize).toBe(TOTAL_MIB * MiB);
    expect(backend.last().bodySize).toBe(TOTAL_MIB * MiB);
    expect((peak - base) / 1e6).toBeLessThan(100);
  });

  it(`downloads ${TOTAL_MIB} MiB with Gatehouse RSS growth under 100 MB`, async () => {
    const base = await ask<number>('reset', 'base');
    const req = open('/api/download', 'GET');
    req.end();
    const res = await responseOf(req);
    let size = 0;
    for await (const c of res) size += (c as Buffer).length;
    const peak = await ask<number>('peak', 'peak');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe(String(TOTAL_MIB * MiB));
    expect(size).toBe(TOTAL_MIB * MiB);
    expect((peak - base) / 1e6).toBeLessThan(100);
  });
});
