import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (tests/docs/../..). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export const readRepoFile = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

/** Markdown with fenced code blocks removed, so an example never counts as documentation. */
export function withoutCodeBlocks(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
}

/** The cells of every table row outside code blocks (header and separator rows included), trimmed. */
export function tableRows(markdown: string): string[][] {
  const rows: string[][] = [];
  for (const line of withoutCodeBlocks(markdown).split('\n')) {
    const trimmed = line.trim();
    if (!trimmed.startsWith('|')) continue;
    // Split on pipes that are not escaped (\|) and not inside `code`.
    const cells: string[] = [];
    let cell = '';
    let inCode = false;
    for (let i = 1; i < trimmed.length; i++) {
      const c = trimmed[i] as string;
      if (c === '\\' && trimmed[i + 1] === '|') {
        cell += '|';
        i++;
        continue;
      }
      if (c === '`') inCode = !inCode;
      if (c === '|' && !inCode) {
        cells.push(cell.trim());
        cell = '';
        continue;
      }
      cell += c;
    }
    if (cell.trim() !== '') cells.push(cell.trim());
    rows.push(cells);
  }
  return rows;
}

/** `name` when the cell is exactly one code span, else undefined. */
export function codeCell(cell: string | undefined): string | undefined {
  const m = /^`([^`]+)`$/.exec(cell ?? '');
  return m?.[1];
}

/** The first code span in a cell, or undefined. */
export function firstCodeSpan(cell: string | undefined): string | undefined {
  return /`([^`]*)`/.exec(cell ?? '')?.[1];
}
