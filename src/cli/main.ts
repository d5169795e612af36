#!/usr/bin/env node
/** The `stratoswarm` executable. */
import { errorLine, EXIT_RUNTIME } from './errors.js';
import { main } from './program.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`${errorLine('', e)}\n`);
    process.exitCode = EXIT_RUNTIME;
  },
);
