/**
 * The evolution journal: an append-only file beside a container's state of fixed-size
 * binary records, one per generation, each the whole engine state after that generation
 * (plus the settings in force and the generation's record). A host agent that dies loses
 * at most the generation in flight: the last complete record is where the next one resumes.
 *
 * The file: a 16-byte header (magic, version, genes, record size), then records of
 * `8 + 8·n` bytes: magic, CRC-32 of the payload, n float64s (the layout is `encode` below,
 * with the genes in the base snapshot's order). A record cut short or failing its CRC ends
 * the journal there. The records are relative to the base snapshot kept in the container's
 * state file: compaction writes the state there and truncates the journal to its header,
 * and records no newer than the base are ignored, so a crash between the two is harmless.
 *
 * Durability: each record is one write(2), which the page cache keeps when the process
 * dies; there is no fsync per record. A machine crash ends the containers too (a new boot
 * tears down the containers of the old one), so there is nothing left for a fsync'd
 * record to resume.
 */
import * as fs from 'node:fs';
import { crc32 } from 'node:zlib';
import { RuntimeError } from '../errors.js';
import { ARCHIVE_SIZE, MEASUREMENT_WINDOW } from './archive.js';
import type { Genome } from './genes.js';
import type { ArchiveEntry, EngineSnapshot, GenerationKind, GenerationRecord } from './records.js';

export const JOURNAL_FILE = 'evolution.journal';
/** Records after which the owner compacts (writes the base snapshot, truncates the journal). */
export const COMPACT_AFTER = 128;

const HEADER_MAGIC = 0x4a455353; // "SSEJ"
const RECORD_MAGIC = 0x52455353; // "SSER"
const VERSION = 1;
const HEADER_BYTES = 16;
const KINDS: GenerationKind[] = ['baseline', 'remeasure', 'trial'];

/** What a record holds: the state after a generation, and that generation's record. */
export interface JournalEntry {
  engine: EngineSnapshot;
  applied: Genome | null;
  record: GenerationRecord;
}

/** Float64s per record for `g` genes. */
export function recordWidth(g: number): number {
  return 13 + g + (4 + 2 * g) + (4 + 3 * g) + (2 + g) + 1 + ARCHIVE_SIZE * (3 + MEASUREMENT_WINDOW + 2 * g) + (1 + g) + (8 + 2 * g);
}

class Cursor {
  constructor(
    readonly f: Float64Array,
    public at: number,
  ) {}
  put(v: number): void {
    this.f[this.at++] = v;
  }
  take(): number {
    return this.f[this.at++]!;
  }
  putVec(v: readonly number[] | null | undefined, g: number): void {
    for (let i = 0; i < g; i++) this.put(v ? v[i]! : NaN);
  }
  takeVec(g: number): number[] {
    const out = new Array<number>(g);
    for (let i = 0; i < g; i++) out[i] = this.take();
    return out;
  }
  putGenome(x: Genome | null | undefined, names: readonly string[]): void {
    for (const n of names) this.put(x ? x[n]! : NaN);
  }
  takeGenome(names: readonly string[]): Genome {
    const out: Genome = {};
    for (const n of names) out[n] = this.take();
    return out;
  }
  putOpt(v: readonly number[] | null | undefined, g: number): void {
    this.put(v ? 1 : 0);
    this.putVec(v, g);
  }
  takeOpt(g: number): number[] | null {
    const has = this.take() === 1;
    const v = this.takeVec(g);
    return has ? v : null;
  }
}

const orNaN = (v: number | null | undefined): number => (v === null || v === undefined ? NaN : v);
const orNull = (v: number): number | null => (Number.isNaN(v) ? null : v);

function encode(e: JournalEntry, names: readonly string[], c: Cursor): void {
  const s = e.engine;
  const g = names.length;
  for (const v of [s.generation, s.trials, s.successes, s.failures, s.successRate, s.credit, s.noise.sum, s.noise.weight, s.nextId]) c.put(v);
  c.putVec(s.rng, 4);
  c.putVec(s.sigma, g);
  const p = s.plateau;
  c.put(p?.streak ?? 0);
  c.put(p?.rest ?? 0);
  c.putOpt(p?.base, g);
  c.putOpt(p?.center, g);
  const q = s.pending;
  c.put(q ? KINDS.indexOf(q.kind) : -1);
  c.put(q ? q.entryId : NaN);
  c.put(q?.mirrored ? 1 : 0);
  c.putGenome(q?.genome, names);
  c.putVec(q?.x, g);
  c.putOpt(q?.step, g);
  c.put(s.mirror ? 1 : 0);
  c.put(s.mirror ? s.mirror.parentId : NaN);
  c.putVec(s.mirror?.step, g);
  c.put(s.archive.length);
  for (let i = 0; i < ARCHIVE_SIZE; i++) {
    const a = s.archive[i];
    c.put(a ? a.id : NaN);
    c.put(a ? a.measuredAt : NaN);
    c.put(a ? a.fitness.length : 0);
    c.putVec(a?.fitness.length ? a.fitness.concat(new Array(MEASUREMENT_WINDOW - a.fitness.length).fill(NaN)) : null, MEASUREMENT_WINDOW);
    c.putVec(a?.x, g);
    c.putGenome(a?.genome, names);
  }
  c.put(e.applied ? 1 : 0);
  c.putGenome(e.applied, names);
  const r = e.record;
  c.put(r.generation);
  c.put(KINDS.indexOf(r.kind));
  c.put(orNaN(r.fitness));
  c.put(r.accepted ? 1 : 0);
  c.put(orNaN(r.bestFitness));
  c.put(r.stepSize);
  c.put(orNaN(r.noise));
  c.put(r.error !== undefined ? 1 : 0);
  c.putGenome(r.genome, names);
  c.putGenome(r.best, names);
}

function decode(c: Cursor, names: readonly string[], base: EngineSnapshot): JournalEntry {
  const g = names.length;
  const [generation, trials, successes, failures, successRate, credit, noiseSum, noiseWeight, nextId] = c.takeVec(9) as number[];
  const rng = c.takeVec(4);
  const sigma = c.takeVec(g);
  const streak = c.take();
  const rest = c.take();
  const plateau = { streak, rest, base: c.takeOpt(g), center: c.takeOpt(g) };
  const kind = c.take();
  const entryId = c.take();
  const mirrored = c.take() === 1;
  const pGenome = c.takeGenome(names);
  const pX = c.takeVec(g);
  const pStep = c.takeOpt(g);
  const pending = kind >= 0 ? { kind: KINDS[kind]!, genome: pGenome, entryId, x: pX, step: pStep, mirrored } : null;
  const hasMirror = c.take() === 1;
  const parentId = c.take();
  const mStep = c.takeVec(g);
  const count = c.take();
  const archive: ArchiveEntry[] = [];
  for (let i = 0; i < ARCHIVE_SIZE; i++) {
    const id = c.take();
    const measuredAt = c.take();
    const n = c.take();
    const fitness = c.takeVec(MEASUREMENT_WINDOW).slice(0, n);
    const x = c.takeVec(g);
    const genome = c.takeGenome(names);
    if (i < count) archive.push({ id, measuredAt, fitness, x, genome });
  }
  const hasApplied = c.take() === 1;
  const applied = c.takeGenome(names);
  const rGeneration = c.take();
  const rKind = KINDS[c.take()]!;
  const fitness = orNull(c.take());
  const accepted = c.take() === 1;
  const bestFitness = orNull(c.take());
  const stepSize = c.take();
  const noise = orNull(c.take());
  const hasError = c.take() === 1;
  const record: GenerationRecord = { generation: rGeneration, kind: rKind, genome: c.takeGenome(names), fitness, accepted, best: c.takeGenome(names), bestFitness, stepSize, noise };
  if (hasError) record.error = 'failed (the reason is in the host agent’s log, not the journal)';
  const engine: EngineSnapshot = {
    ...base,
    rng,
    sigma,
    archive,
    nextId: nextId!,
    pending,
    mirror: hasMirror ? { parentId, step: mStep } : null,
    credit: credit!,
    noise: { sum: noiseSum!, weight: noiseWeight! },
    generation: generation!,
    trials: trials!,
    successes: successes!,
    failures: failures!,
    successRate: successRate!,
    plateau,
    history: [],
  };
  return { engine, applied: hasApplied ? applied : null, record };
}

/** The writer: one per evolving container, opened when evolution is enabled. */
export class EvolutionJournal {
  private readonly names: string[];
  private readonly width: number;
  private buf: Buffer;
  private count = 0;

  private constructor(
    readonly path: string,
    private fd: number,
    names: string[],
  ) {
    this.names = names;
    this.width = recordWidth(names.length);
    this.buf = Buffer.alloc(2 * (8 + 8 * this.width));
  }

  /** Creates (or empties) the journal at `path` for these genes, in the base snapshot's order. */
  static create(path: string, geneNames: readonly string[]): EvolutionJournal {
    let fd: number;
    try {
      fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_APPEND, 0o600);
    } catch (e) {
      throw new RuntimeError(`open evolution journal \`${path}\`: ${(e as NodeJS.ErrnoException).code}`, { code: 'ESYSCALL', step: 'state', path, cause: e });
    }
    const j = new EvolutionJournal(path, fd, [...geneNames]);
    j.reset();
    return j;
  }

  /** Records appended since the last reset. */
  get records(): number {
    return this.count;
  }

  /** Appends one record per entry, in one write(2). */
  append(entries: readonly JournalEntry[]): void {
    if (this.fd < 0) throw new RuntimeError(`evolution journal \`${this.path}\` is closed`, { code: 'ESTATE', step: 'state', path: this.path });
    const size = 8 + 8 * this.width;
    if (this.buf.length < size * entries.length) this.buf = Buffer.alloc(size * entries.length);
    for (let i = 0; i < entries.length; i++) {
      const off = i * size;
      // The payload starts 8 bytes into the record, so it is float64-aligned in the buffer.
      const f = new Float64Array(this.buf.buffer, this.buf.byteOffset + off + 8, this.width);
      encode(entries[i]!, this.names, new Cursor(f, 0));
      this.buf.writeUInt32LE(RECORD_MAGIC, off);
      this.buf.writeUInt32LE(crc32(this.buf.subarray(off + 8, off + size)), off + 4);
    }
    const len = size * entries.length;
    let done = 0;
    try {
      while (done < len) done += fs.writeSync(this.fd, this.buf, done, len - done);
    } catch (e) {
      throw new RuntimeError(`append to evolution journal \`${this.path}\`: ${(e as NodeJS.ErrnoException).code}`, { code: 'ESYSCALL', step: 'state', path: this.path, syscall: 'write', cause: e });
    }
    this.count += entries.length;
  }

  /** Truncates to the header: after compaction, the base snapshot holds everything. */
  reset(): void {
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUInt32LE(HEADER_MAGIC, 0);
    header.writeUInt32LE(VERSION, 4);
    header.writeUInt32LE(this.names.length, 8);
    header.writeUInt32LE(8 + 8 * this.width, 12);
    fs.ftruncateSync(this.fd, 0);
    fs.writeSync(this.fd, header);
    this.count = 0;
  }

  close(): void {
    if (this.fd < 0) return;
    fs.closeSync(this.fd);
    this.fd = -1;
  }
}

export interface Replayed {
  /** The base snapshot advanced to the journal's last complete record. */
  engine: EngineSnapshot;
  applied: Genome | null;
  /** Complete records newer than the base. */
  records: number;
}

/**
 * The base snapshot advanced by the journal at `path`: its last complete record newer than
 * the base, with the records of every generation since appended to the history. Undefined
 * when the journal is missing, empty, for other genes, or holds nothing newer.
 */
export function replayJournal(path: string, base: EngineSnapshot): Replayed | undefined {
  let data: Buffer;
  try {
    data = fs.readFileSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new RuntimeError(`read evolution journal \`${path}\`: ${(e as NodeJS.ErrnoException).code}`, { code: 'ESYSCALL', step: 'state', path, cause: e });
  }
  const names = base.genes.map((g) => g.name);
  const width = recordWidth(names.length);
  const size = 8 + 8 * width;
  if (data.length < HEADER_BYTES || data.readUInt32LE(0) !== HEADER_MAGIC || data.readUInt32LE(4) !== VERSION) return undefined;
  if (data.readUInt32LE(8) !== names.length || data.readUInt32LE(12) !== size) return undefined;
  let last: JournalEntry | undefined;
  let records = 0;
  const history = base.history.slice();
  // Copied out so the float64 view is aligned whatever the Buffer's offset.
  const payload = new Float64Array(width);
  const bytes = new Uint8Array(payload.buffer);
  for (let off = HEADER_BYTES; off + size <= data.length; off += size) {
    if (data.readUInt32LE(off) !== RECORD_MAGIC) break;
    const body = data.subarray(off + 8, off + size);
    if (crc32(body) !== data.readUInt32LE(off + 4)) break;
    bytes.set(body);
    const e = decode(new Cursor(payload, 0), names, base);
    if (e.engine.generation <= base.generation) continue;
    last = e;
    records++;
    history.push(e.record);
  }
  if (!last) return undefined;
  const limit = base.historyLimit;
  return { engine: { ...last.engine, history: limit > 0 ? history.slice(-limit) : [] }, applied: last.applied, records };
}
