#!/usr/bin/env node
/** The `stratoswarm-oci` executable run directly by Node (the native front end reaches the same `run`). */
import { run } from './cli.js';

run(process.argv.slice(2), {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  stdio: [0, 1, 2],
  env: process.env,
  cwd: process.cwd(),
}).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`stratoswarm-oci: ${(e as Error).message}\n`);
    process.exitCode = 1;
  },
);
