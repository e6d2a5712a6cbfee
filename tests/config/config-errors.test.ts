import { describe, expect, it } from 'vitest';
import { CONFIG_SOURCE as SOURCE, configProblems, loadTestConfig } from '../helpers/config-problems.ts';
import { nearestName } from '../../src/config/validate.ts';

const mapping = (lines: string) => `mappings:\n  - frontendHost: app.example.com\n${lines}`;

/** Every problem loading reports, in order (fails the test when the configuration is accepted). */
const problems = (env: Record<string, string>, yaml = mapping('    backend: http://orders:8080\n')): readonly string[] =>
  configProblems(() => loadTestConfig(yaml, { env }));

/**
 * Config errors a person can act on: the field, the value that is wrong (secrets by length only), the nearest
 * known name for a typo, and what to write instead.
 */
describe('config errors say how to fix them', () => {
  it.each([
    ['timeout', 'timeoutMs'],
    ['bakend', 'backend'],
    ['Auth', 'auth'],
  ])('an unknown field %s suggests %s', (typo, known) => {
    const list = problems({}, mapping(`    backend: http://orders:8080\n    ${typo}: x\n`));
    expect(list).toEqual([`${SOURCE} /mappings/0/${typo}: is not a known field; did you mean \`${known}\`?`]);
  });

  it('an unknown field with no near name lists the known ones', () => {
    const [line] = problems({}, 'mappings: []\nroutes: []\n');
    expect(line).toBe(
      `${SOURCE} /routes: is not a known field (known: defaultBackend, allowedOrigins, csrf, mappings, admin, rateLimits, schemas)`,
    );
  });

  it('an enum names the value it got and the nearest allowed one', () => {
    expect(problems({}, mapping('    backend: http://orders:8080\n    auth: requried\n'))).toEqual([
      `${SOURCE} /mappings/0/auth: must be one of required, optional, none (got "requried"); did you mean required?`,
    ]);
    expect(problems({ LOG_LEVEL: 'warning' })).toEqual([
      'env LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent (got "warning"); did you mean warn?',
    ]);
  });

  it.each([
    ['127.0.0.1:9511', '"127.0.0.1:9511" is not an http(s) URL; write "http://127.0.0.1:9511"'],
    ['ftp://orders:21', '"ftp://orders:21": only http and https are accepted'],
    ['http://orders:8080/?v=1', '"http://orders:8080/?v=1": must not carry a query or a fragment'],
  ])('a backend of %s says what to write', (backend, reason) => {
    expect(problems({}, mapping(`    backend: "${backend}"\n`))).toEqual([`${SOURCE} /mappings/0/backend: ${reason}`]);
  });

  it('a backend with credentials is refused without repeating them', () => {
    const [line] = problems({}, mapping('    backend: "http://user:hunter2@orders:8080"\n'));
    expect(line).toBe(`${SOURCE} /mappings/0/backend: must not carry user:password (credentials in a URL end up in logs)`);
    expect(line).not.toContain('hunter2');
  });

  it('a base URL with a path says which origin to write', () => {
    expect(problems({ APP_BASE_URL: 'https://app.example.com/portal' })).toEqual([
      'env APP_BASE_URL: "https://app.example.com/portal": must be scheme://host[:port] with no path; write "https://app.example.com"',
    ]);
  });

  it('a short ADMIN_TOKEN gives its length, never its value, and the command that makes a good one', () => {
    const list = problems({ ADMIN_TOKEN: 'letmein-123' });
    expect(list).toEqual(['env ADMIN_TOKEN: is 11 characters; it needs at least 32: make one with `openssl rand -base64 48`']);
    expect(list.join('\n')).not.toContain('letmein');
  });

  it('a number out of range names the value', () => {
    expect(problems({ PORT: '99999' })).toEqual(['env PORT: must be <= 65535 (got 99999)']);
  });

  it('TRUST_PROXY=true is one problem that lists the accepted forms, not a regular expression', () => {
    const list = problems({ TRUST_PROXY: 'true' });
    expect(list).toHaveLength(1);
    expect(list[0]).toMatch(
      /^env TRUST_PROXY: "true" is not accepted: it would let any client forge its address and scheme; accepted: false/,
    );
    expect(list[0]).not.toMatch(/pattern|\^\(/);
    expect(problems({ TRUST_PROXY: '10.0.0.0/33' })[0]).toContain(
      '"10.0.0.0/33" is not an IP address or CIDR; accepted: false (nobody), a hop count',
    );
  });

  it('csrf.requireHeader: true on a mapping says what to write instead, in one line', () => {
    expect(problems({}, mapping('    backend: http://orders:8080\n    csrf: { requireHeader: true }\n'))).toEqual([
      `${SOURCE} /mappings/0/csrf/requireHeader: must be false (got true); false turns the header off for this mapping; to require one, write { name: X-CSRF, value: "1" }`,
    ]);
  });

  it.each(['Content-Type', 'accept', 'Origin', 'Sec-Fetch-Site'])('a CSRF header named %s is refused: it proves nothing', (name) => {
    const yaml = `csrf:\n  requireHeader: { name: ${name} }\n${mapping(`    backend: http://orders:8080\n    csrf: { requireHeader: { name: ${name}, value: x } }\n`)}`;
    const why = `${JSON.stringify(name)} cannot prove a same-origin call (a form sends it, or no page can); use a custom name such as X-CSRF`;
    expect(problems({}, yaml)).toEqual([
      `${SOURCE} /csrf/requireHeader/name: ${why}`,
      `${SOURCE} /mappings/0/csrf/requireHeader/name: ${why}`,
    ]);
  });

  it('a CORS origin with a path says which origin to write', () => {
    expect(problems({}, mapping('    backend: http://orders:8080\n    cors: { origins: ["https://spa.example.com/app"] }\n'))).toEqual([
      `${SOURCE} /mappings/0/cors/origins/0: "https://spa.example.com/app": must be scheme://host[:port] with no path; write "https://spa.example.com"`,
    ]);
  });

  it('a YAML error keeps its code frame', () => {
    const [line] = problems({}, 'mappings:\n  - frontendHost: app.example.com\n    backend: [unclosed\n');
    expect(line).toMatch(new RegExp(`^${SOURCE}: YAML error at line \\d+: `));
    expect(line).toContain('\n      | ');
  });

  it('nearestName leaves unrelated names alone', () => {
    expect(nearestName('zzz', ['backend', 'auth'])).toBeUndefined();
    expect(nearestName('websockets', ['websocket', 'auth'])).toBe('websocket');
  });
});
