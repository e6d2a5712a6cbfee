import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = join(resolve(dirname(fileURLToPath(import.meta.url)), '../..'), 'src');

/** What makes a SessionSecret or reads one back as text: session/ only (docs/architecture.md). */
const SECRET_FUNCTIONS = ['parseSessionSecret', 'newSessionSecret', 'secretText', 'detachedSecret'];

function listTs(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    return statSync(full).isDirectory() ? listTs(full) : name.endsWith('.ts') ? [full] : [];
  });
}

describe('the session secret stays in session/', () => {
  it('no file outside src/session/ makes a SessionSecret or reads its text', () => {
    const offenders: string[] = [];
    for (const file of listTs(SRC)) {
      const rel = relative(SRC, file).split(sep).join('/');
      if (rel.startsWith('session/')) continue;
      const text = readFileSync(file, 'utf8');
      for (const name of SECRET_FUNCTIONS) if (new RegExp(`\\b${name}\\b`).test(text)) offenders.push(`src/${rel} uses ${name}`);
      if (/as unknown as SessionSecret|as SessionSecret\b/.test(text)) offenders.push(`src/${rel} casts to SessionSecret`);
    }
    expect(offenders).toEqual([]);
  });

  it('the check sees a use (it is not vacuous)', () => {
    const text = readFileSync(join(SRC, 'session/cookie.ts'), 'utf8');
    expect(SECRET_FUNCTIONS.some((name) => new RegExp(`\\b${name}\\b`).test(text))).toBe(true);
  });
});
