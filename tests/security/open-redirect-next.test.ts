import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { safeLocalPath } from '../../src/auth/redirect.ts';
import { Browser } from '../helpers/browser.ts';
import type { TestGatehouse } from '../helpers/gatehouse.ts';
import type { TestIdp } from '../helpers/idp.ts';
import { startStage } from '../helpers/stage.ts';

/** Values of `next` as Gatehouse receives them (after the query string is decoded once). */
const HOSTILE_NEXT = [
  '//evil.example',
  '/\\evil.example',
  '\\/evil.example',
  '/%09/evil.example',
  '/\t/evil.example',
  '/%5cevil.example',
  '/%2f%2fevil.example',
  'https://evil.example',
  'https:evil.example',
  'javascript:alert(1)',
  '/%0a/evil.example',
  '/\n/evil.example',
  '/\r\n/evil.example',
  '/\u0000/evil.example',
  '/a/..//evil.example',
  '/%2e%2e//evil.example',
  // Dot segments the URL parser resolves, leaving an encoded slash that one more decoding turns into //host.
  '/a/%2e%2e/%2fevil.example',
  '/a/%2e%2e/%5cevil.example',
  '/%2e%2e/%2f%2fevil.example',
  '/a/../%2F%2Fevil.example',
  '/a/%2e%2e/%252fevil.example',
];

describe('open redirect through /auth/login?next= (RFC 9700 §4.11.1)', () => {
  let idp: TestIdp;
  let gh: TestGatehouse;

  beforeAll(async () => {
    ({ idp, gh } = await startStage({ gatehouse: { redisUrl: inject('redisUrl') } }));
  });
  afterAll(async () => {
    await gh?.close();
    await idp?.close();
  });

  it.each(HOSTILE_NEXT)('after a full login with next=%j the Location is /', async (next) => {
    const result = await new Browser().login(gh.url, 'alice', next);
    expect(result.callbackStatus).toBe(302);
    expect(result.location).toBe('/');
  });

  it('keeps a legitimate local target with its query and fragment', async () => {
    const result = await new Browser().login(gh.url, 'alice', '/a/b?c=d#e');
    expect(result.callbackStatus).toBe(302);
    expect(result.location).toBe('/a/b?c=d#e');
  });

  it('ignores a next given twice (the query parser yields an array) and lands on /', async () => {
    const browser = new Browser();
    const start = await browser.fetch(`${gh.url}/auth/login?next=/ok&next=//evil.example`);
    expect(start.status).toBe(302);
    await start.body?.cancel();
    const result = await browser.login(gh.url, 'alice');
    expect(result.location).toBe('/');
  });
});

describe('safeLocalPath', () => {
  const BASE = 'https://app.example.com';
  const hosts = ['evil.example', 'evil.example@app.example.com', 'app.example.com.evil.example', '%65vil.example'];
  const lead = [
    '//',
    '///',
    '////',
    '/\\',
    '\\/',
    '\\\\',
    '/\\/',
    '/%09/',
    '/%0a/',
    '/%0d/',
    '/%20/',
    '/ /',
    '/\t/',
    '/%5c',
    '/%2f%2f',
    '/%2f/',
    '/%5c%5c',
    '/%2F%2F',
    '/%5C',
    '//%09/',
    '///%09/',
    '//%5c',
    '/./',
    '/../',
    '/.//',
    '/a/..//',
    '/a/b/../..//',
    '/%2e%2e//',
    '/%2e//',
    '/x/%2e%2e//',
    '/.%2f/',
    '/%2e/%2f',
    'https://',
    'http://',
    'https:',
    'http:',
    'HTTPS://',
    '//https://',
    '/https://',
    'javascript:',
    'JaVaScRiPt:',
    'data:text/html,',
    '\u0000/',
    '/\u0000/',
    '/\u001f/',
    '/\u007f/',
    ' //',
    '\t//',
  ];
  const generated = lead.flatMap((l) => hosts.map((h) => l + h));
  const listed = [
    '',
    ' ',
    'evil.example',
    '@evil.example',
    '.evil.example',
    '<>//evil.example',
    '/<>//evil.example',
    '/x:1/:///%01javascript:alert(document.cookie)/',
    '\\j\\av\\a\\s\\cr\\i\\pt\\:\\a\\l\\ert\\(1\\)',
    '//evil%00.example',
    '//evil%E3%80%82example',
    '/https:/%5cevil.example/',
    '/https://%09/evil.example',
    '////\\;@evil.example',
    '///\\;@evil.example',
    '//;@evil.example',
    '/\\/\\/evil.example/',
    'http://evil.example%2f%2f.app.example.com/',
    '%68%74%74%70%3a%2f%2fevil.example',
    `/${'a'.repeat(2048)}`,
    '/%',
    '/%zz',
    '/%E0%A4%A',
  ];

  it.each([...generated, ...listed])('%j never leaves the origin', (raw) => {
    const out = safeLocalPath(raw);
    expect(out.startsWith('/')).toBe(true);
    expect(out).not.toMatch(/^[/\\][\s\u0000-\u001f]*[/\\]/);
    expect(out).not.toMatch(/[\u0000-\u001f\u007f\\]/);
    expect(new URL(out, BASE).origin).toBe(BASE);
  });

  it.each([...generated, ...listed])('%j gives a stable answer (safeLocalPath of its own output is the same)', (raw) => {
    const out = safeLocalPath(raw);
    expect(safeLocalPath(out)).toBe(out);
  });

  // What is returned must stay local after one more percent-decoding too (a router or backend that decodes
  // the path again): /a/%2e%2e/%2fevil.example resolves to /%2fevil.example, which decodes to //evil.example.
  it.each([
    '/a/%2e%2e/%2fevil.example',
    '/a/%2E%2E/%2Fevil.example',
    '/a/%2e%2e/%5cevil.example',
    '/a/%2e%2e/%5Cevil.example',
    '/a/b/%2e%2e/%2e%2e/%2fevil.example',
    '/a/.%2e/%2fevil.example',
    '/a/%2e./%2fevil.example',
    '/a/%2e%2e/%2f/evil.example',
    '/a/%2e%2e/%2f%09/evil.example',
    '/a/%2e%2e/%2f%2e%2e/evil.example',
    '/%2e%2e/%2f%2fevil',
    '/%2e/%2fevil.example',
    '/a/../%2F%2Fevil',
    '/a/./../%2f%5cevil',
    '/a/%2e%2e%2f%2fevil.example',
    '/a/%2e%2e/%252fevil.example',
    '/a/%2e%2e/%255cevil.example',
    '/%252f%252fevil.example',
    '/%25252f%25252fevil.example',
    '/a/%2e%2e/%25%32%66evil.example',
  ])('%j falls back to /', (raw) => {
    expect(safeLocalPath(raw)).toBe('/');
  });

  it('falls back to / for anything but a local path string', () => {
    for (const v of [undefined, null, 42, ['/a'], { toString: () => '/a' }]) expect(safeLocalPath(v)).toBe('/');
  });

  it.each([
    ['/', '/'],
    ['/dashboard', '/dashboard'],
    ['/a/b?c=d#e', '/a/b?c=d#e'],
    ['/dashboard?tab=1&x=%2F%2F', '/dashboard?tab=1&x=%2F%2F'],
    ['/caf%C3%A9', '/caf%C3%A9'],
    ['/a/./b/../c', '/a/c'],
    ['/search?q=//evil.example', '/search?q=//evil.example'],
    ['/a/%2e%2e/b', '/b'],
    ['/a/%2e%2e/%2e%2e/b%2fc', '/b%2fc'],
    ['/100%25', '/100%25'],
    ['/#//evil.example', '/#//evil.example'],
  ])('keeps the local target %j as %j', (raw, expected) => {
    expect(safeLocalPath(raw)).toBe(expected);
  });

  it('property: for strings of slashes, dots, escapes, letters and whitespace, the answer and its decoding stay on the origin', () => {
    const PROTOCOL_RELATIVE = /^[/\\](?:[\s\v]*|\.{1,2})[/\\]/;
    const SCHEME = /^[a-z][a-z0-9+.-]*:/i;
    const piece = fc.constantFrom(
      '/',
      '/',
      '\\',
      '.',
      '..',
      '%2e',
      '%2E',
      '%2f',
      '%2F',
      '%5c',
      '%5C',
      '%25',
      '%',
      'a',
      'b',
      'evil.example',
      'https',
      '?',
      '#',
      ':',
      '@',
      ' ',
      '\t',
      '\n',
      '\r',
      '\u00a0',
      '\u3000',
      '\u2028',
      '%20',
      '%09',
      '%0a',
      '%c2%a0',
    );
    const input = fc.oneof(
      fc.array(piece, { maxLength: 14 }).map((p) => p.join('')),
      fc.array(piece, { maxLength: 14 }).map((p) => `/${p.join('')}`),
    );
    const decodeOnce = (s: string): string | undefined => {
      try {
        return decodeURIComponent(s);
      } catch {
        return undefined;
      }
    };
    fc.assert(
      fc.property(input, (raw) => {
        const out = safeLocalPath(raw);
        expect(out === '/' || /^\/[^/\\]/.test(out), JSON.stringify({ raw, out })).toBe(true);
        for (const form of [out, decodeOnce(out)]) {
          if (form === undefined) continue;
          expect(form, JSON.stringify({ raw, out, form })).not.toMatch(PROTOCOL_RELATIVE);
          expect(form, JSON.stringify({ raw, out, form })).not.toMatch(SCHEME);
          const resolved = new URL(form, BASE);
          expect(resolved.origin, JSON.stringify({ raw, out, form })).toBe(BASE);
          expect(resolved.pathname, JSON.stringify({ raw, out, form })).not.toMatch(PROTOCOL_RELATIVE);
        }
        expect(safeLocalPath(out), JSON.stringify({ raw, out })).toBe(out);
      }),
      { numRuns: 2000 },
    );
  });
});
