/**
 * The CDI specs of a host and the resolution of fully-qualified device names against them.
 * Specs are read from each spec directory in order (`/etc/cdi`, then `/var/run/cdi`, where
 * generated specs go); a device defined in a later directory overrides the same device in an
 * earlier one, as the CDI specification orders them, while two files of one directory
 * defining the same device are a conflict, reported when that device is asked for. A file
 * that cannot be read or is invalid does not hide the others: its error is named when a
 * device cannot be found without it.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { ConfigError, RuntimeError } from '../../errors.js';
import { parseQualifiedName, parseSpec, type CdiDevice, type CdiEdits, type CdiSpec } from './spec.js';

/** Where CDI specs live, lowest priority first. */
export const CDI_SPEC_DIRS: readonly string[] = ['/etc/cdi', '/var/run/cdi'];

/** What the registry reads of the host; tests pass a fake. */
export interface CdiFiles {
  readdir(dir: string): string[];
  readFile(path: string): string;
}

export const nodeCdiFiles: CdiFiles = {
  readdir: (dir) => fs.readdirSync(dir),
  readFile: (path) => fs.readFileSync(path, 'utf8'),
};

/** One device found for a name: its spec, and the directory's priority (its index). */
export interface CdiResolvedDevice {
  qualified: string;
  spec: CdiSpec;
  device: CdiDevice;
}

/** Container edits in the order they apply, each with where it came from (for errors). */
export interface CdiEditSource {
  origin: string;
  edits: CdiEdits;
}

export class CdiRegistry {
  /** Valid specs, with the index of the directory each came from. */
  readonly specs: { spec: CdiSpec; priority: number }[] = [];
  /** Files that could not be read or are not valid specs. */
  readonly errors: { file: string; message: string }[] = [];

  private constructor(readonly dirs: readonly string[]) {}

  /** Reads every `.json`, `.yaml` and `.yml` file of the spec directories (a missing directory has none). */
  static load(dirs: readonly string[] = CDI_SPEC_DIRS, files: CdiFiles = nodeCdiFiles): CdiRegistry {
    const r = new CdiRegistry(dirs);
    dirs.forEach((dir, priority) => {
      let names: string[];
      try {
        names = files.readdir(dir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') r.errors.push({ file: dir, message: (e as Error).message });
        return;
      }
      for (const name of names.filter((n) => /\.(json|ya?ml)$/i.test(n)).sort()) {
        const file = join(dir, name);
        try {
          r.specs.push({ spec: parseSpec(files.readFile(file), file), priority });
        } catch (e) {
          r.errors.push({ file, message: e instanceof ConfigError ? e.message : `CDI spec ${file}: ${(e as Error).message}` });
        }
      }
    });
    return r;
  }

  /** The kinds some spec defines. */
  kinds(): string[] {
    return [...new Set(this.specs.map((s) => s.spec.kind))].sort();
  }

  has(qualified: string): boolean {
    const q = parseQualifiedName(qualified);
    return !!q && this.candidates(q.kind, q.name).length > 0;
  }

  /** The names of the devices of `kind`, as the highest-priority specs define them. */
  deviceNames(kind: string): string[] {
    return [...new Set(this.specs.filter((s) => s.spec.kind === kind).flatMap((s) => s.spec.devices.map((d) => d.name)))].sort();
  }

  private candidates(kind: string, name: string): { spec: CdiSpec; device: CdiDevice; priority: number }[] {
    const found = this.specs.flatMap((s) => (s.spec.kind === kind ? s.spec.devices.filter((d) => d.name === name).map((device) => ({ spec: s.spec, device, priority: s.priority })) : []));
    const top = Math.max(-1, ...found.map((f) => f.priority));
    return found.filter((f) => f.priority === top);
  }

  private notFound(field: string, what: string): RuntimeError {
    const broken = this.errors.length ? `; unreadable specs: ${this.errors.map((e) => e.message).join('; ')}` : '';
    return new RuntimeError(`${field}: ${what} (CDI specs read from ${this.dirs.join(', ')})${broken}`, { code: 'ENOTFOUND', step: 'config' });
  }

  /**
   * Resolves names like `nvidia.com/gpu=0`, `nvidia.com/gpu=GPU-<uuid>` or `vendor.com/class=all`
   * (every device of the kind when no spec defines a device named "all"). `field` names the
   * configuration field in errors (`devices[1]`).
   */
  resolve(names: readonly string[], field = 'devices'): CdiResolvedDevice[] {
    const out: CdiResolvedDevice[] = [];
    names.forEach((qualified, i) => {
      const f = `${field}[${i}]`;
      const q = parseQualifiedName(qualified);
      if (!q) throw new RuntimeError(`${f}: "${qualified}" is not a fully-qualified CDI device name (vendor.com/class=name)`, { code: 'EINVAL', step: 'config' });
      if (!this.specs.some((s) => s.spec.kind === q.kind)) throw this.notFound(f, `no CDI spec defines kind ${q.kind}`);
      let wanted = [q.name];
      if (q.name === 'all' && this.candidates(q.kind, 'all').length === 0) wanted = this.deviceNames(q.kind);
      for (const name of wanted) {
        const c = this.candidates(q.kind, name);
        if (c.length === 0) throw this.notFound(f, `${q.kind} has no device "${name}" (it has ${this.deviceNames(q.kind).join(', ')})`);
        if (c.length > 1) {
          throw new RuntimeError(`${f}: ${q.kind}=${name} is defined by more than one spec: ${c.map((x) => x.spec.file).join(', ')}`, { code: 'EINVAL', step: 'config' });
        }
        const full = `${q.kind}=${name}`;
        if (!out.some((o) => o.qualified === full)) out.push({ qualified: full, spec: c[0]!.spec, device: c[0]!.device });
      }
    });
    return out;
  }
}

/** The edits of resolved devices in the order the specification applies them: each device's, then each spec's once. */
export function editSources(devices: readonly CdiResolvedDevice[]): CdiEditSource[] {
  const out: CdiEditSource[] = devices.map((d) => ({ origin: `${d.qualified} (${d.spec.file})`, edits: d.device.containerEdits }));
  const specs = [...new Set(devices.map((d) => d.spec))];
  for (const s of specs) if (s.containerEdits) out.push({ origin: `${s.kind} (${s.file})`, edits: s.containerEdits });
  return out;
}
