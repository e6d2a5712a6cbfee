import { describe, expect, it } from 'vitest';
import { findImports } from './scan-imports.ts';

const specs = (src: string) => findImports(src).map((i) => `${i.kind} ${i.specifier}`);

describe('findImports (the scanner behind the architecture test)', () => {
  it('classifies static, type-only, dynamic and type-query imports', () => {
    const src = [
      "import { a } from './a.ts';",
      "import type { B } from './b.ts';",
      "import { type C, d } from './c.ts';",
      "import * as e from 'e';",
      'import f, { g } from "f";',
      "import './side-effect.ts';",
      "export { h } from './h.ts';",
      "export * from './star.ts';",
      "export type { I } from './i.ts';",
      "const j = await import('./j.ts');",
      "let k: Awaited<ReturnType<typeof import('./k.ts').make>>;",
      "interface L { readonly p: import('l').default }",
      "import type from './default-named-type.ts';",
      'import {',
      '  m,',
      '  n,',
      "} from './multi-line.ts';",
    ].join('\n');
    expect(specs(src)).toEqual([
      'static ./a.ts',
      'type ./b.ts',
      'static ./c.ts',
      'static e',
      'static f',
      'static ./side-effect.ts',
      'static ./h.ts',
      'static ./star.ts',
      'type ./i.ts',
      'dynamic ./j.ts',
      'type-query ./k.ts',
      'type-query l',
      'static ./default-named-type.ts',
      'static ./multi-line.ts',
    ]);
  });

  it('ignores imports inside comments, strings, templates and regular expressions', () => {
    const src = [
      "// import { x } from './commented.ts';",
      "/* import y from './block.ts'; */",
      'const s = "import z from \'./in-string.ts\'";',
      "const t = `import w from './in-template.ts' ${`nested ${'import(\"./nested.ts\")'}`}`;",
      "const re = /[^'\"]import\\('x'\\)/g;",
      'const q = a / b; const r = "/";',
      'const u = { import: 1 }.import;',
      'const meta = import.meta.url;',
      'export const v = 1;',
      'export type W = string;',
      'export { v as vv };',
      "import { real } from './real.ts';",
    ].join('\n');
    expect(specs(src)).toEqual(['static ./real.ts']);
  });

  it('reports the line of each import', () => {
    expect(findImports("\n\n// c\nimport { a } from './a.ts';\nconst x = `\n${1}\n`;\nimport('./b.ts');").map((i) => i.line)).toEqual([
      4, 8,
    ]);
  });

  it('refuses a computed dynamic import it cannot check', () => {
    expect(() => findImports('const m = await import(name);')).toThrow(/computed specifier/);
  });
});
