import { describe, expect, it } from 'vitest';
import { send, sendRaw } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';
import { bodyOf, startRecordingBackend } from '../helpers/recording-backend.ts';

/**
 * JSON-Schema checks at the edge, through the real proxy to a backend that records what its own parser read: what
 * fails never reaches it, what passes reaches it byte for byte, from Gatehouse's buffer.
 */
const SCHEMAS = `schemas:
  - method: POST
    path: /v2/items/:id
    maxBodyBytes: 4096
    body: { type: object, required: [title], properties: { title: { type: string, minLength: 1 }, n: { type: integer, maximum: 10 } }, additionalProperties: false }
    query: { type: object, properties: { status: { enum: [open, done] }, n: { type: string } }, additionalProperties: false }
  - method: GET
    path: /v2/items
    query: { type: object, properties: { limit: { type: integer, maximum: 100 }, tag: { type: array, items: { type: string } }, n: { type: string } }, additionalProperties: false }
  - methods: [PUT, PATCH]
    path: /v2/items/:id
    body: { type: object }
  - method: POST
    path: /strict/things
    body: { type: object, properties: { a: { type: string } } }
`;

describe('schema checks on /api', () => {
  const proxy = useBareProxy({
    backend: () => startRecordingBackend({ noncePattern: /n=[a-z0-9]+/ }),
    config: SCHEMAS,
    routes: (url) => [
      { frontendHost: '*', pathPrefix: '/strict', backend: url, auth: 'none', strictSchemas: true },
      { frontendHost: '*', backend: url, auth: 'none' },
    ],
  });
  const records = () => proxy.backend.records.length;
  const post = (path: string, body: string | Buffer, headers: string[] = ['Content-Type', 'application/json']) =>
    send(proxy.url, { method: 'POST', path, headers, body });

  it('a valid body reaches the backend byte-identical, with its own Content-Length', async () => {
    const body = '{ "title" : "caf\\u00e9 ☕",\n"n":3 }';
    const res = await post('/api/v2/items/7?status=open&n=a1', body);
    expect(res.status).toBe(200);
    const rec = proxy.backend.records.at(-1);
    expect(bodyOf(rec!).toString('utf8')).toBe(body);
    expect(rec!.headers.get('content-length')).toEqual([String(Buffer.byteLength(body))]);
    expect(rec!.url).toBe('/v2/items/7?status=open&n=a1');
  });

  it('a chunked client body is forwarded whole, with Content-Length, never Transfer-Encoding', async () => {
    const parts = ['{"tit', 'le":"ch', 'unked"}'];
    const chunked = parts.map((p) => `${Buffer.byteLength(p).toString(16)}\r\n${p}\r\n`).join('') + '0\r\n\r\n';
    const res = await sendRaw(
      proxy.url,
      `POST /api/v2/items/1?n=ch1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked}`,
    );
    expect(res.status).toBe(200);
    const rec = proxy.backend.records.find((r) => r.nonce === 'n=ch1')!;
    expect(bodyOf(rec).toString()).toBe(parts.join(''));
    expect(rec.headers.get('content-length')).toEqual([String(parts.join('').length)]);
    expect(rec.headers.get('transfer-encoding')).toBeUndefined();
  });

  it.each([
    ['missing required', '{}', '', 'must have required property'],
    ['wrong type', '{"title":5}', '/title', 'must be string'],
    ['out of range', '{"title":"a","n":11}', '/n', 'must be <= 10'],
    ['mass assignment', '{"title":"a","role":"admin"}', '', 'must NOT have additional properties (role)'],
  ])('%s → 400 validation_failed with one detail, backend not called', async (_label, body, path, message) => {
    const before = records();
    const res = await post('/api/v2/items/1', body);
    expectError(res, 400, 'validation_failed');
    const details = res.json()['details'] as Array<Record<string, string>>;
    expect(details).toHaveLength(1);
    expect(details[0]).toMatchObject({ in: 'body', path });
    expect(details[0]!['message']).toContain(message);
    expect(records()).toBe(before);
  });

  it('a property name in an error detail is escaped, never reflected raw', async () => {
    const res = await post('/api/v2/items/1', '{"title":"a","<img src=x onerror=alert(1)>":1}');
    expectError(res, 400, 'validation_failed');
    const text = res.body.toString('utf8');
    expect(text).not.toContain('<img');
    expect(text).toContain('%3Cimg');
  });

  it('the query is checked too: enum, unknown keys, repeated keys, coercion for the check only', async () => {
    const before = records();
    expectError(await post('/api/v2/items/1?status=closed', '{"title":"a"}'), 400, 'validation_failed');
    const bad = await send(proxy.url, { path: '/api/v2/items?limit=1&limit=2' });
    expectError(bad, 400, 'validation_failed');
    expect(bad.json()['details']).toEqual([{ in: 'query', path: '/limit', message: 'must be integer' }]);
    expectError(await send(proxy.url, { path: '/api/v2/items?limit=101' }), 400, 'validation_failed');
    expectError(await send(proxy.url, { path: '/api/v2/items?limit=%zz' }), 400, 'validation_failed');
    expectError(await send(proxy.url, { path: '/api/v2/items?id[]=1' }), 400, 'validation_failed');
    expectError(await send(proxy.url, { path: '/api/v2/items?limit=10&limit=100000' }), 400, 'validation_failed');
    expect(records()).toBe(before);
    const ok = await send(proxy.url, { path: '/api/v2/items?limit=0010&tag=a&n=q1' });
    expect(ok.status).toBe(200);
    // The forwarded query is the client's bytes, not the coerced copy.
    expect(proxy.backend.records.at(-1)!.url).toBe('/v2/items?limit=0010&tag=a&n=q1');
  });

  it.each([
    ['/api/V2/ITEMS/1', 'case'],
    ['/api/v2/items/1/', 'trailing slash'],
    ['/api/v2/Items/1/?status=open', 'both'],
  ])('%s (%s) meets the same schema', async (path) => {
    const before = records();
    expectError(await post(path, '{"title":""}'), 400, 'validation_failed');
    expect(records()).toBe(before);
  });

  it.each([
    ['text/plain'],
    ['application/x-www-form-urlencoded'],
    ['application/json; charset=utf-16'],
    ['application/vnd.evil+json'],
    ['application/json; boundary=x'],
  ])('Content-Type %s → 415 unsupported_media_type', async (type) => {
    const before = records();
    expectError(await post('/api/v2/items/1', '{"title":"a"}', ['Content-Type', type]), 415, 'unsupported_media_type');
    expect(records()).toBe(before);
  });

  it('no Content-Type, two Content-Types, or a Content-Encoding → 415', async () => {
    const before = records();
    expectError(await post('/api/v2/items/1', '{"title":"a"}', []), 415, 'unsupported_media_type');
    expectError(
      await post('/api/v2/items/1', '{"title":"a"}', ['Content-Type', 'application/json', 'Content-Type', 'text/plain']),
      415,
      'unsupported_media_type',
    );
    expectError(
      await post('/api/v2/items/1', '{"title":"a"}', ['Content-Type', 'application/json', 'Content-Encoding', 'gzip']),
      415,
      'unsupported_media_type',
    );
    expect(records()).toBe(before);
    const ok = await post('/api/v2/items/1?n=cs1', '{"title":"a"}', ['Content-Type', 'Application/JSON; Charset="UTF-8"']);
    expect(ok.status).toBe(200);
  });

  it.each([
    ['malformed', '{"title":"a",}', 'syntax'],
    ['empty', '', 'syntax'],
    ['a BOM', '\ufeff{"title":"a"}', 'syntax'],
    ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0x74, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]), 'encoding'],
    ['a duplicate key', '{"title":"a","title":""}', 'duplicate_key'],
    ['a duplicate key spelled with an escape', '{"title":"","titl\\u0065":"a"}', 'duplicate_key'],
    ['nesting over 64', `{"title":"a","x":${'['.repeat(64)}${']'.repeat(64)}}`, 'depth'],
  ])('%s → 400 invalid_json (%s)', async (_label, body, reason) => {
    const before = records();
    const res = await post('/api/v2/items/1', body);
    expectError(res, 400, 'invalid_json');
    expect(res.json()['reason']).toBe(reason);
    expect(records()).toBe(before);
  });

  it('a declared Content-Length over maxBodyBytes → 413 before the body is read', async () => {
    const before = records();
    const res = await sendRaw(
      proxy.url,
      `POST /api/v2/items/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"title":`,
    );
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)['error']).toBe('payload_too_large');
    expect(res.head.toLowerCase()).toContain('connection: close');
    expect(records()).toBe(before);
  });

  it('a chunked body passing maxBodyBytes → 413 as soon as it does', async () => {
    const before = records();
    const chunk = 'x'.repeat(3000);
    const res = await sendRaw(
      proxy.url,
      `POST /api/v2/items/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `bb8\r\n${chunk}\r\nbb8\r\n${chunk}\r\n`,
    );
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)['error']).toBe('payload_too_large');
    expect(records()).toBe(before);
  });

  it('requests no entry matches stream as before: unchecked, any type', async () => {
    const res = await post('/api/v2/other?n=free1', 'not json at all', ['Content-Type', 'text/plain']);
    expect(res.status).toBe(200);
    expect(bodyOf(proxy.backend.records.at(-1)!).toString()).toBe('not json at all');
  });

  it('methods lists several methods', async () => {
    const res = await send(proxy.url, {
      method: 'PATCH',
      path: '/api/v2/items/1',
      headers: ['Content-Type', 'application/json'],
      body: '[]',
    });
    expectError(res, 400, 'validation_failed');
  });

  it('strictSchemas: an undeclared path → 404, an undeclared method on a declared path → 405 with Allow', async () => {
    const before = records();
    expectError(await send(proxy.url, { path: '/api/strict/other' }), 404, 'not_found');
    const res = await send(proxy.url, {
      method: 'PATCH',
      path: '/api/strict/things',
      headers: ['Content-Type', 'application/json'],
      body: '{}',
    });
    expectError(res, 405, 'method_not_allowed');
    expect(res.headers['allow']).toBe('POST');
    expect(records()).toBe(before);
    const ok = await post('/api/strict/things?n=st1', '{"a":"b"}');
    expect(ok.status).toBe(200);
    // The other mapping is not strict: an undeclared path there is forwarded.
    expect((await send(proxy.url, { path: '/api/elsewhere?n=st2' })).status).toBe(200);
  });

  it('a client that goes away mid-body: nothing is forwarded, Gatehouse carries on', async () => {
    const before = records();
    await sendRaw(
      proxy.url,
      `POST /api/v2/items/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"title":`,
      300,
    ).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
    expect(records()).toBe(before);
    expect((await post('/api/v2/items/1?n=after1', '{"title":"a"}')).status).toBe(200);
  });
});
