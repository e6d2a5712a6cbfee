import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { CONFIG_ENV as ENV, CONFIG_FILE as FILE, configProblems, loadTestConfig } from '../helpers/config-problems.ts';
import { loadConfig } from '../../src/config/load.ts';
import { compilePolicy } from '../../src/policy/runtime.ts';
import { readRepoFile } from '../docs/markdown.ts';
import { writeConfigFile } from '../helpers/gatehouse.ts';
import { ROOT } from '../helpers/main-process.ts';
import { startBareGatehouse } from '../helpers/proxy-stack.ts';

/** A mapping with `rules` written as YAML flow mappings, one a line. */
const withRules = (rules: readonly string[], extra = '') =>
  `mappings:\n  - frontendHost: app.example.com\n    backend: http://orders:8080\n${extra}    rules:\n${rules.map((r) => `      - ${r}\n`).join('')}`;

/** Every problem loading and compiling the policy reports (fails the test when the configuration is accepted). */
const problems = (yaml: string): readonly string[] => configProblems(() => compilePolicy(loadTestConfig(yaml)));

describe('route rules in config.yml: every problem named, with how to fix it', () => {
  it.each([
    ['/admin/**', '"**" has characters'],
    ['admin/*', 'must start with "/"'],
    ['/a/*/b', '"*" may only be the last segment'],
    ['/items/:', '":" is not a parameter'],
    ['/items/:id-:rev', '":id-:rev" is not a parameter'],
    ['/a/../b', 'empty and dot segments'],
    ['/a//b', 'empty and dot segments'],
  ])('match.path %s', (path, why) => {
    const list = problems(withRules(['{ match: { path: "/ok/*" } }', `{ match: { path: ${JSON.stringify(path)} }, auth: none }`]));
    expect(list).toHaveLength(1);
    expect(list[0]).toContain(`GATEHOUSE_CONFIG mappings[0].rules[1].match.path: ${JSON.stringify(path)} `);
    expect(list[0]).toContain(why);
    expect(list[0]).toContain('e.g. "/admin/*"');
  });

  it('a pattern that can never match under the pathPrefix says to include the prefix', () => {
    const list = problems(
      withRules(
        ['{ match: { path: "/admin/*" } }', '{ match: { path: "/:any/x" } }', '{ match: { path: "/Orders/*" } }'],
        '    pathPrefix: /orders\n',
      ),
    );
    expect(list).toEqual([
      'GATEHOUSE_CONFIG mappings[0].rules[0].match.path: "/admin/*" can never match: rules see the whole path after /api, pathPrefix included, so start it with "/orders" (e.g. "/orders/admin/*")',
    ]);
  });

  it("claims on an auth: none rule (its own or the mapping's) are refused: nothing would be checked", () => {
    expect(problems(withRules(['{ match: { path: "/a" }, auth: none, requireClaims: { groups: admin } }']))).toEqual([
      'GATEHOUSE_CONFIG mappings[0].rules[0]: requireClaims and emailDomains need an identity, which auth: none never looks up; set auth: required on the rule (or optional, and anonymous callers get 401)',
    ]);
    expect(problems(withRules(['{ match: { path: "/a" }, emailDomains: [example.com] }'], '    auth: none\n'))).toHaveLength(1);
    // The rule's own auth counts, not the mapping's.
    compilePolicy(
      loadConfig(ENV, {
        readFile: () => withRules(['{ match: { path: "/a" }, auth: required, emailDomains: [example.com] }'], '    auth: none\n'),
      }),
    );
  });

  it('every problem of every mapping at once', () => {
    const yaml =
      withRules(['{ match: { path: "/a/**" } }', '{ match: { path: "/b" } }', '{ match: { path: "c" } }']) +
      '  - frontendHost: other.example.com\n    backend: http://other:8080\n    rules:\n      - { match: { path: "/x/*/y" } }\n';
    expect(problems(yaml).map((p) => p.split(':', 2)[0])).toEqual([
      'GATEHOUSE_CONFIG mappings[0].rules[0].match.path',
      'GATEHOUSE_CONFIG mappings[0].rules[2].match.path',
      'GATEHOUSE_CONFIG mappings[1].rules[0].match.path',
    ]);
  });

  it.each([
    [
      '{ match: { path: "/a" }, requireClaim: { groups: admin } }',
      '/mappings/0/rules/0/requireClaim: is not a known field; did you mean `requireClaims`?',
    ],
    ['{ match: { path: "/a" }, auth: requried }', '/mappings/0/rules/0/auth: must be one of required, optional, none'],
    ['{ path: "/a" }', '/mappings/0/rules/0'],
    ['{ match: { path: "/a" }, methods: [] }', '/mappings/0/rules/0/methods'],
    ['{ match: { path: "/a", methods: ["GET /"] } }', '/mappings/0/rules/0/match/methods/0'],
    ['{ match: { path: "/a" }, emailDomains: ["@example.com"] }', '/mappings/0/rules/0/emailDomains/0'],
    ['{ match: { path: "/a" }, requireClaims: { groups: { any: admin } } }', '/mappings/0/rules/0/requireClaims/groups'],
    ['{ match: { path: "/a" }, requireClaims: {} }', '/mappings/0/rules/0/requireClaims'],
  ])('schema: %s', (rule, message) => {
    const list = problems(withRules([rule]));
    expect(
      list.some((p) => p.startsWith(`GATEHOUSE_CONFIG ${FILE} ${message}`)),
      list.join('\n'),
    ).toBe(true);
  });

  it('identityHeaderEncoding and sendUnverifiedEmail are checked too', () => {
    const yaml =
      'mappings:\n  - frontendHost: a.example\n    backend: http://a:1\n    identityHeaderEncoding: base64\n    sendUnverifiedEmail: "yes"\n';
    const list = problems(yaml);
    expect(list.some((p) => p.includes('/mappings/0/identityHeaderEncoding: must be one of rfc8187, percent'))).toBe(true);
    expect(list.some((p) => p.includes('/mappings/0/sendUnverifiedEmail'))).toBe(true);
  });

  it('config.example.yml compiles, rules included', () => {
    const text = readRepoFile('config.example.yml');
    const config = loadConfig({ ...ENV, TENANT_BACKEND_URL: 'http://tenant:8080' }, { readFile: () => text });
    const runtime = compilePolicy(config);
    expect(runtime.routes.routes.some((r) => r.rules.length > 0)).toBe(true);
  });

  it('Gatehouse does not start with a rule that does not compile', async () => {
    await expect(startBareGatehouse(withRules(['{ match: { path: "/a/**" }, auth: none }']))).rejects.toThrow(
      /mappings\[0\]\.rules\[0\]\.match\.path/,
    );
  });

  it('gatehouse check reports it with exit code 1', async () => {
    const path = writeConfigFile(withRules(['{ match: { path: "/a/**" } }']));
    const child = spawn(process.execPath, ['src/main.ts', 'check'], {
      cwd: ROOT,
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...ENV, GATEHOUSE_CONFIG: path },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(1);
    expect(stdout).toContain('GATEHOUSE_CONFIG mappings[0].rules[0].match.path: "/a/**"');
  });
});
