/**
 * A small TypeScript import scanner for the architecture tests. TypeScript 7 ships no JS compiler API,
 * so this tokenises just enough of the language to find import specifiers reliably: comments, string
 * literals, template literals (with nested `${}`) and regular expression literals are skipped, so an
 * `import` inside any of them is never mistaken for a real one, and a quote inside a regex
 * (`/[^'"]/`) never starts a string.
 */

export type ImportKind =
  /** `import x from`, `import {}`, `import 'x'`, `export ... from`: loaded when the file loads. */
  | 'static'
  /** `import type` / `export type ... from`: erased, never loaded. */
  | 'type'
  /** `import('x')` in an expression: loaded on demand. */
  | 'dynamic'
  /** `typeof import('x')` or `import('x').T` in a type position: erased, never loaded. */
  | 'type-query';

export interface FoundImport {
  readonly specifier: string;
  readonly kind: ImportKind;
  /** 1-based line of the specifier. */
  readonly line: number;
}

interface Token {
  readonly type: 'word' | 'punct' | 'string' | 'template' | 'regex' | 'number';
  readonly value: string;
  readonly line: number;
}

const REGEX_AFTER_WORDS = new Set([
  'return',
  'typeof',
  'instanceof',
  'in',
  'of',
  'new',
  'delete',
  'void',
  'throw',
  'case',
  'do',
  'else',
  'yield',
  'await',
]);

function isIdentStart(c: string): boolean {
  return /[A-Za-z_$\u0080-\uffff]/.test(c);
}

function isIdentPart(c: string): boolean {
  return /[A-Za-z0-9_$\u0080-\uffff]/.test(c);
}

/** Splits TypeScript source into tokens; comments and whitespace are dropped. */
export function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  // One entry per open template literal: the brace depth at which its `${` was opened.
  const templateStack: number[] = [];
  let braceDepth = 0;

  const prevSignificant = (): Token | undefined => tokens[tokens.length - 1];
  const regexAllowed = (): boolean => {
    const prev = prevSignificant();
    if (!prev) return true;
    if (prev.type === 'word') return REGEX_AFTER_WORDS.has(prev.value);
    if (prev.type === 'punct') return ![')', ']', '}'].includes(prev.value);
    return false;
  };

  const readQuoted = (quote: string): string => {
    const startLine = line;
    let out = '';
    i++;
    while (i < src.length && src[i] !== quote) {
      if (src[i] === '\\') {
        out += src[i + 1] ?? '';
        if (src[i + 1] === '\n') line++;
        i += 2;
        continue;
      }
      if (src[i] === '\n') throw new Error(`unterminated string at line ${startLine}`);
      out += src[i];
      i++;
    }
    i++;
    return out;
  };

  /** Reads template text from the current position up to and including "`" or "${". Returns true when it stopped at "${". */
  const readTemplateChunk = (): boolean => {
    while (i < src.length) {
      const c = src[i];
      if (c === '\\') {
        i += 2;
        continue;
      }
      if (c === '\n') line++;
      if (c === '`') {
        i++;
        return false;
      }
      if (c === '$' && src[i + 1] === '{') {
        i += 2;
        return true;
      }
      i++;
    }
    throw new Error('unterminated template literal');
  };

  while (i < src.length) {
    const c = src[i] as string;
    const next = src[i + 1];
    if (c === '\n') {
      line++;
      i++;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r' || c === '\f' || c === '\v' || c === '\ufeff') {
      i++;
      continue;
    }
    if (c === '/' && next === '/') {
      while (i < src.length && src[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && next === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end === -1 ? src.length : end + 2;
      for (let k = i; k < stop; k++) if (src[k] === '\n') line++;
      i = stop;
      continue;
    }
    if (c === '#' && next === '!' && i === 0) {
      while (i < src.length && src[i] !== '\n') i++;
      continue;
    }
    if (c === '"' || c === "'") {
      const startLine = line;
      tokens.push({ type: 'string', value: readQuoted(c), line: startLine });
      continue;
    }
    if (c === '`') {
      const startLine = line;
      i++;
      if (readTemplateChunk()) templateStack.push(braceDepth);
      tokens.push({ type: 'template', value: '', line: startLine });
      continue;
    }
    if (c === '/' && regexAllowed()) {
      const startLine = line;
      let inClass = false;
      i++;
      while (i < src.length) {
        const r = src[i];
        if (r === '\\') {
          i += 2;
          continue;
        }
        if (r === '\n') throw new Error(`unterminated regular expression at line ${startLine}`);
        if (r === '[') inClass = true;
        else if (r === ']') inClass = false;
        else if (r === '/' && !inClass) break;
        i++;
      }
      i++;
      while (i < src.length && isIdentPart(src[i] as string)) i++;
      tokens.push({ type: 'regex', value: '', line: startLine });
      continue;
    }
    if (isIdentStart(c)) {
      const start = i;
      while (i < src.length && isIdentPart(src[i] as string)) i++;
      tokens.push({ type: 'word', value: src.slice(start, i), line });
      continue;
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(next ?? ''))) {
      const start = i;
      while (i < src.length && /[0-9A-Za-z_.]/.test(src[i] as string)) i++;
      tokens.push({ type: 'number', value: src.slice(start, i), line });
      continue;
    }
    if (c === '{') {
      braceDepth++;
      tokens.push({ type: 'punct', value: c, line });
      i++;
      continue;
    }
    if (c === '}') {
      if (templateStack.length > 0 && templateStack[templateStack.length - 1] === braceDepth) {
        // The end of a `${...}` substitution: back into the template text.
        templateStack.pop();
        i++;
        if (readTemplateChunk()) templateStack.push(braceDepth);
        // The whole template counts as one operand: drop what a substitution left as the "previous token".
        tokens.push({ type: 'template', value: '', line });
        continue;
      }
      braceDepth--;
      tokens.push({ type: 'punct', value: c, line });
      i++;
      continue;
    }
    if (c === '.' && next === '.' && src[i + 2] === '.') {
      tokens.push({ type: 'punct', value: '...', line });
      i += 3;
      continue;
    }
    tokens.push({ type: 'punct', value: c, line });
    i++;
  }
  if (templateStack.length > 0) throw new Error('unterminated template literal substitution');
  return tokens;
}

const is = (t: Token | undefined, type: Token['type'], value?: string): boolean =>
  t !== undefined && t.type === type && (value === undefined || t.value === value);

/** Every import specifier in `src`, with how it is imported. */
export function findImports(src: string): FoundImport[] {
  const tokens = tokenize(src);
  const found: FoundImport[] = [];

  /** From `start`, the string after the first `from` before the statement ends. */
  const fromClause = (start: number): Token | undefined => {
    let depth = 0;
    for (let k = start; k < tokens.length; k++) {
      const t = tokens[k] as Token;
      if (t.type === 'punct' && (t.value === '{' || t.value === '(')) depth++;
      else if (t.type === 'punct' && (t.value === '}' || t.value === ')')) depth--;
      else if (depth === 0 && t.type === 'punct' && t.value === ';') return undefined;
      else if (
        depth === 0 &&
        k > start &&
        t.type === 'word' &&
        (t.value === 'import' || t.value === 'export') &&
        !is(tokens[k - 1], 'punct', '.')
      )
        return undefined;
      else if (depth === 0 && is(t, 'word', 'from') && is(tokens[k + 1], 'string')) return tokens[k + 1] as Token;
      if (depth < 0) return undefined;
    }
    return undefined;
  };

  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k] as Token;
    if (t.type !== 'word' || (t.value !== 'import' && t.value !== 'export')) continue;
    const prev = tokens[k - 1];
    // obj.import / obj?.import are property accesses, not keywords.
    if (is(prev, 'punct', '.')) continue;
    const n1 = tokens[k + 1];
    const n2 = tokens[k + 2];

    if (t.value === 'import') {
      if (is(n1, 'punct', '(')) {
        if (is(n2, 'string') && (is(tokens[k + 3], 'punct', ')') || is(tokens[k + 3], 'punct', ','))) {
          const after = tokens[k + 4];
          const typeQuery =
            is(prev, 'word', 'typeof') ||
            (is(prev, 'punct', ':') && is(after, 'punct', '.')) ||
            (is(prev, 'punct', '<') && is(after, 'punct', '.'));
          const spec = n2 as Token;
          found.push({ specifier: spec.value, kind: typeQuery ? 'type-query' : 'dynamic', line: spec.line });
        } else if (!is(prev, 'word', 'typeof')) {
          throw new Error(`line ${t.line}: import() with a computed specifier cannot be checked`);
        }
        continue;
      }
      if (is(n1, 'punct', '.')) continue; // import.meta
      // An object key or label named import (`{ import: x }`) is not a statement.
      if (n1?.type === 'punct' && n1.value !== '{' && n1.value !== '*') continue;
      if (n1?.type === 'string') {
        found.push({ specifier: n1.value, kind: 'static', line: n1.line });
        continue;
      }
      // `import type X from`, `import type { X } from` are type-only; `import type from 'x'` imports a default named "type".
      const typeOnly = is(n1, 'word', 'type') && !is(n2, 'word', 'from') && !is(n2, 'punct', ',');
      // `import x = require('y')` is not valid under verbatimModuleSyntax + ESM; refuse to guess.
      const spec = fromClause(k + 1);
      if (!spec) throw new Error(`line ${t.line}: import statement without a from clause`);
      found.push({ specifier: spec.value, kind: typeOnly ? 'type' : 'static', line: spec.line });
      continue;
    }

    // export ... from 'x' (re-exports load the module too).
    if (is(n1, 'punct', '*') || is(n1, 'punct', '{') || (is(n1, 'word', 'type') && (is(n2, 'punct', '{') || is(n2, 'punct', '*')))) {
      const spec = fromClause(k + 1);
      if (spec) found.push({ specifier: spec.value, kind: is(n1, 'word', 'type') ? 'type' : 'static', line: spec.line });
    }
  }
  return found;
}
