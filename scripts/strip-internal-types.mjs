// Part of `npm run prepack`: the declaration files of modules that are not the public API
// (the kernel's, the cluster's, the CLI's, the dashboard's, the wire codec's) are shipped without
// their doc comments, which users read in the sources; the public API's keep theirs. This keeps the
// tarball small (the packaging test holds it under 300 kB). Reprinting through the TypeScript
// printer, not a regex, so nothing but comments changes.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

const INTERNAL = ['kernel', 'cluster', 'cli', 'dashboard', 'wire', 'core', 'map'];
const root = join(process.cwd(), 'dist', 'src');
const printer = ts.createPrinter({ removeComments: true });

function* files(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* files(p);
    else if (name.endsWith('.d.ts')) yield p;
  }
}

let before = 0;
let after = 0;
for (const dir of INTERNAL) {
  for (const file of files(join(root, dir))) {
    const text = readFileSync(file, 'utf8');
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
    const out = printer.printFile(source);
    before += text.length;
    after += out.length;
    writeFileSync(file, out);
  }
}
process.stderr.write(`internal declarations: ${before} -> ${after} bytes\n`);
