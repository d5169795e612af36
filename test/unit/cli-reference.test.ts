import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/program.js';
import { cliReference, REFERENCE_END, REFERENCE_START, withReference } from '../../src/cli/reference.js';

const README = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');

describe('the CLI reference', () => {
  it('in the README is exactly what the command tree renders (regenerate: node dist/scripts/cli-reference.js --write)', () => {
    const start = README.indexOf(REFERENCE_START);
    const end = README.indexOf(REFERENCE_END);
    expect(start, 'README has the reference markers').toBeGreaterThanOrEqual(0);
    expect(README.slice(start + REFERENCE_START.length + 1, end)).toBe(cliReference());
  });

  it('names every verb and every option of each', () => {
    const text = cliReference();
    const program = buildProgram();
    for (const verb of program.commands) {
      expect(text).toContain(`#### stratoswarm ${verb.name()}\n`);
      for (const o of verb.options) if (o.long !== '--help') expect(text, `${verb.name()} ${o.flags}`).toContain(`\`${o.flags.replace(/\|/g, '\\|')}`);
    }
    expect(text).toContain('| `-t, --tty` |');
    expect(text).toContain('| `--init` |');
  });

  it('replaces only the text between the markers, and says when they are missing', () => {
    const doc = `before\n${REFERENCE_START}\nold\n${REFERENCE_END}\nafter\n`;
    expect(withReference(doc, 'new\n')).toBe(`before\n${REFERENCE_START}\nnew\n${REFERENCE_END}\nafter\n`);
    expect(() => withReference('no markers', 'x')).toThrow(/markers/);
  });
});
