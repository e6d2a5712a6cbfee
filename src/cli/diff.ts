/** Past this many line pairs the table costs more than a config review is worth: every line is shown as replaced. */
const MAX_CELLS = 4_000_000;

/**
 * A line diff of two texts for a person to review (`config apply`): changed lines marked `-`/`+`, with `context`
 * unchanged lines around each change and `@@ line N` at the start of each hunk. Empty when the texts are equal.
 */
export function lineDiff(before: string, after: string, context = 2): string {
  if (before === after) return '';
  const a = before.split('\n');
  const b = after.split('\n');
  const ops: Array<{ kind: ' ' | '-' | '+'; line: string; at: number }> = [];
  if (a.length * b.length > MAX_CELLS) {
    a.forEach((line, i) => ops.push({ kind: '-', line, at: i + 1 }));
    b.forEach((line, i) => ops.push({ kind: '+', line, at: i + 1 }));
  } else {
    // Longest common subsequence, from the end, so the walk below goes forward.
    const width = b.length + 1;
    const lcs = new Uint32Array((a.length + 1) * width);
    for (let i = a.length - 1; i >= 0; i--)
      for (let j = b.length - 1; j >= 0; j--)
        lcs[i * width + j] =
          a[i] === b[j] ? (lcs[(i + 1) * width + j + 1] ?? 0) + 1 : Math.max(lcs[(i + 1) * width + j] ?? 0, lcs[i * width + j + 1] ?? 0);
    let i = 0;
    let j = 0;
    while (i < a.length || j < b.length) {
      if (i < a.length && j < b.length && a[i] === b[j]) {
        ops.push({ kind: ' ', line: a[i] ?? '', at: j + 1 });
        i++;
        j++;
      } else if (i < a.length && (j >= b.length || (lcs[(i + 1) * width + j] ?? 0) >= (lcs[i * width + j + 1] ?? 0))) {
        ops.push({ kind: '-', line: a[i] ?? '', at: i + 1 });
        i++;
      } else {
        ops.push({ kind: '+', line: b[j] ?? '', at: j + 1 });
        j++;
      }
    }
  }
  const keep = ops.map((op, k) => op.kind !== ' ' || ops.slice(Math.max(0, k - context), k + context + 1).some((o) => o.kind !== ' '));
  let out = '';
  let open = false;
  ops.forEach((op, k) => {
    if (!keep[k]) {
      open = false;
      return;
    }
    if (!open) out += `@@ line ${op.at}\n`;
    open = true;
    out += `${op.kind} ${op.line}\n`;
  });
  return out;
}
