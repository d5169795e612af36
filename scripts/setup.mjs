#!/usr/bin/env node
// Prepares a host to build, test and run stratoswarm-runtime. Dependency-free (it runs
// before `npm ci`) and idempotent: each step checks whether it is needed first.
//
//   node scripts/setup.mjs [--quiet] [--no-image]
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, readdirSync, readlinkSync, statSync, symlinkSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const quiet = process.argv.includes('--quiet');
const withImage = !process.argv.includes('--no-image');

// Debian packages: the build (libseccomp-dev, compilers), the base image (busybox-static),
// bridged networking (containernetworking-plugins, iproute2 for tc) and the peers the
// benchmarks compare against (crun, runc, bubblewrap, hyperfine), zstd layers (zstd) and the
// registry the image tests pull from (docker-registry, with skopeo to push to it; attr's
// getfattr reads the overlay xattrs of unpacked layers), and the engines the OCI runtime
// interface is tested under (podman, containerd).
export const DEBIAN_PACKAGES = [
  'build-essential',
  'python3',
  'libseccomp-dev',
  'busybox-static',
  'iproute2',
  'containernetworking-plugins',
  'crun',
  'runc',
  'bubblewrap',
  'hyperfine',
  'zstd',
  'docker-registry',
  'skopeo',
  'attr',
  'podman',
  'containerd',
];

function say(msg) {
  if (!quiet) process.stderr.write(`setup: ${msg}\n`);
}

function fail(msg) {
  process.stderr.write(`setup: error: ${msg}\n`);
  process.exit(1);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit', ...opts });
  if (r.error) fail(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`\`${cmd} ${args.join(' ')}\` exited with ${r.status}`);
}

function newestMtime(paths) {
  let newest = 0;
  const visit = (p) => {
    if (!existsSync(p)) return;
    const st = statSync(p);
    if (st.isDirectory()) for (const e of readdirSync(p)) visit(join(p, e));
    else newest = Math.max(newest, st.mtimeMs);
  };
  for (const p of paths) visit(p);
  return newest;
}

if (process.platform !== 'linux') fail('stratoswarm-runtime runs on Linux only');
if (process.getuid() !== 0) fail('run as root (containers need namespaces, mounts and cgroups): sudo npm ...');
const major = Number(process.versions.node.split('.')[0]);
if (major < 20) fail(`Node.js >= 20 is required, this is ${process.versions.node}`);

// 1. Debian packages
const missing = DEBIAN_PACKAGES.filter((p) => spawnSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' }).stdout?.includes('install ok installed') !== true);
if (missing.length > 0) {
  if (!existsSync('/usr/bin/apt-get')) fail(`missing packages ${missing.join(', ')} and no apt-get to install them`);
  say(`installing ${missing.join(' ')}`);
  run('apt-get', ['update', '-qq']);
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

// 2. npm dependencies
const lock = join(root, 'package-lock.json');
const installed = join(root, 'node_modules', '.package-lock.json');
if (!existsSync(installed) || statSync(installed).mtimeMs < statSync(lock).mtimeMs) {
  say('npm ci');
  run('npm', ['ci', '--no-audit', '--no-fund', ...(quiet ? ['--loglevel=error'] : [])]);
}

// 3. native addon and spawner
const nativeOut = [join(root, 'build/Release/stratoswarm_native.node'), join(root, 'build/Release/stratoswarm-spawner')];
const nativeSrc = newestMtime([join(root, 'native'), join(root, 'binding.gyp')]);
if (nativeOut.some((p) => !existsSync(p) || statSync(p).mtimeMs < nativeSrc)) {
  say('building the native addon and the spawner');
  // Build against the headers of the Node.js that runs this, when it ships them (Debian's and
  // the official packages do), instead of downloading them.
  const prefix = dirname(dirname(process.execPath));
  const headers = !process.env.npm_config_nodedir && existsSync(join(prefix, 'include/node/node.h')) ? [`--nodedir=${prefix}`] : [];
  run(join(root, 'node_modules/.bin/node-gyp'), ['rebuild', ...headers, ...(quiet ? ['--loglevel=error'] : [])]);
}

// 4. TypeScript
const distOut = join(root, 'dist/src/index.js');
const tsSrc = newestMtime([join(root, 'src'), join(root, 'scripts'), join(root, 'bench'), join(root, 'tsconfig.json')]);
if (!existsSync(distOut) || statSync(distOut).mtimeMs < tsSrc) {
  say('compiling TypeScript');
  run(join(root, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json']);
}

// 4b. the `stratoswarm` command: executable, and on the PATH through /usr/local/bin
const cli = join(root, 'dist/src/cli/main.js');
if (existsSync(cli)) {
  if ((statSync(cli).mode & 0o111) !== 0o111) chmodSync(cli, 0o755);
  const link = '/usr/local/bin/stratoswarm';
  let current;
  try {
    current = lstatSync(link).isSymbolicLink() ? readlinkSync(link) : null;
  } catch {
    current = undefined; // missing
  }
  if (current === cli) {
    say(`${link} already points to ${cli}`);
  } else if (current === null) {
    say(`${link} exists and is not a symlink: left alone`);
  } else {
    if (current !== undefined) unlinkSync(link);
    symlinkSync(cli, link);
    say(current === undefined ? `installed ${link} -> ${cli}` : `repointed ${link} -> ${cli} (was ${current})`);
  }
}

// 5. test fixtures (static binaries the attack suite runs inside containers)
const fixtures = join(root, 'test/fixtures/build-fixtures.sh');
if (existsSync(fixtures)) run('bash', [fixtures, join(root, 'build/fixtures')]);

// 5b. CRIU for checkpoint and restore: the installed one if it works, else one built once
// from upstream source (scripts/criu.sh; about two minutes on 2 cores) and cached
const criu = spawnSync('bash', [join(root, 'scripts/criu.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', quiet ? 'pipe' : 'inherit'] });
if (criu.status === 0) say(`CRIU: ${criu.stdout.trim()}`);
else console.warn(`setup: no working CRIU, so checkpoint and restore are unavailable: ${(criu.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`);

// 6. the base image, in the configured image root
if (withImage) {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', `
    import { Runtime } from ${JSON.stringify(join(root, 'dist/src/index.js'))};
    const rt = new Runtime({ logLevel: 'silent' });
    if (!rt.images.has('stratoswarm/base-agent:latest')) { await rt.images.buildBaseImage(); console.log('built'); }
  `], { cwd: root, encoding: 'utf8' });
  if (out.includes('built')) say('built image stratoswarm/base-agent:latest');
}
say('ready');
