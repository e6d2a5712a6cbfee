import { describe, expect, it } from 'vitest';
import { CODES } from '../../src/errors.ts';
import { codeCell, readRepoFile, tableRows } from './markdown.ts';

/** docs/errors.md must list exactly the codes of CODES, each once, with its status. */
describe('docs/errors.md matches CODES', () => {
  const rows = tableRows(readRepoFile('docs/errors.md'))
    .filter((cells) => /^\d{3}$/.test(cells[1] ?? '') && codeCell(cells[0]) !== undefined)
    .map((cells) => ({ code: codeCell(cells[0]) as string, status: Number(cells[1]), when: cells[2] ?? '' }));

  it('has a code table', () => {
    expect(rows.length).toBeGreaterThan(0);
  });

  it('lists every code of CODES and nothing else, each once', () => {
    const documented = rows.map((r) => r.code);
    expect([...documented].sort()).toEqual(Object.keys(CODES).sort());
    expect(new Set(documented).size).toBe(documented.length);
  });

  it('gives each code the status CODES maps it to', () => {
    const wrong = rows
      .filter((r) => r.code in CODES && CODES[r.code as keyof typeof CODES].status !== r.status)
      .map((r) => `${r.code}: documented ${r.status}, CODES says ${CODES[r.code as keyof typeof CODES].status}`);
    expect(wrong).toEqual([]);
  });

  it('says when each code happens', () => {
    expect(rows.filter((r) => r.when.length < 20).map((r) => r.code)).toEqual([]);
  });
});
