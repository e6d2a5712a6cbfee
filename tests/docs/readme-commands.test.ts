import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, readRepoFile } from './markdown.ts';

const readme = readRepoFile('README.md');
const ciRun = readRepoFile('.ci/run');
const pkg = JSON.parse(readRepoFile('package.json')) as { scripts?: Record<string, string>; engines?: Record<string, string> };
const scripts = pkg.scripts ?? {};

/** Lines of the script that do something (no blanks, no comments). */
const ciLines = ciRun
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));

describe('README commands', () => {
  it('gives the quick start as exactly `npm ci && npm start`', () => {
    expect(readme).toMatch(/^npm ci && npm start$/m);
  });

  it('gives the test command as `npm test`', () => {
    expect(readme).toMatch(/^npm test$/m);
  });

  it('says where to log in, and tells how to get Node 24 the way .ci/run does', () => {
    expect(readme).toContain('http://localhost:8080');
    expect(readme).toContain('npm i -g --prefix /opt/node24 node@24');
    expect(ciRun).toContain('npm i -g --prefix /opt/node24 node@24');
    expect(readme).toMatch(/redis-server/);
  });

  it('mentions the benchmark script it has', () => {
    expect(readme).toContain('npm run bench');
  });
});

describe('.ci/run', () => {
  it('ends with `npm test`, the README command, after `npm ci`', () => {
    expect(ciLines[ciLines.length - 1]).toBe('npm test');
    expect(ciLines.findIndex((l) => /^npm ci\b/.test(l))).toBeGreaterThan(-1);
    expect(ciLines.findIndex((l) => /^npm ci\b/.test(l))).toBeLessThan(ciLines.length - 1);
  });

  it('stops on the first failure', () => {
    expect(ciRun.split('\n')[0]).toMatch(/^#!.*\bbash\b/);
    expect(ciRun).toMatch(/^set -euo pipefail$/m);
  });

  it('installs Node 24 when the node on PATH is older', () => {
    expect(ciRun).toMatch(/-lt 24/);
    expect(ciRun).toMatch(/npm i -g --prefix \/opt\/node24 node@24/);
    expect(ciRun).toMatch(/PATH=\/opt\/node24\/bin:\$PATH/);
  });

  it('installs redis-server when it is missing', () => {
    expect(ciRun).toMatch(/command -v redis-server/);
    expect(ciRun).toMatch(/apt-get install[^\n]*(redis-server|\$\{missing\[\*\]\}|"\$\{missing\[@\]\}")/);
    expect(ciRun).toMatch(/missing\+=\(redis-server\)/);
  });
});

describe('package.json scripts', () => {
  it('start runs the sources with node, as the README and Dockerfile say', () => {
    expect(scripts['start']).toBe('node src/main.ts');
    expect(existsSync(join(ROOT, 'src/main.ts'))).toBe(true);
  });

  it('test type-checks, checks formatting and lint, then runs vitest', () => {
    expect(scripts['test']).toBe('tsc --noEmit && npm run lint && vitest run');
    expect(scripts['lint']).toBe('prettier --check "**/*.ts" && oxlint --deny-warnings');
    expect(readme).toContain('`npm run format`');
  });

  it('bench runs a file that exists', () => {
    const bench = scripts['bench'];
    expect(bench).toMatch(/^node \S+\.ts$/);
    expect(existsSync(join(ROOT, (bench ?? '').replace(/^node /, '')))).toBe(true);
  });

  it('asks for Node 24', () => {
    expect(pkg.engines?.['node']).toMatch(/24/);
  });
});
