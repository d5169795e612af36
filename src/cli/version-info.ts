/** The package this CLI belongs to: its root, version, and the spawner binary it ships. */
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root: src/cli (tsx, vitest) or dist/src/cli (built) sits below it. */
export const PACKAGE_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
})();

export const VERSION: string = (() => {
  try {
    return (JSON.parse(fs.readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();

/** Where the library looks for the spawner (STRATOSWARM_NATIVE_DIR first), and the first that exists. */
export function spawnerBinary(env: NodeJS.ProcessEnv = process.env): { path: string | undefined; tried: string[] } {
  const dirs = [
    ...(env.STRATOSWARM_NATIVE_DIR ? [env.STRATOSWARM_NATIVE_DIR] : []),
    join(PACKAGE_ROOT, 'build', 'Release'),
    join(PACKAGE_ROOT, 'build', 'Debug'),
    join(PACKAGE_ROOT, 'prebuilds', `${process.platform}-${process.arch}`),
  ];
  const tried = dirs.map((d) => join(d, 'stratoswarm-spawner'));
  return { path: tried.find((p) => fs.existsSync(p)), tried };
}
