#!/usr/bin/env node
// Runs every compiled benchmark (dist/bench/*.bench.js) in turn; each prints its own tables.
//   node scripts/bench.mjs [name-filter]
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'dist/bench');
if (!existsSync(dir)) {
  console.error('bench: dist/bench is missing; run `npm run build:ts`');
  process.exit(1);
}
const filter = process.argv[2] ?? '';
const files = readdirSync(dir).filter((f) => f.endsWith('.bench.js') && f.includes(filter)).sort();
let failed = 0;
for (const f of files) {
  console.log(`\n## ${f.replace(/\.js$/, '')}\n`);
  const r = spawnSync(process.execPath, ['--expose-gc', join(dir, f)], { stdio: 'inherit', cwd: root });
  if (r.status !== 0) {
    console.error(`bench: ${f} exited with ${r.status}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
