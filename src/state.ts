/**
 * Container state on disk, one directory per container under the state root:
 *   state.json  written by the runtime, atomically (temp file + rename)
 *   exit.json   written by the spawner when the init exits
 * so another process (or this one after a restart) can list, load and drive containers.
 */
import type { CdiHook } from './gpu/cdi/spec.js';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import { RuntimeError, fromNodeError } from './errors.js';
import { withFileLock } from './kernel/file-lock.js';
import type { HostFacts } from './kernel/host.js';
import type { ContainerState } from './lifecycle.js';
import type { PlanNetDevice } from './gpu/cdi/netdev.js';
import type { PlanRdt } from './gpu/cdi/rdt.js';

export interface ContainerRecord {
  version: 1;
  id: string;
  name: string;
  state: ContainerState;
  config: Record<string, unknown>;
  image: { ref: string; layers: string[] };
  pid?: number;
  /** Start time of the init (field 22 of /proc/<pid>/stat), so a reused pid is recognised. */
  pidStartTime?: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  exitCode?: number | null;
  signal?: number | null;
  oomKilled?: boolean;
  paths: { stateDir: string; storageDir: string; rootfs: string; upper: string; work: string; stdoutLog: string; stderrLog: string };
  cgroupProcs: string[];
  /** Its cgroup's path relative to each hierarchy's root, when not under the runtime's parent. */
  cgroupPath?: string;
  namespaces: string[];
  /** The resource settings in force (the configuration's, as changed by update()). */
  resources?: Record<string, unknown>;
  /** The host ids the container's user namespace maps (uid and gid alike). */
  idRange?: { index: number; hostId: number; size: number };
  /** The bridge attachment (network "bridge"): address and the CNI result DEL needs. */
  network?: { ip: string; gateway: string | undefined; result: unknown; bandwidthMbps?: number | undefined };
  evolution?: unknown;
  /** The process that created it (pid and start time): a create whose creator died is torn down. */
  creator?: { pid: number; startTime: string | undefined };
  /** The boot it was created in: after a reboot its processes are gone. */
  bootId?: string;
  /** Restarts under a restart policy (container/supervise.ts). */
  restarts?: { count: number; streak: number; lastAt?: string | undefined; manualStop?: boolean | undefined; exhausted?: boolean | undefined; owner?: { pid: number; startTime: string | undefined } | undefined };
  /** A warm-pool container not handed out yet (the shape's label); its creator owns it. */
  pool?: string;
  /** OCI hooks from CDI specs still to run (startContainer, poststart, poststop). */
  hooks?: CdiHook[];
  /** Host network interfaces moved in (CDI netDevices): moved back at removal. */
  netDevices?: PlanNetDevice[];
  /** The resctrl group joined (CDI intelRdt): removed with the container when its own. */
  intelRdt?: PlanRdt;
  /** What its GPUs and CDI devices add to every process: environment and groups. */
  deviceProcess?: { env: string[]; groups: number[] };
}

export interface ExitRecord {
  pid: number;
  exitCode: number;
  signal: number;
  finishedAt: number;
}

export function newContainerId(): string {
  return randomBytes(16).toString('hex');
}

let tmpCounter = 0;

/**
 * Writes `path` whole or not at all: a temp file renamed over it. `durable` also fsyncs the
 * file before the rename and the directory after, so the write survives a crash of the
 * machine, not only of the process (for what a crash could otherwise lose: an exit code).
 */
export function writeAtomic(path: string, data: string, durable = false): void {
  // pid + counter: unique among writers, without drawing random bytes on every save.
  const tmp = `${path}.${process.pid}.${tmpCounter++}.tmp`;
  try {
    if (durable) {
      const fd = fs.openSync(tmp, 'w', 0o600);
      try {
        fs.writeFileSync(fd, data);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    } else fs.writeFileSync(tmp, data, { mode: 0o600 });
    fs.renameSync(tmp, path);
    if (durable) {
      const dir = fs.openSync(dirname(path), 'r');
      try {
        fs.fsyncSync(dir);
      } finally {
        fs.closeSync(dir);
      }
    }
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw fromNodeError(e, 'state', `write \`${path}\``);
  }
}

/** Why `text` is not a state record of container `id`, or undefined when it is one. */
export function recordProblem(text: string, id: string): string | undefined {
  let r: unknown;
  try {
    r = JSON.parse(text);
  } catch (e) {
    return `not JSON (${text.length} bytes): ${(e as Error).message}`;
  }
  const rec = r as Partial<ContainerRecord> | null;
  if (!rec || typeof rec !== 'object') return 'not a record';
  if (rec.version !== 1) return `record version ${String(rec.version)}, expected 1`;
  if (rec.id !== id) return `record of container ${String(rec.id)} in the directory of ${id}`;
  if (typeof rec.name !== 'string' || typeof rec.state !== 'string' || !rec.paths || !Array.isArray(rec.cgroupProcs)) return 'fields missing';
  return undefined;
}

/** True when `pid` is the same process that was recorded (not a reuse of its number). */
export function isSameProcess(host: Pick<HostFacts, 'processStartTime'>, pid: number | undefined, startTime: string | undefined): boolean {
  if (!pid || !startTime) return false;
  return host.processStartTime(pid) === startTime;
}

/** A name claim's text: the container id, then its creator's pid and start time when written. */
function parseClaim(text: string): { id: string; creator?: { pid: number; startTime: string | undefined } } {
  const [id = '', who] = text.split('\n');
  const [pid, startTime] = (who ?? '').split(' ');
  return pid && /^\d+$/.test(pid) ? { id, creator: { pid: Number(pid), startTime: startTime || undefined } } : { id };
}

export class StateStore {
  constructor(readonly root: string) {}

  dir(id: string): string {
    return join(this.root, id);
  }

  /** Makes the container's state directory and writes its first record. */
  create(rec: ContainerRecord): void {
    try {
      fs.mkdirSync(this.dir(rec.id), { recursive: true, mode: 0o700 });
    } catch (e) {
      throw fromNodeError(e, 'state', `mkdir \`${this.dir(rec.id)}\``);
    }
    this.save(rec);
  }

  /** `durable`: fsync'd (the record of an exit). */
  save(rec: ContainerRecord, durable = false): void {
    writeAtomic(join(this.dir(rec.id), 'state.json'), JSON.stringify(rec, null, 2), durable);
  }

  load(id: string): ContainerRecord {
    if (!/^[a-f0-9]{32}$/.test(id)) {
      throw new RuntimeError(`no container with id "${id}"`, { code: 'ENOTFOUND', step: 'state', containerId: id });
    }
    const p = join(this.dir(id), 'state.json');
    let text: string;
    try {
      text = fs.readFileSync(p, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new RuntimeError(`no container with id "${id}"`, { code: 'ENOTFOUND', step: 'state', path: p, containerId: id });
      }
      throw fromNodeError(e, 'state', `read \`${p}\``);
    }
    const why = recordProblem(text, id);
    if (why) {
      throw new RuntimeError(`state of container ${id} is unusable (${why}); runtime.reconcile() quarantines it`, { code: 'EPROTO', step: 'state', path: p, containerId: id });
    }
    return JSON.parse(text) as ContainerRecord;
  }

  exit(id: string): ExitRecord | undefined {
    try {
      return JSON.parse(fs.readFileSync(join(this.dir(id), 'exit.json'), 'utf8')) as ExitRecord;
    } catch {
      return undefined;
    }
  }

  ids(): string[] {
    try {
      return fs
        .readdirSync(this.root, { withFileTypes: true })
        .filter((e) => e.isDirectory() && /^[a-f0-9]{32}$/.test(e.name) && fs.existsSync(join(this.root, e.name, 'state.json')))
        .map((e) => e.name);
    } catch {
      return [];
    }
  }

  /**
   * Every record, and the state files that cannot be one (truncated, not JSON, another
   * version or another container's): a bad file is reported, never a reason to fail.
   */
  scan(): { records: ContainerRecord[]; bad: { id: string; why: string }[] } {
    const records: ContainerRecord[] = [];
    const bad: { id: string; why: string }[] = [];
    for (const id of this.ids()) {
      let text: string;
      try {
        text = fs.readFileSync(join(this.dir(id), 'state.json'), 'utf8');
      } catch {
        continue; // removed by another process between readdir and read
      }
      const why = recordProblem(text, id);
      if (why) bad.push({ id, why });
      else records.push(JSON.parse(text) as ContainerRecord);
    }
    return { records, bad };
  }

  /** Moves a bad state file aside (under quarantine/, with the reason), out of every listing. */
  quarantine(id: string, why: string): string {
    const dir = join(this.root, 'quarantine');
    const dest = join(dir, `${id}.${Date.now()}`);
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      fs.renameSync(this.dir(id), dest);
      fs.writeFileSync(join(dest, 'reason'), `${why}\n`);
    } catch (e) {
      throw fromNodeError(e, 'state', `quarantine the state of \`${id}\``);
    }
    return dest;
  }

  list(): ContainerRecord[] {
    return this.scan().records;
  }

  remove(id: string): void {
    fs.rmSync(this.dir(id), { recursive: true, force: true });
  }

  /**
   * Claims a container name for `id`: a file created with O_EXCL, so two processes can
   * never give one name to two containers, and a create costs the same however many
   * containers exist. A claim whose container is gone is taken over. Returns the id of the
   * container holding the name when it is taken.
   */
  claimName(name: string, id: string, creator?: { pid: number; startTime: string | undefined }): string | undefined {
    const dir = join(this.root, 'names');
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, name);
    // The creator goes with the claim: a claim whose creator died before it wrote any state
    // is found by reconciliation.
    const content = creator ? `${id}\n${creator.pid} ${creator.startTime ?? ''}\n` : id;
    for (let attempt = 0; attempt < 2; attempt++) {
      // Written whole first, then linked in place (link fails EEXIST as O_EXCL does): a claim
      // is never seen half-written, so a racing claimer never takes an empty one for stale.
      const tmp = join(dir, `.${name}.${process.pid}.${id}`);
      try {
        fs.writeFileSync(tmp, content, { mode: 0o600 });
        fs.linkSync(tmp, file);
        return undefined;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw fromNodeError(e, 'state', `claim name \`${name}\``);
      } finally {
        fs.rmSync(tmp, { force: true });
      }
      // A stale claim is removed under the names lock, judged again there: two claimers
      // taking the same stale claim over at once could otherwise both remove it (the second
      // removing the first's new claim) and both win.
      const holder = this.heldClaim(file);
      if (holder === undefined) continue;
      if (holder !== null) return holder;
      const now = withFileLock(join(dir, '.lock'), `claim name \`${name}\``, () => {
        const again = this.heldClaim(file);
        if (again === null) fs.rmSync(file, { force: true });
        return again;
      });
      if (typeof now === 'string') return now;
    }
    return 'unknown';
  }

  /**
   * Who holds the claim `file` on `name`: the id, undefined when it is gone (free to try
   * again), or null when it is stale. A holder without state is gone, unless its claim is
   * fresh: its create may not have written state.json yet.
   */
  private heldClaim(file: string): string | undefined | null {
    // Its id and its age from one open file: a claim replaced in between never pairs the
    // old claim's id with the new one's age.
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch {
      return undefined;
    }
    let holder: string;
    let fresh: boolean;
    try {
      fresh = Date.now() - fs.fstatSync(fd).mtimeMs < 60_000;
      holder = parseClaim(fs.readFileSync(fd, 'utf8')).id;
    } finally {
      fs.closeSync(fd);
    }
    return holder && (fresh || fs.existsSync(join(this.dir(holder), 'state.json'))) ? holder : null;
  }

  /** The claim on a name: the container id, and its creator when the claim says. */
  nameClaim(name: string): { id: string; creator?: { pid: number; startTime: string | undefined } } | undefined {
    let text: string;
    try {
      text = fs.readFileSync(join(this.root, 'names', name), 'utf8');
    } catch {
      return undefined;
    }
    return parseClaim(text);
  }

  /** Every claimed name. */
  names(): string[] {
    try {
      return fs.readdirSync(join(this.root, 'names')).filter((n) => !n.startsWith('.'));
    } catch {
      return [];
    }
  }

  /** Where a container's name lookup is (name → id). */
  nameOwner(name: string): string | undefined {
    return this.nameClaim(name)?.id;
  }

  releaseName(name: string, id: string): void {
    if (this.nameOwner(name) === id) fs.rmSync(join(this.root, 'names', name), { force: true });
  }

}
