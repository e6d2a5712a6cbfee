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
    '//', '///', '////', '/\\', '\\/', '\\\\', '/\\/', '/%09/', '/%0a/', '/%0d/', '/%20/', '/ /', '/\t/', '/%5c', '/%2f%2f', '/%2f/', '/%5c%5c',
    '/%2F%2F', '/%5C', '//%09/', '///%09/', '//%5c', '/./', '/../', '/.//', '/a/..//', '/a/b/../..//', '/%2e%2e//', '/%2e//', '/x/%2e%2e//',
    '/.%2f/', '/%2e/%2f', 'https://', 'http://', 'https:', 'http:', 'HTTPS://', '//https://', '/https://', 'javascript:', 'JaVaScRiPt:',
    'data:text/html,', '\u0000/', '/\u0000/', '/\u001f/', '/\u007f/', ' //', '\t//',
  ];
  const generated = lead.flatMap((l) => hosts.map((h) => l + h));
  const listed = [
    '', ' ', 'evil.example', '@evil.example', '.evil.example', '<>//evil.example', '/<>//evil.example',
    '/x:1/:///%01javascript:alert(document.cookie)/', '\\j\\av\\a\\s\\cr\\i\\pt\\:\\a\\l\\ert\\(1\\)', '//evil%00.example', '//evil%E3%80%82example',
    '/https:/%5cevil.example/', '/https://%09/evil.example', '////\\;@evil.example', '///\\;@evil.example', '//;@evil.example',
    '/\\/\\/evil.example/', 'http://evil.example%2f%2f.app.example.com/', '%68%74%74%70%3a%2f%2fevil.example',
    `/${'a'.repeat(2048)}`, '/%', '/%zz', '/%E0%A4%A',
  ];

  it.each([...generated, ...listed])('%j never leaves the origin', (raw) => {
    const out = safeLocalPath(raw);
    expect(out.startsWith('/')).toBe(true);
    expect(out).not.toMatch(/^[/\\][\s\u0000-\u001f]*[/\\]/);
    expect(out).not.toMatch(/[\u0000-\u001f\u007f\\]/);
    expect(new URL(out, BASE).origin).toBe(BASE);
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
  ])('keeps the local target %j as %j', (raw, expected) => {
    expect(safeLocalPath(raw)).toBe(expected);
  });
});
