import { describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

/**
 * security-cases 107 (SCH-CTYPE): a validated JSON route receives the same bytes as text/plain, form-urlencoded,
 * JSON in UTF-16, a vendor +json type, with no Content-Type, or as malformed JSON. 415 for the types, 400 for the
 * malformed body, and never a body forwarded that was not validated (http-proxy-middleware carried on after its
 * parser failed: CVE-2025-32997).
 */
describe('a checked JSON route and other media types', () => {
  const proxy = useBareProxy({
    config:
      'schemas:\n  - method: POST\n    path: /items\n    body: { type: object, required: [title], properties: { title: { type: string } } }\n',
  });
  const body = '{"title":"a"}';

  it.each([
    [['Content-Type', 'text/plain']],
    [['Content-Type', 'application/x-www-form-urlencoded']],
    [['Content-Type', 'multipart/form-data; boundary=x']],
    [['Content-Type', 'application/json; charset=utf-16']],
    [['Content-Type', 'application/vnd.evil+json']],
    [[]],
  ])('%j → 415 unsupported_media_type, backend not called', async (headers) => {
    expectError(await send(proxy.url, { method: 'POST', path: '/api/items', headers, body }), 415, 'unsupported_media_type');
    expect(proxy.backend.requests).toHaveLength(0);
  });

  it('malformed JSON → 400 invalid_json, backend not called; the same bytes well-formed pass', async () => {
    const headers = ['Content-Type', 'application/json'];
    expectError(await send(proxy.url, { method: 'POST', path: '/api/items', headers, body: '{"title":"a"' }), 400, 'invalid_json');
    expect(proxy.backend.requests).toHaveLength(0);
    expect((await send(proxy.url, { method: 'POST', path: '/api/items', headers, body })).status).toBe(200);
    expect(proxy.backend.requests).toHaveLength(1);
  });
});
