/**
 * -e <memory_file>: warm restart. The store's memory lives in a file (tmpfs in practice), a
 * graceful stop (SIGUSR1, `shutdown graceful`) writes `<file>.meta`, and the next start with
 * the same -e and compatible settings finds every item again.
 *
 * What is kept: every "state" buffer of the store's SharedMemory (src/store/shared.ts): the
 * arena (items, values, chunk chains, LRU links), slab bookkeeping, LRU heads and counts,
 * the hash table and its shape, the CAS counter and flush_all's state. References inside
 * them are offsets, never addresses, so nothing needs fixing up after a restart (memcached
 * walks its whole memory to rebase pointers). What is not kept: locks (zero, unlocked) and
 * statistics counters (zero, as memcached's). With extstore (beyond memcached, which refuses
 * -e with it), the metadata also carries the flash tier's page table (`tier`), saved after
 * every buffered value is on disk, and the disk files are kept.
 *
 * The file: buffer k at region offset[k], byte i of the buffer at offset[k] + i. With the
 * native addon, buffers of MAP_MIN_BYTES and more (the arena, the hash table) are mapped
 * from the file over their whole system pages (MAP_SHARED | MAP_FIXED over the memory V8
 * made for the SharedArrayBuffer), so the item memory is the file, as memcached's mmap, and
 * a restart reads nothing back; the few bytes before the first and after the last whole page
 * of a buffer, and the small buffers, are copied at a save and back at a start. Without the
 * addon every buffer is copied (the server says so at startup). Only the bytes in use are
 * ever read or written (BufferSpec.used): reading a hole of a tmpfs file through a mapping
 * would allocate it.
 *
 * `<file>.meta`: one line of JSON (layout version, the settings that shape the store, the
 * clock, each buffer's region, size, bytes in use and CRC-32C of them) and a line with the
 * CRC-32C of the first. It is removed as soon as it is read, as memcached does: a store that
 * then runs and dies without a graceful stop leaves no metadata, and the next start is
 * clean. A start restores only when every check passes (metadata checksum, layout version,
 * settings, clock not gone backwards, file long enough, every buffer's size and checksum);
 * anything else logs why and starts empty. An empty metadata file stops the start, as
 * memcached's "corrupt metadata file" does.
 *
 * Not for: deciding when to save (src/cli/main.ts), what the buffers mean (their modules).
 */
import * as fs from 'node:fs';
import { crc32c } from '../extstore/crc32c';
import type { MemoryBacking } from './shared';

/** Bumped whenever what a state buffer holds, or the order they are made in, changes. */
export const MEMORY_LAYOUT_VERSION = 2;
/** Buffers this large or larger are mapped from the file (when the addon is there). */
export const MAP_MIN_BYTES = 1 << 20;
/** The system page size the regions are aligned to. */
const FILE_PAGE_BYTES = 4096;
const META_FORMAT = 'memcached-ts memory file';
/** sysexits' EX_OSERR, memcached's exit code when the memory file cannot be used. */
const EX_OSERR = 71;
/** Largest chunk one pread/pwrite moves (Node's limit is 2 GiB). */
const IO_CHUNK_BYTES = 1 << 30;

/** What the memory file needs of the native addon (src/platform/native.ts). */
export interface FileMapper {
  addressInPage(view: ArrayBufferView): number;
  mapFile(view: ArrayBufferView, fd: number, offset: number): [number, number];
  syncFile(view: ArrayBufferView): void;
  lockFile(fd: number): boolean;
}

/** The settings a saved store must have been made with (memcached checks the same ones). */
export type ShapeSettings = Readonly<Record<string, string | number | boolean>>;

interface RegionMeta {
  readonly offset: number;
  readonly size: number;
  readonly used: number;
  readonly crc: number;
}

interface Meta {
  readonly format: string;
  readonly layout: number;
  readonly version: string;
  readonly settings: ShapeSettings;
  readonly processStartedUnix: number;
  readonly stopUnix: number;
  readonly regions: readonly RegionMeta[];
  /** What the flash tier needs to come back (its page table), or null. */
  readonly tier?: unknown;
}

/** What a start found: a saved store to restore (with its clock), or a clean start. */
export interface RestoreInfo {
  readonly processStartedUnix: number;
  readonly downSeconds: number;
  readonly version: string;
  /** The flash tier's saved state (src/extstore/extstore.ts snapshot()), or null. */
  readonly tier: unknown;
}

interface Region {
  readonly buffer: SharedArrayBuffer;
  readonly used: () => number;
  readonly offset: number;
  /** Mapped part [head, head + mapped) of the buffer; 0 bytes when copied. */
  readonly head: number;
  readonly mapped: number;
}

/** The saved store cannot be used after all (found while the store is being built). */
export class MemoryFileMismatch extends Error {}

/** A start that cannot go on (memcached exits too). */
export class MemoryFileError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}

export class MemoryFile implements MemoryBacking {
  private readonly regions: Region[] = [];
  private cursor = 0;
  private restore: RestoreInfo | null;
  private saved: Meta | null;
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly mapper: FileMapper | null,
    private readonly log: (level: number, message: string) => void,
    private readonly shape: ShapeSettings,
    private readonly version: string,
    saved: Meta | null,
  ) {
    this.saved = saved;
    this.restore = saved === null ? null : {
      processStartedUnix: saved.processStartedUnix,
      downSeconds: Math.max(0, Math.floor(Date.now() / 1000) - saved.stopUnix),
      version: saved.version,
      tier: saved.tier ?? null,
    };
    if (saved === null) fs.ftruncateSync(fd, 0);
  }

  /**
   * Open (or create) the memory file and read its metadata. `shape`: the settings that must
   * match the saved store's.
   */
  static open(path: string, opts: {
    mapper: FileMapper | null;
    shape: ShapeSettings;
    version: string;
    log: (level: number, message: string) => void;
  }): MemoryFile {
    let fd: number;
    try {
      fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o700);
    } catch (e) {
      throw new MemoryFileError(`failed to open file for mmap: ${path}: ${e instanceof Error ? e.message : String(e)}`, EX_OSERR);
    }
    if (opts.mapper !== null && !opts.mapper.lockFile(fd)) {
      fs.closeSync(fd);
      throw new MemoryFileError(`-e ${path}: another process is using this memory file`, EX_OSERR);
    }
    let saved: Meta | null;
    try {
      saved = readMeta(path, fd, opts.shape, opts.log);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    return new MemoryFile(path, fd, opts.mapper, opts.log, opts.shape, opts.version, saved);
  }

  /** True while the buffers being made take a saved store's contents. */
  get restoring(): boolean {
    return this.restore !== null;
  }

  /** The saved store being restored (its clock), or null for a clean start. */
  get restored(): RestoreInfo | null {
    return this.restore;
  }

  /** True when item memory is mapped from the file (the addon is there). */
  get mapping(): boolean {
    return this.mapper !== null;
  }

  /**
   * The saved store cannot be used after all (a buffer's size or checksum): forget it and
   * start over with an empty file. The caller builds a new store.
   */
  discard(reason: string): void {
    this.log(0, `[restart] ${reason}; starting with a clean cache`);
    this.restore = null;
    this.saved = null;
    this.regions.length = 0;
    this.cursor = 0;
    fs.ftruncateSync(this.fd, 0);
  }

  adopt(buffer: SharedArrayBuffer, used: () => number): void {
    const k = this.regions.length;
    const view = new Uint8Array(buffer);
    const mappable = this.mapper !== null && buffer.byteLength >= MAP_MIN_BYTES;
    if (this.saved === null) {
      const inPage = mappable ? this.mapper!.addressInPage(view) : 0;
      const offset = alignUp(this.cursor, FILE_PAGE_BYTES) + inPage;
      this.cursor = offset + buffer.byteLength;
      let head = 0;
      let mapped = 0;
      if (mappable) {
        fs.ftruncateSync(this.fd, alignUp(this.cursor, FILE_PAGE_BYTES));
        [head, mapped] = this.mapper!.mapFile(view, this.fd, offset);
      }
      this.regions.push({ buffer, used, offset, head, mapped });
      return;
    }
    const r = this.saved.regions[k];
    if (r === undefined || r.size !== buffer.byteLength) {
      throw new MemoryFileMismatch(`buffer ${k} is ${buffer.byteLength} bytes, the saved store's ${r === undefined ? 'has no such buffer' : `is ${r.size}`}`);
    }
    let head = 0;
    let mapped = 0;
    if (mappable && this.mapper!.addressInPage(view) === r.offset % FILE_PAGE_BYTES) {
      [head, mapped] = this.mapper!.mapFile(view, this.fd, r.offset);
      // The bytes outside the whole pages were copied at the save.
      readInto(this.fd, view, 0, Math.min(head, r.used), r.offset);
      if (head + mapped < r.used) readInto(this.fd, view, head + mapped, r.used, r.offset);
    } else {
      readInto(this.fd, view, 0, r.used, r.offset);
    }
    const crc = r.used > 0 ? crc32c(view, 0, r.used) : 0;
    if (crc !== r.crc) throw new MemoryFileMismatch(`buffer ${k} does not match its checksum`);
    this.regions.push({ buffer, used, offset: r.offset, head, mapped });
  }

  /** The store is built: every saved buffer must have been claimed. */
  finish(): void {
    if (this.saved !== null && this.regions.length !== this.saved.regions.length) {
      throw new MemoryFileMismatch(`the store has ${this.regions.length} buffers, the saved one ${this.saved.regions.length}`);
    }
    this.saved = null;
  }

  /**
   * A graceful stop: write what is not mapped, sync what is, then the metadata. Nothing may
   * change the store meanwhile (connections drained, background work stopped). Returns the
   * bytes written and the time taken, for the log.
   */
  save(processStartedUnix: number, tier: unknown = null): { bytes: number; ms: number } {
    const t0 = performance.now();
    let bytes = 0;
    const regions: RegionMeta[] = [];
    for (const r of this.regions) {
      const view = new Uint8Array(r.buffer);
      const used = Math.min(r.buffer.byteLength, Math.max(0, r.used()));
      if (r.mapped > 0) {
        bytes += writeFrom(this.fd, view, 0, Math.min(r.head, used), r.offset);
        if (r.head + r.mapped < used) bytes += writeFrom(this.fd, view, r.head + r.mapped, used, r.offset);
        this.mapper!.syncFile(view);
      } else {
        bytes += writeFrom(this.fd, view, 0, used, r.offset);
      }
      regions.push({ offset: r.offset, size: r.buffer.byteLength, used, crc: used > 0 ? crc32c(view, 0, used) : 0 });
    }
    fs.fsyncSync(this.fd);
    const meta: Meta = {
      format: META_FORMAT,
      layout: MEMORY_LAYOUT_VERSION,
      version: this.version,
      settings: this.shape,
      processStartedUnix,
      stopUnix: Math.floor(Date.now() / 1000),
      regions,
      tier,
    };
    const body = JSON.stringify(meta);
    const tmp = `${this.path}.meta.tmp`;
    fs.writeFileSync(tmp, `${body}\ncrc32c ${crc32c(Buffer.from(body, 'latin1'), 0, Buffer.byteLength(body, 'latin1')).toString(16)}\n`);
    const fd = fs.openSync(tmp, 'r');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, `${this.path}.meta`);
    return { bytes, ms: performance.now() - t0 };
  }

  /** Close the file (the mappings stay until the process exits). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
  }
}

/** The saved store's metadata if it can be restored, else null (logged); removes the file. */
function readMeta(path: string, fd: number, shape: ShapeSettings, log: (level: number, message: string) => void): Meta | null {
  const metaPath = `${path}.meta`;
  let text: string;
  try {
    text = fs.readFileSync(metaPath, 'latin1');
  } catch {
    log(1, '[restart] no metadata save file, starting with a clean cache');
    return null;
  }
  if (text.length === 0) {
    // memcached refuses to start on an empty metadata file (and keeps it).
    throw new MemoryFileError('[restart] corrupt metadata file', 1);
  }
  fs.unlinkSync(metaPath);
  const lines = text.split('\n');
  const body = lines[0];
  const sum = /^crc32c ([0-9a-f]{1,8})$/.exec(lines[1] ?? '');
  let meta: Meta;
  try {
    if (sum === null || parseInt(sum[1], 16) !== crc32c(Buffer.from(body, 'latin1'), 0, Buffer.byteLength(body, 'latin1'))) throw new Error('checksum');
    meta = JSON.parse(body) as Meta;
    if (meta.format !== META_FORMAT || !Array.isArray(meta.regions)) throw new Error('format');
  } catch {
    log(0, '[restart] metadata file is damaged, starting with a clean cache');
    return null;
  }
  if (meta.layout !== MEMORY_LAYOUT_VERSION) {
    log(0, `[restart] restart incompatible due to setting for [layout] [old value: ${meta.layout}]`);
    return null;
  }
  for (const key of Object.keys(shape)) {
    if (meta.settings?.[key] !== shape[key]) {
      log(0, `[restart] restart incompatible due to setting for [${key}] [old value: ${String(meta.settings?.[key])}]`);
      return null;
    }
  }
  const now = Math.floor(Date.now() / 1000);
  if (!(meta.stopUnix <= now) || !(meta.processStartedUnix <= meta.stopUnix)) {
    log(0, `[restart] restart incompatible due to setting for [stop_time] [old value: ${meta.stopUnix}] (the clock went backwards)`);
    return null;
  }
  const needed = meta.regions.reduce((m, r) => Math.max(m, r.offset + r.used), 0);
  const size = fs.fstatSync(fd).size;
  if (size < needed) {
    log(0, `[restart] the memory file holds ${size} bytes, the saved store needs ${needed}; starting with a clean cache`);
    return null;
  }
  return meta;
}

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

function readInto(fd: number, view: Uint8Array, from: number, to: number, fileOffset: number): void {
  for (let at = from; at < to;) {
    const n = fs.readSync(fd, view, at, Math.min(IO_CHUNK_BYTES, to - at), fileOffset + at);
    if (n <= 0) throw new MemoryFileMismatch('the memory file ended early');
    at += n;
  }
}

function writeFrom(fd: number, view: Uint8Array, from: number, to: number, fileOffset: number): number {
  for (let at = from; at < to;) at += fs.writeSync(fd, view, at, Math.min(IO_CHUNK_BYTES, to - at), fileOffset + at);
  return Math.max(0, to - from);
}
