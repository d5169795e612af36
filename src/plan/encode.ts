/**
 * The wire encoding of a plan, the last step before the spawner: everything a container's
 * init does between clone() and execve(), as a flat list of ops the spawner runs without
 * deciding anything. Pure: unit tests check the ops without root.
 */
import { RuntimeError, type Step } from '../errors.js';
import { MAX_FRAME, encodedSize, type WireField } from '../spawner/wire.js';
import type { ExecPlan, JoinNamespaces, PlanMknod, PlanMount, PlanPlacement, PlanSecurity, PlanUser, PlanUserNamespace, PlanVolume, ProcessPlan, ProvisionedResources, SpawnPlan } from './types.js';

// Mount flags, as <sys/mount.h> numbers them.
export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  BIND: 4096,
  REC: 16384,
  STRICTATIME: 1 << 24,
  UNBINDABLE: 1 << 17,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
} as const;

/** What start and exec requests both carry: the process and its confinement. */
export interface ProcessInput extends Omit<ProcessPlan, 'placement'> {
  cgroupProcs: string[];
  lastCap: number;
  placement?: PlanPlacement | undefined;
}

/** What a create request carries: the container's shape, set up to the park point. */
export interface CreatePlanInput {
  cgroupProcs: string[];
  /** Existing namespaces joined in place of new ones: the spawner opens each path, the init joins it. */
  joinNamespaces?: JoinNamespaces | undefined;
  /** The host's namespaces the container shares (an OCI configuration that lists none of the type). */
  shareHost?: readonly ('pid' | 'uts' | 'ipc')[] | undefined;
  /** The process runs on a terminal whose slave comes with the request as its stdio. */
  terminal?: boolean | undefined;
  stateDir: string;
  rootfs: string;
  lowerDirs: string[];
  upperDir: string;
  workDir: string;
  stdout: string;
  stderr: string;
  network: 'none' | 'host' | 'bridge';
  hostname: string;
  volumes: PlanVolume[];
  security: Pick<PlanSecurity, 'maskedPaths' | 'readonlyPaths' | 'readonlyRoot'>;
  /**
   * A seccomp program loaded at the park point instead of at start (a pooled container of
   * the default profile: its kernel-side compilation is the slowest step of a start). Only
   * for a profile that allows what the start ops call (capset, setgroups, setres[ug]id,
   * prctl, close_range, chdir, execve), as the default one does.
   */
  preloadSeccomp?: Buffer | undefined;
  userns?: PlanUserNamespace | undefined;
  /** Further host device nodes to bind into /dev (assigned GPUs). */
  devices?: string[];
  /** Host device nodes bound at their own paths (CDI). */
  deviceNodes?: { hostPath: string; path: string }[] | undefined;
  /** The init binary on the host and where it is bound in the container (read-only). */
  init?: { hostPath: string; path: string } | undefined;
  /** A terminal's slave on the host (process.terminal), also bound at /dev/console (as runc does). */
  console?: { path: string } | undefined;
  /** A root directory used as it is (an OCI bundle's rootfs), bound instead of an overlay of layers. */
  rootfsDir?: string | undefined;
  /** The container's mounts as its OCI configuration lists them, in place of the default set. */
  mounts?: PlanMount[] | undefined;
  /** Device nodes made in the container's /dev (OCI linux.devices). */
  mknods?: PlanMknod[] | undefined;
  /** The root's propagation once pivoted (OCI linux.rootfsPropagation, MS_* flags); rprivate otherwise. */
  rootfsPropagation?: number | undefined;
}

export interface ExecPlanInput extends ProcessInput {
  /** Namespaces the exec joins (those of the container's init). */
  namespaces: string[];
}

type Field = WireField;

function op(out: Field[], step: Step, kind: string, strings: string[] = [], numbers: (number | bigint)[] = []): void {
  out.push('op', step, kind, String(strings.length), ...strings, String(numbers.length), ...numbers.map((n) => BigInt(n).toString()));
}

/** The devices every container gets, bind-mounted from the host's /dev. */
export const DEFAULT_DEVICES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'];

/** The file type bits mknod(2) takes for each OCI device type. */
const S_IFMT = { c: 0o020000, b: 0o060000, p: 0o010000 } as const;

function placementOps(out: Field[], p: PlanPlacement | undefined): void {
  if (p?.cpus?.length) op(out, 'affinity', 'cpus', [], p.cpus);
  if (p?.mempolicy) op(out, 'mempolicy', 'set', [], [p.mempolicy.mode, ...p.mempolicy.nodes]);
}

/**
 * The process's identity and confinement, from the user's groups to no_new_privs. Rlimits
 * go first: in an exec they are set before the user namespace is joined (raising a hard
 * limit needs CAP_SYS_RESOURCE in the host's); in a start the spawner sets them on the
 * parked init from outside.
 */
function userAndSecurityOps(out: Field[], user: PlanUser, sec: PlanSecurity, lastCap: number, joinUserns = false): void {
  for (const r of sec.rlimits) op(out, 'rlimit', r.name, [r.name], [r.resource, r.soft, r.hard]);
  if (joinUserns) op(out, 'setns', 'user');
  const earlySeccomp = sec.seccomp && sec.seccompBeforeCapabilityDrop;
  if (earlySeccomp) op(out, 'seccomp', 'load');
  op(out, 'capabilities', 'bounding', [], [sec.capabilities.bounding, lastCap]);
  op(out, 'setgroups', 'set', [], user.groups);
  op(out, 'setgid', 'set', [String(user.gid)], [user.gid]);
  op(out, 'setuid', 'set', [String(user.uid)], [user.uid]);
  const c = sec.capabilities;
  op(out, 'capabilities', 'sets', [], [c.effective, c.permitted, c.inheritable, c.ambient]);
  if (sec.noNewPrivileges) op(out, 'no-new-privs', 'set');
}

/** The process itself: what it runs, with what environment, under which filter. */
function processImage(out: Field[], p: Pick<ProcessInput, 'argv' | 'env' | 'searchPath' | 'security'>, seccompLoaded = false): void {
  out.push('argv', String(p.argv.length), ...p.argv);
  out.push('env', String(p.env.length), ...p.env);
  out.push('path', p.searchPath);
  if (p.security.seccomp && !seccompLoaded) out.push('seccomp', p.security.seccomp.bpf);
}

/** From the identity to execve: what a start and an exec end with. */
function execOps(out: Field[], p: ProcessInput, joinUserns = false, seccompLoaded = false): void {
  placementOps(out, p.placement);
  const sec = seccompLoaded ? { ...p.security, seccomp: undefined } : p.security;
  // Every fd but stdio and the sync socket is closed before the process looks up any path
  // of the container (its cwd, its executable): no host fd can be reached through
  // /proc/self/fd. With a filter loaded early (no no_new_privs) they are closed before it:
  // a profile older than close_range(2) would refuse it.
  const early = !!sec.seccomp && !!sec.seccompBeforeCapabilityDrop;
  if (early) op(out, 'close-fds', 'close');
  userAndSecurityOps(out, p.user, sec, p.lastCap, joinUserns);
  if (!early) op(out, 'close-fds', 'close');
  if (p.user.umask !== undefined) op(out, 'umask', 'set', [], [p.user.umask]);
  op(out, 'chdir', 'cwd', [p.cwd]);
  op(out, 'resolve-exec', 'argv0');
  if (sec.seccomp && !sec.seccompBeforeCapabilityDrop) op(out, 'seccomp', 'load');
  op(out, 'execve', 'exec');
}

/** Fields of a "create" request after its id. */
export function compileCreatePlan(p: CreatePlanInput): Field[] {
  const out: Field[] = [];
  const join = Object.entries(p.joinNamespaces ?? {}).filter((e): e is [string, string] => typeof e[1] === 'string');
  if (join.length > 0 && p.userns) throw new RuntimeError('encode create: joining a namespace by path is not supported with a new user namespace', { code: 'EINVAL', step: 'config' });
  const joined = new Set(join.map(([t]) => t));
  // A joined user namespace is entered last, as a new one is; a new network namespace is
  // made inside it by the spawner's helper, as for a new one.
  const joinedUser = joined.has('user');
  const shared = new Set<string>(p.shareHost ?? []);
  const namespaces = ['pid', 'mnt', 'uts', 'ipc'].filter((t) => !joined.has(t) && !shared.has(t));
  // With a user namespace, the spawner makes the network namespace inside it (so that
  // NET_BIND_SERVICE and NET_RAW apply there) and the init joins it.
  const usernsNet = (!!p.userns || joinedUser) && p.network !== 'host' && !joined.has('net');
  if (p.network !== 'host' && !usernsNet && !joined.has('net')) namespaces.push('net');
  // A terminal's slave comes with the request as stdio, in place of the log files.
  const tty = !!p.terminal;
  if (tty && !p.console) throw new RuntimeError('encode create: a terminal was asked for but none was opened', { code: 'EINVAL', step: 'stdio' });
  out.push('state-dir', p.stateDir, 'namespaces', namespaces.join(','), 'stdout', p.stdout, 'stderr', p.stderr);
  if (p.userns) out.push('uid-map', p.userns.uidMap, 'gid-map', p.userns.gidMap, 'userns-net', usernsNet ? '1' : '0');
  else if (joinedUser) out.push('userns-net', usernsNet ? '1' : '0');
  for (const f of p.cgroupProcs) out.push('cgroup-procs', f);
  for (const [t, path] of join) out.push(`join-${t}`, path);
  if (p.preloadSeccomp) out.push('seccomp', p.preloadSeccomp);
  op(out, 'sync', 'go');
  op(out, 'setsid', 'new');
  op(out, 'stdio', 'dup');
  if (tty) op(out, 'stdio', 'tty');
  // The cgroup namespace is made after the spawner moved the init into its cgroups, so the
  // container sees its own cgroup as the root.
  if (!joined.has('cgroup')) op(out, 'cgroupns', 'unshare');
  if (usernsNet) op(out, 'setns', 'net');
  // Before any mount: sysfs is mounted for the network namespace the init is in.
  // A joined pid namespace is entered by the clone itself (the spawner's setns), not by the init.
  for (const [t] of join) if (t !== 'pid' && t !== 'user') op(out, 'setns', t);
  // A slave or shared root keeps receiving the host's mounts: the tree becomes rslave, not
  // rprivate, and the root gets its own propagation once pivoted.
  const rootProp = p.rootfsPropagation;
  if (rootProp !== undefined && rootProp & (MS.SLAVE | MS.SHARED)) op(out, 'mount-private', 'rslave', [], [MS.REC | MS.SLAVE]);
  else op(out, 'mount-private', 'rprivate');
  if (p.rootfsDir !== undefined) {
    op(out, 'overlay', 'bind', [p.rootfsDir, p.rootfs]);
  } else {
    overlayOps(out, p);
  }
  op(out, 'root-open', 'rootfs', [p.rootfs]);
  if (p.mounts) ociMountOps(out, p, tty);
  else defaultMountOps(out, p, tty);
  for (const v of p.volumes) {
    const flags = MS.REC | (v.readOnly ? MS.RDONLY : 0);
    // Idmapped only inside a user namespace: without one, host and container ids are the same.
    const idmap = v.idmap && !!p.userns ? 1 : 0;
    op(out, 'volume', v.readOnly ? 'ro' : 'rw', [v.source, v.target], [flags, v.isFile ? 1 : 0, v.readOnly ? 0 : 1, ...(idmap ? [1] : [])]);
  }
  for (const m of p.security.maskedPaths) op(out, 'mask', 'path', [m]);
  for (const r of p.security.readonlyPaths) op(out, 'readonly', 'path', [r]);
  op(out, 'pivot-root', 'rootfs');
  if (rootProp !== undefined) op(out, 'propagation', 'root', ['/'], [rootProp]);
  if (p.security.readonlyRoot) op(out, 'root-readonly', 'root');
  if (p.network !== 'host' && !usernsNet) op(out, 'loopback', 'up');
  // An OCI configuration without a hostname keeps the one the new UTS namespace copied.
  if (p.hostname !== '' && !shared.has('uts')) op(out, 'hostname', 'set', [p.hostname]);
  // Last of the setup done as the host's root: from here on the init is root only inside
  // the container's user namespace.
  if (p.userns || joinedUser) op(out, 'setns', 'user');
  op(out, 'close-fds', 'close');
  if (p.preloadSeccomp) op(out, 'seccomp', 'load');
  // The park point: what the caller chooses (the process) comes with start.
  op(out, 'ready', 'park');
  return out;
}

function overlayOps(out: Field[], p: CreatePlanInput): void {
  let lowerDirs = p.lowerDirs;
  if (p.userns) {
    p.lowerDirs.forEach((l, i) => op(out, 'overlay', 'idmap', [l, p.userns!.stagingDirs[i]!]));
    lowerDirs = p.userns.stagingDirs.slice(0, p.lowerDirs.length);
  }
  const lower = lowerDirs.join(':');
  op(out, 'overlay', 'rootfs', [p.rootfs, `lowerdir=${lower},upperdir=${p.upperDir},workdir=${p.workDir}`]);
}

/** The device nodes and /dev links every container gets, once its /dev is mounted. */
function deviceOps(out: Field[], p: CreatePlanInput, tty: boolean): void {
  // A default device the configuration lists is made as it says, not bound from the host.
  const made = new Set((p.mknods ?? []).map((d) => d.path));
  for (const d of DEFAULT_DEVICES) if (!made.has(`/dev/${d}`)) op(out, 'bind', 'device', [`/dev/${d}`, `/dev/${d}`], [MS.NOSUID | MS.NOEXEC, 1, 0]);
  for (const d of p.mknods ?? []) op(out, 'mknod', d.type, [d.path], [S_IFMT[d.type], d.major, d.minor, d.mode, d.uid, d.gid]);
  for (const d of p.devices ?? []) op(out, 'bind', 'device', [d, `/dev/${d.split('/').pop()}`], [MS.NOSUID | MS.NOEXEC, 1, 0]);
  for (const d of p.deviceNodes ?? []) op(out, 'bind', 'device', [d.hostPath, d.path], [MS.NOSUID | MS.NOEXEC, 1, 0]);
  if (tty && p.console) op(out, 'bind', 'device', [p.console.path, '/dev/console'], [MS.NOSUID | MS.NOEXEC, 1, 0]);
  // The init is executable but read-only, and carries no setuid bit that could count.
  if (p.init) op(out, 'bind', 'init', [p.init.hostPath, p.init.path], [MS.RDONLY | MS.NOSUID | MS.NODEV, 1, 0]);
}

function linkOps(out: Field[]): void {
  op(out, 'symlink', 'fd', ['/proc/self/fd', '/dev/fd']);
  op(out, 'symlink', 'stdin', ['/proc/self/fd/0', '/dev/stdin']);
  op(out, 'symlink', 'stdout', ['/proc/self/fd/1', '/dev/stdout']);
  op(out, 'symlink', 'stderr', ['/proc/self/fd/2', '/dev/stderr']);
}

/**
 * An OCI configuration's mounts, in its order: binds of host paths and filesystems by type.
 * The device nodes go in once /dev is mounted (after the last mount under it: a /dev/pts
 * listed after /dev must not hide them), as runc makes them after the mounts.
 */
function ociMountOps(out: Field[], p: CreatePlanInput, tty: boolean): void {
  const mounts = p.mounts ?? [];
  const lastDev = mounts.reduce((n, m, i) => (m.target === '/dev' || m.target.startsWith('/dev/') ? i : n), -1);
  mounts.forEach((m, i) => {
    if (m.kind === 'bind' && m.idmap) {
      // n[3]: 1 maps through the container's user namespace, 2 through one made with the
      // maps in s[2] (uid) and s[3] (gid); n[4]: the mounts below are idmapped too.
      const maps = m.idmap.maps;
      op(out, 'bind', 'mount', [m.source, m.target, ...(maps ? [maps.uid, maps.gid] : [])], [m.flags, m.isFile ? 1 : 0, 0, maps ? 2 : 1, m.idmap.recursive ? 1 : 0]);
    } else if (m.kind === 'bind') op(out, 'bind', 'mount', [m.source, m.target], [m.flags, m.isFile ? 1 : 0, 0]);
    else op(out, 'mount', 'mount', [m.source, m.target, m.fstype, m.data], [m.flags, 0]);
    if (m.propagation) op(out, 'propagation', 'mount', [m.target], [m.propagation]);
    if (i === lastDev) deviceOps(out, p, tty);
  });
  if (lastDev < 0) deviceOps(out, p, tty);
  if (mounts.some((m) => m.target === '/dev/pts')) op(out, 'symlink', 'ptmx', ['pts/ptmx', '/dev/ptmx']);
  if (mounts.some((m) => m.target === '/dev')) linkOps(out);
}

function defaultMountOps(out: Field[], p: CreatePlanInput, tty: boolean): void {
  op(out, 'mount', 'proc', ['proc', '/proc', 'proc', ''], [MS.NOSUID | MS.NODEV | MS.NOEXEC, 0]);
  op(out, 'mount', 'dev', ['tmpfs', '/dev', 'tmpfs', 'mode=755,size=65536k'], [MS.NOSUID | MS.STRICTATIME, 0]);
  deviceOps(out, p, tty);
  op(out, 'mount', 'devpts', ['devpts', '/dev/pts', 'devpts', 'newinstance,ptmxmode=0666,mode=0620'], [MS.NOSUID | MS.NOEXEC, 0]);
  op(out, 'symlink', 'ptmx', ['pts/ptmx', '/dev/ptmx']);
  linkOps(out);
  op(out, 'mount', 'shm', ['shm', '/dev/shm', 'tmpfs', 'mode=1777,size=65536k'], [MS.NOSUID | MS.NODEV | MS.NOEXEC, 0]);
  op(out, 'mount', 'mqueue', ['mqueue', '/dev/mqueue', 'mqueue', ''], [MS.NOSUID | MS.NODEV | MS.NOEXEC, 0]);
  if (p.network === 'host') {
    // sysfs can only be mounted by the owner of the network namespace; with the host's
    // network the host's /sys is bound read-only instead.
    op(out, 'bind', 'sys', ['/sys', '/sys'], [MS.REC | MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC, 0, 0]);
  } else {
    op(out, 'mount', 'sys', ['sysfs', '/sys', 'sysfs', ''], [MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC, 0]);
  }
}

export interface StartPlanInput extends ProcessInput {
  /** A hostname other than the one the container was created with (a pooled container). */
  hostname?: string | undefined;
  /** Which of stdin, stdout, stderr the fds sent with the request replace. */
  stdio?: (0 | 1 | 2)[] | undefined;
  /** The init loaded this very seccomp program at its park point (preloadSeccomp). */
  seccompLoaded?: boolean | undefined;
}

/** Fields of a "start" request after its id: from the park point to execve. */
export function compileStartPlan(p: StartPlanInput): Field[] {
  const out: Field[] = [];
  processImage(out, p, p.seccompLoaded);
  if (p.stdio?.length) out.push('stdio-fds', [...p.stdio].sort().join(','));
  if (p.hostname !== undefined) op(out, 'hostname', 'set', [p.hostname]);
  execOps(out, p, false, p.seccompLoaded);
  return out;
}

/** Fields of an "exec" request after its id. */
export function compileExecPlan(p: ExecPlanInput): Field[] {
  const out: Field[] = [];
  out.push('join-namespaces', p.namespaces.join(','), 'stdin', '', 'stdout', '', 'stderr', '');
  for (const f of p.cgroupProcs) out.push('cgroup-procs', f);
  processImage(out, p);
  op(out, 'sync', 'go');
  op(out, 'setns', 'join');
  op(out, 'setsid', 'new');
  op(out, 'stdio', 'dup');
  if (p.terminal) op(out, 'stdio', 'tty');
  execOps(out, p);
  return out;
}

/**
 * A request must fit the spawner's frame limit; when it does not, the error names the field
 * that made it too large and the limit, instead of the spawner dropping the connection.
 */
function checkFrame(fields: Field[], proc: { argv: string[]; env: string[] }, context: string): Field[] {
  const size = encodedSize(fields);
  if (size <= MAX_FRAME) return fields;
  const bytes = (l: string[]) => l.reduce((n, s) => n + 4 + Buffer.byteLength(s), 0);
  const argv = bytes(proc.argv);
  const env = bytes(proc.env);
  const field = argv >= env ? 'command' : 'env';
  throw new RuntimeError(
    `${context}: ${field} is ${argv >= env ? argv : env} bytes; a request to the spawner is limited to ${MAX_FRAME} bytes (this one is ${size})`,
    { code: 'EINVAL', step: 'config' },
  );
}

/** The "create" request for a plan, once provisioning made its cgroups and id range. */
export function encodeCreate(plan: SpawnPlan, made: ProvisionedResources, opts: { preloadSeccomp?: boolean } = {}): Field[] {
  const p = plan.process;
  const idMap = made.idRange && plan.userNamespace ? `0 ${made.idRange.hostId} ${Math.min(plan.userNamespace.size, made.idRange.size)}` : undefined;
  const maps = plan.idMaps ?? (idMap ? { uid: idMap, gid: idMap } : undefined);
  const fields = compileCreatePlan({
    stateDir: plan.paths.stateDir,
    rootfs: plan.paths.rootfs,
    lowerDirs: plan.image.layerPaths,
    upperDir: plan.paths.upper,
    workDir: plan.paths.work,
    stdout: plan.paths.stdoutLog,
    stderr: plan.paths.stderrLog,
    network: plan.network.mode,
    hostname: plan.hostname,
    volumes: plan.volumes,
    cgroupProcs: made.cgroupProcs,
    security: p.security,
    userns: maps && plan.userNamespace ? { uidMap: maps.uid, gidMap: maps.gid, stagingDirs: plan.userNamespace.stagingDirs } : undefined,
    devices: plan.devices,
    deviceNodes: plan.deviceNodes,
    preloadSeccomp: opts.preloadSeccomp ? p.security.seccomp?.bpf : undefined,
    init: plan.init,
    console: p.terminal ? made.terminal : undefined,
    terminal: p.terminal,
    rootfsDir: plan.rootfsDir,
    mounts: plan.mounts,
    mknods: plan.mknods,
    rootfsPropagation: plan.rootfsPropagation,
    joinNamespaces: plan.joinNamespaces,
    shareHost: (['pid', 'uts', 'ipc'] as const).filter((t) => !plan.namespaces.includes(t)),
  });
  return checkFrame(['create', plan.id, ...fields], { argv: [], env: [] }, `create container ${plan.name}`);
}

/** The "start" request for container `id`: the process it runs from its park point. */
export function encodeStart(id: string, process: ProcessPlan, lastCap: number, context: string, opts: Pick<StartPlanInput, 'hostname' | 'stdio' | 'seccompLoaded'> = {}): Field[] {
  const fields = compileStartPlan({ ...process, cgroupProcs: [], lastCap, ...opts });
  return checkFrame(['start', id, ...fields], process, context);
}

/** The "exec" request for container `id`. */
export function encodeExec(id: string, plan: ExecPlan, context: string): Field[] {
  const p = plan.process;
  const fields = compileExecPlan({ ...p, cgroupProcs: plan.cgroupProcs, lastCap: plan.lastCap, namespaces: plan.namespaces });
  return checkFrame(['exec', id, ...fields], p, context);
}
