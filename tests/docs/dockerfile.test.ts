import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, readRepoFile } from './markdown.ts';

/**
 * There is no Docker engine in CI, so the image cannot be built here: these checks keep the Dockerfile
 * consistent with the repository (what it copies exists and is in the build context, what it runs is
 * the start script, and it stays a non-root production image).
 */
const dockerfile = readRepoFile('Dockerfile');
const instructions = dockerfile
  .replace(/\\\n\s*/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));
const named = (keyword: string) => instructions.filter((l) => l.toUpperCase().startsWith(`${keyword} `));
const ignoreRules = readRepoFile('.dockerignore')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));

/** Whether .dockerignore (an allowlist: "**" then "!path" lines) keeps `path` in the build context. */
function inContext(path: string): boolean {
  let included = true;
  for (const rule of ignoreRules) {
    const negated = rule.startsWith('!');
    const pattern = (negated ? rule.slice(1) : rule).replace(/\/$/, '');
    const matches = pattern === '**' || pattern === '*' || path === pattern || path.startsWith(`${pattern}/`);
    if (matches) included = negated;
  }
  return included;
}

describe('Dockerfile', () => {
  it('builds on node:24-slim', () => {
    expect(named('FROM')).toEqual(['FROM node:24-slim']);
  });

  it('installs production dependencies only, from the lockfile', () => {
    expect(named('RUN').some((l) => /\bnpm ci\b[^&]*--omit=dev/.test(l))).toBe(true);
  });

  it('runs with NODE_ENV=production, as a non-root user', () => {
    expect(named('ENV').join(' ')).toMatch(/\bNODE_ENV=production\b/);
    const users = named('USER');
    expect(users.length).toBeGreaterThan(0);
    expect(users[users.length - 1]).not.toMatch(/^USER (root|0)(:|$)/i);
  });

  it('starts the way `npm start` does, in exec form (node receives SIGTERM)', () => {
    const pkg = JSON.parse(readRepoFile('package.json')) as { scripts: Record<string, string> };
    const cmd = named('CMD');
    expect(cmd).toHaveLength(1);
    const argv = JSON.parse((cmd[0] as string).slice(4)) as string[];
    expect(argv.join(' ')).toBe(pkg.scripts['start']);
  });

  it('has a HEALTHCHECK that uses node to fetch /healthz', () => {
    const check = named('HEALTHCHECK');
    expect(check).toHaveLength(1);
    expect(check[0]).toMatch(/CMD \["node", "-e", ".*fetch\(.*\/healthz/);
  });

  it('copies what the server reads at run time, from paths that exist and are in the build context', () => {
    const sources = named('COPY').flatMap((l) => {
      const parts = l
        .split(/\s+/)
        .slice(1)
        .filter((p) => !p.startsWith('--'));
      return parts.slice(0, -1);
    });
    for (const needed of ['package.json', 'package-lock.json', 'config.schema.json', 'src']) expect(sources).toContain(needed);
    // The demo page never ships: production serves PUBLIC_DIR or nothing at /.
    expect(sources).not.toContain('public');
    expect(sources.filter((s) => !existsSync(join(ROOT, s)))).toEqual([]);
    expect(sources.filter((s) => !inContext(s))).toEqual([]);
  });

  it('keeps secrets, git history, tests and local modules out of the build context', () => {
    for (const path of ['.env', '.git', 'node_modules', 'tests', 'config.yml', 'public']) expect(inContext(path), path).toBe(false);
  });
});
