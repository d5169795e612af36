/**
 * Prints the CLI reference generated from the command tree, or (--write) puts it into
 * README.md between its markers. `--check` exits 1 when the README differs.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/kernel/native.js';
import { cliReference, withReference } from '../src/cli/reference.js';

const readmePath = join(packageRoot(), 'README.md');
const reference = cliReference();
const mode = process.argv[2];
if (mode === '--write' || mode === '--check') {
  const readme = readFileSync(readmePath, 'utf8');
  const next = withReference(readme, reference);
  if (mode === '--check') {
    if (next !== readme) {
      process.stderr.write('README.md: the CLI reference is out of date; run `node dist/scripts/cli-reference.js --write`\n');
      process.exit(1);
    }
  } else if (next !== readme) {
    writeFileSync(readmePath, next);
    process.stderr.write('README.md: CLI reference updated\n');
  }
} else {
  process.stdout.write(reference);
}
