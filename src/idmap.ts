/**
 * Host id ranges for user namespaces. Container root maps to an unprivileged host uid/gid
 * range; no two containers share one. A range is claimed by creating a file named after its
 * index with O_EXCL, so concurrent host agents on one state root never hand out the same
 * range; a claim whose container is gone is taken over, under a lock (kernel/file-lock.ts).
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { RuntimeError } from './errors.js';
import { withFileLock } from './kernel/file-lock.js';

export interface IdRange {
  index: number;
  hostId: number;
  size: number;
}

export const ID_RANGE_BASE = 100_000;
export const ID_RANGE_SIZE = 65_536;

export class IdRangeAllocator {
  private readonly dir: string;
  /** Where the next search starts: round robin, so an allocation does not walk every claim. */
  private cursor = 0;

  constructor(
    stateRoot: string,
    private readonly ownerExists: (owner: string) => boolean,
    readonly base = ID_RANGE_BASE,
    readonly size = ID_RANGE_SIZE,
    readonly count = 4096,
  ) {
    this.dir = join(stateRoot, 'idmap');
  }

  allocate(owner: string): IdRange {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    for (let n = 0; n < this.count; n++) {
      const index = (this.cursor + n) % this.count;
      const claim = join(this.dir, String(index));
      try {
        fs.writeFileSync(claim, owner, { flag: 'wx', mode: 0o600 });
        this.cursor = index + 1;
        return { index, hostId: this.base + index * this.size, size: this.size };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      let holder = '';
      try {
        holder = fs.readFileSync(claim, 'utf8');
      } catch {
        continue;
      }
      // The container that held it is gone: the claim is replaced under the lock, judged
      // again there, so two agents taking the same range over at once never both win.
      if (holder && !this.ownerExists(holder) && withFileLock(join(this.dir, '.lock'), `claim user namespace id range ${index}`, () => this.takeOver(claim, holder, owner))) {
        this.cursor = index + 1;
        return { index, hostId: this.base + index * this.size, size: this.size };
      }
    }
    throw new RuntimeError(`no free user namespace id range (all ${this.count} are in use)`, { code: 'EBUSY', step: 'id-map' });
  }

  /** Under the lock: replaces the claim when it is still `stale`'s (atomically: temp file, rename). */
  private takeOver(claim: string, stale: string, owner: string): boolean {
    try {
      if (fs.readFileSync(claim, 'utf8') !== stale) return false;
    } catch {
      return false; // released meanwhile: the next pass may claim it with O_EXCL
    }
    const tmp = `${claim}.${owner}`;
    fs.writeFileSync(tmp, owner, { mode: 0o600 });
    fs.renameSync(tmp, claim);
    return true;
  }

  release(range: IdRange, owner: string): void {
    const claim = join(this.dir, String(range.index));
    try {
      if (fs.readFileSync(claim, 'utf8') === owner) fs.rmSync(claim, { force: true });
    } catch {
      // Already released.
    }
  }

  /** Claimed ranges and their owners. */
  claims(): { index: number; owner: string }[] {
    try {
      return fs
        .readdirSync(this.dir)
        .filter((f) => /^\d+$/.test(f))
        .map((f) => ({ index: Number(f), owner: fs.readFileSync(join(this.dir, f), 'utf8') }));
    } catch {
      return [];
    }
  }
}
