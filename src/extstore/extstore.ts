/**
 * Extstore: the flash tier, as a library behind a narrow interface (memcached's extstore.h).
 * It stores opaque byte records in pages on disk and knows nothing about items, keys or
 * protocols; src/engine/storage.ts decides what to write and what a record means.
 *
 * Goals: a write never waits for the disk (it lands in a write buffer or fails at once); reads
 * never block the event loop (node:fs on libuv's thread pool); a pointer to a page that was
 * evicted or reused reads as a miss (page versions); deletes only adjust counters; disk faults
 * are counted, logged once and turned into misses, never into a crash.
 * Non-goals: checksums and record layout (the caller's), O_DIRECT.
 *
 * Restarts: the files are truncated at start, as memcached does, unless the store is given a
 * snapshot() taken at a graceful stop (-e warm restart, beyond memcached): then the files are
 * kept and every page the snapshot names comes back with its version, so pointers saved in
 * item memory stay good. A page the disk no longer holds reads short, and a record damaged
 * meanwhile fails its caller's checksum: both are misses, never wrong values.
 *
 *   file 0: [page 0][page 2][page 4]...     pages are striped over the files, one page at a time
 *   file 1: [page 1][page 3][page 5]...
 *
 *   page (pageBytes): [wbuf][wbuf][wbuf]...  written one write buffer at a time, each buffer
 *                     records packed        zero-filled past its last record
 *
 * A page is free, or has a version (unique, never reused) and belongs to a bucket. Each
 * bucket has one page being filled; its current write buffer takes records until the next
 * does not fit, then is flushed asynchronously while the next buffer fills. A page whose
 * buffers are all on disk and which has no room left is "inactive": it can be evicted
 * (oldest version first, when a page is needed and none is free), compacted by the caller
 * (readback + closePage), or freed when its last object is deleted.
 *
 * Reads of records still in a write buffer are served from memory, synchronously; the rest
 * go to the thread pool, at most `readsInFlightMax` at a time, the others queued in order.
 */
import * as fs from 'node:fs';

/**
 * memcached 1.6.45's page buckets (storage.c), numbered as it numbers them (`stats extstore`
 * shows them). A write goes to the open page of its bucket; a page comes from the free pages
 * of the file(s) given that bucket (`ext_path=FILE:SIZE:BUCKET`), else from the default ones.
 */
export const BUCKET_DEFAULT = 0;
export const BUCKET_COMPACT = 1;
export const BUCKET_CHUNKED = 2;
export const BUCKET_LOWTTL = 3;
/** Compaction writes items found in the COLD LRU here (when such a file exists). */
export const BUCKET_COLDCOMPACT = 4;
/** Compaction of the oldest page writes what it keeps here (when such a file exists). */
export const BUCKET_OLD = 5;
export const BUCKET_COUNT = 6;
/** ext_path's bucket names, by number. */
export const BUCKET_NAMES: readonly string[] = ['default', 'compact', 'chunked', 'lowttl', 'coldcompact', 'old'];

/** Write buffers allocated at most: two per bucket, so one can fill while the other flushes. */
const WBUFS_PER_BUCKET = 2;
/** After a failed write, new writes pause this long (doubling up to the max) before retrying. */
const WRITE_PAUSE_MS_MIN = 1000;
const WRITE_PAUSE_MS_MAX = 60_000;
/**
 * Records up to this size may be answered from the page cache on the serving thread
 * (readInto, ExtstoreIo.readNow); larger ones always go to the thread pool, so one read never
 * holds the event loop for long (a 256 KiB copy is tens of microseconds).
 */
export const READ_NOW_BYTES_MAX = 256 * 1024;
/** readInto's answers: not now (read() instead), from a write buffer, from the page cache. */
export const READ_NOT_NOW = 0;
export const READ_NOW_WBUF = 1;
export const READ_NOW_CACHED = 2;
/** readNow's answers that mean "this file system or kernel cannot": stop trying. */
export const READ_NOW_UNSUPPORTED: ReadonlySet<number> = new Set<number>([-95 /* EOPNOTSUPP */, -22 /* EINVAL */, -38 /* ENOSYS */]);
/**
 * A write buffer goes to its file in writes of at most this many bytes, one after the other.
 * The kernel's copy of a whole 4 MiB buffer into the page cache ran 2-10 ms on a thread-pool
 * thread (perf sched, this machine); where the server is pinned to one core (as in the bench,
 * and as operators pin memcached) the event loop waits that long. In 256 KiB pieces the
 * longest pool run fell to 0.9 ms, and the extstore bench's p99.9 at 4 KiB from 5.6 to 4.0 ms.
 */
const WRITE_CHUNK_BYTES = 256 * 1024;
/** How often the files are checked for having been removed or truncated underneath. */
const FILE_CHECK_MS = 1000;

/** The file operations extstore uses; tests replace them to inject faults. */
export interface ExtstoreIo {
  read(fd: number, buf: Buffer, off: number, len: number, pos: number,
    cb: (err: NodeJS.ErrnoException | null, bytesRead: number) => void): void;
  write(fd: number, buf: Buffer, off: number, len: number, pos: number,
    cb: (err: NodeJS.ErrnoException | null, written: number) => void): void;
  fstat(fd: number, cb: (err: NodeJS.ErrnoException | null, st: fs.Stats) => void): void;
  /**
   * Optional: read what the page cache holds right now, on the calling thread, without
   * waiting for the device (preadv2 with RWF_NOWAIT): `headLen` bytes from `pos` into
   * head[0, headLen), the next `bodyLen` into body[bodyAt, +bodyLen). Bytes read (fewer when
   * only part is cached) or -errno (-EAGAIN: the device is needed).
   */
  readNow?(fd: number, pos: number, head: Buffer, headLen: number, body: Buffer, bodyAt: number, bodyLen: number): number;
  /** Create (or truncate) and open a file for reading and writing. */
  open(path: string, cb: (err: NodeJS.ErrnoException | null, fd: number) => void): void;
  close(fd: number): void;
}

export const nodeIo: ExtstoreIo = {
  read: (fd, buf, off, len, pos, cb) => fs.read(fd, buf, off, len, pos, cb),
  write: (fd, buf, off, len, pos, cb) => fs.write(fd, buf, off, len, pos, cb),
  fstat: (fd, cb) => fs.fstat(fd, cb),
  open: (path, cb) => fs.open(path, 'w+', 0o644, cb),
  close: (fd) => fs.close(fd, () => {}),
};

export interface ExtstoreFileConfig {
  path: string;
  pageCount: number;
  /** The bucket its free pages serve (BUCKET_DEFAULT when absent). */
  freeBucket?: number;
}

export interface ExtstoreConfig {
  pageBytes: number;
  wbufBytes: number;
  files: ExtstoreFileConfig[];
  /** Disk reads handed to the thread pool at once; more wait in a queue. */
  readsInFlightMax: number;
  /** Bytes of reads queued or in flight beyond which read() refuses (ReadResult.Busy). */
  readBytesQueuedMax: number;
  io?: ExtstoreIo;
  log?: (level: number, message: string) => void;
  /**
   * Takes an exclusive lock on an open file, false when another process holds it (the native
   * addon's fcntl lock); absent: files are not locked.
   */
  lockFile?: (fd: number) => boolean;
  /** A snapshot() of the same configuration, taken at a graceful stop: keep the files and its pages. */
  restore?: ExtstoreSnapshot;
}

/**
 * What a restart needs of the page table (JSON-safe): the configuration it belongs to, the
 * next page version, and per page [version, bucket, objects, bytes used, bytes written,
 * 1 if a bucket was filling it] ([0] for a free page). Taken only when no write buffer holds anything (drain()).
 */
export interface ExtstoreSnapshot {
  readonly pageBytes: number;
  readonly wbufBytes: number;
  readonly files: ReadonlyArray<{ readonly path: string; readonly pageCount: number; readonly freeBucket: number }>;
  readonly nextVersion: number;
  readonly pages: ReadonlyArray<readonly number[]>;
}

export const enum ReadResult {
  Ok = 0,
  /** The page was evicted, compacted, lost to a fault, or reused: the record is gone. */
  Stale = 1,
  /** The read failed (EIO and friends). */
  IoError = 2,
  /** Fewer bytes than asked for: the file was truncated underneath. */
  ShortRead = 3,
  /** Too many reads queued; nothing was read. */
  Busy = 4,
}

/** `buf[start, start + len)` is the record; valid only during the callback. */
export type ReadCallback = (result: ReadResult, buf: Buffer, start: number) => void;

/**
 * What the read side of src/engine/storage.ts needs of the pages: Extstore on the thread that
 * owns them, src/engine/storage-link.ts on the worker threads.
 */
export interface RecordStore {
  /** Is a pointer (page id, version) still good? */
  check(pageId: number, version: number): boolean;
  /** `count` objects of `bytes` left a page (see Extstore.delete). */
  delete(pageId: number, version: number, count: number, bytes: number): void;
  /** Read a record; the callback may run at once (see Extstore.read). */
  read(pageId: number, version: number, offset: number, len: number, cb: ReadCallback): void;
  /** A record now, without waiting, or READ_NOT_NOW (see Extstore.readInto). */
  readInto(pageId: number, version: number, offset: number, len: number, head: Buffer, headLen: number,
    body: Buffer, bodyAt: number): number;
  countReadNow(len: number, from: number): void;
  readSync(pageId: number, version: number, offset: number, len: number): { buf: Buffer; start: number } | null;
  logOnce(key: string, message: string): void;
  /** A value that could have gone to disk was evicted instead: the writer is behind (another thread's store only). */
  writerWanted?(): void;
}

/**
 * The page table the worker threads read (src/engine/storage-link.ts), in a
 * SharedArrayBuffer the owning thread writes: word 0 counts the times a file was created
 * again (a reader then reopens its descriptors); word 1 is set by a thread that wants the
 * background writer woken, and cleared by the owner; then per page PT_STRIDE words:
 * version (0: free), bytes from the page start known to be on disk, file index, byte offset
 * in the file / page size. A reader trusts none of it alone: every record read is checked
 * against the CRC its header item keeps.
 */
export const PT_GENERATION = 0;
export const PT_WAKE = 1;
export const PT_HEADER_WORDS = 2;
export const PT_STRIDE = 4;
export const PT_VERSION = 0;
export const PT_WRITTEN = 1;
export const PT_FILE = 2;
export const PT_SLOT = 3;

/** memcached's struct extstore_stats counters, plus fault counters of our own. */
export class ExtstoreCounters {
  page_allocs = 0;
  page_evictions = 0;
  page_reclaims = 0;
  objects_evicted = 0;
  objects_read = 0;
  objects_written = 0;
  objects_used = 0;
  bytes_evicted = 0;
  bytes_written = 0;
  bytes_read = 0;
  bytes_used = 0;
  // faults (not in memcached)
  read_errors = 0;
  short_reads = 0;
  write_errors = 0;
  write_enospc = 0;
  files_removed = 0;
  files_truncated = 0;
  pages_lost = 0;
  objects_lost = 0;
  writes_refused = 0;
  /** Reads answered at once from the page cache (readNow), not through the thread pool. */
  reads_cached = 0;
}

class Wbuf {
  readonly buf: Buffer;
  page: Page | null = null;
  version = 0;
  /** Offset of this buffer within its page. */
  pageOffset = 0;
  used = 0;
  submitted = false;
  flushed = false;

  constructor(bytes: number) {
    this.buf = Buffer.allocUnsafeSlow(bytes);
  }
}

class Page {
  version = 0;
  bucket = 0;
  objCount = 0;
  bytesUsed = 0;
  /** Bytes of the page handed to write buffers. */
  allocated = 0;
  /** Bytes from the page start known to be on disk. */
  written = 0;
  free = true;
  /** Being written: has room left, or buffers not yet on disk. */
  active = false;
  /** Write buffers of this page not yet on disk, in page order (the last may be filling). */
  readonly wbufs: Wbuf[] = [];

  constructor(
    readonly id: number,
    readonly file: StoreFile,
    /** Byte offset of the page within its file. */
    readonly offset: number,
  ) {}

  /** The free list the page returns to: its file's bucket. */
  get freeBucket(): number {
    return this.file.freeBucket;
  }
}

class StoreFile {
  fd = -1;
  usable = false;
  reopening = false;
  /** Reads and writes on the thread pool against this file's descriptors. */
  ioInFlight = 0;
  /**
   * Descriptors of a file removed underneath, closed only once no read or write is in flight:
   * closed at once, the number could go to the file created again while a write issued
   * against the old one waits on the pool, which would then land in the new file.
   */
  readonly retired: number[] = [];
  readonly pages: Page[] = [];
  constructor(readonly path: string, readonly index: number, readonly freeBucket: number) {}
}

interface DiskRead {
  page: Page;
  version: number;
  pos: number;
  len: number;
  cb: ReadCallback;
}

const EMPTY = Buffer.alloc(0);

/** The files could not be opened at startup: memcached exits 1 with this message. */
export class ExtstoreInitError extends Error {
  readonly exitCode = 1;
}

export class Extstore implements RecordStore {
  readonly pageBytes: number;
  /** The shared page table (see PT_GENERATION). */
  readonly table: Uint32Array;
  readonly wbufBytes: number;
  readonly pages: Page[] = [];
  readonly files: StoreFile[] = [];
  readonly counters = new ExtstoreCounters();
  io: ExtstoreIo;
  log: (level: number, message: string) => void;

  /** Where the last successful writeRequest() put the caller's record. */
  readonly slot: { buf: Buffer; bufOffset: number; pageId: number; version: number; offset: number } =
    { buf: EMPTY, bufOffset: 0, pageId: 0, version: 0, offset: 0 };
  private slotWbuf: Wbuf | null = null;

  /** Free pages by the bucket they serve (their file's). */
  private readonly freeLists: Page[][] = Array.from({ length: BUCKET_COUNT }, () => []);
  private readonly bucketPage: (Page | null)[] = new Array<Page | null>(BUCKET_COUNT).fill(null);
  private readonly wbufPool: Wbuf[] = [];
  private wbufCount = 0;
  private readonly wbufCountMax = BUCKET_COUNT * WBUFS_PER_BUCKET;
  private nextVersion = 1;
  private readonly readQueue: DiskRead[] = [];
  private readQueueHead = 0;
  private readsInFlight = 0;
  private readBytesQueued = 0;
  private writesInFlight = 0;
  readonly readsInFlightMax: number;
  readonly readBytesQueuedMax: number;
  private writePauseMs = WRITE_PAUSE_MS_MIN;
  private writesPausedUntil = 0;
  private readonly logged = new Set<string>();
  private checkTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** readNow answered "this file system cannot": not asked again. */
  private readNowOff = false;

  /** Open (create, truncate) every file synchronously; throws with the file named on failure. */
  constructor(conf: ExtstoreConfig) {
    if (conf.pageBytes % conf.wbufBytes !== 0) throw new Error('page_size must be divisible by wbuf_size');
    if (conf.files.length === 0) throw new Error('extstore needs at least one file');
    this.pageBytes = conf.pageBytes;
    this.wbufBytes = conf.wbufBytes;
    this.readsInFlightMax = Math.max(1, conf.readsInFlightMax);
    this.readBytesQueuedMax = conf.readBytesQueuedMax;
    this.io = conf.io ?? nodeIo;
    this.log = conf.log ?? (() => {});
    const remaining: number[] = [];
    for (let i = 0; i < conf.files.length; i++) {
      const fb = conf.files[i].freeBucket ?? BUCKET_DEFAULT;
      if (!(Number.isInteger(fb) && fb >= 0 && fb < BUCKET_COUNT)) throw new Error(`bucket ${fb}`);
      const f = new StoreFile(conf.files[i].path, i, fb);
      try {
        // As memcached: open (creating), lock so a second server cannot use the file, and only
        // then truncate: a restart starts with an empty tier.
        f.fd = fs.openSync(f.path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
        if (conf.lockFile !== undefined && !conf.lockFile(f.fd)) {
          fs.closeSync(f.fd);
          f.fd = -1;
          throw new Error('another process has it open (locked)');
        }
        if (conf.restore === undefined) fs.ftruncateSync(f.fd, 0);
      } catch (e) {
        if (f.fd >= 0) fs.closeSync(f.fd);
        for (const g of this.files) fs.closeSync(g.fd);
        throw new ExtstoreInitError(`Failed to initialize external storage: failed to open file ${f.path}: ` +
          `${(e as Error).message}`);
      }
      f.usable = true;
      this.files.push(f);
      remaining.push(conf.files[i].pageCount);
    }
    // Interleave pages over the files: page n goes to the next file that still has room.
    const total = remaining.reduce((a, b) => a + b, 0);
    let fi = -1;
    for (let id = 0; id < total; id++) {
      do fi = (fi + 1) % this.files.length; while (remaining[fi] === 0);
      remaining[fi]--;
      const file = this.files[fi];
      const page = new Page(id, file, file.pages.length * this.pageBytes);
      file.pages.push(page);
      this.pages.push(page);
      this.freeLists[page.freeBucket].push(page);
    }
    this.table = new Uint32Array(new SharedArrayBuffer((PT_HEADER_WORDS + total * PT_STRIDE) * 4));
    for (const page of this.pages) {
      const at = PT_HEADER_WORDS + page.id * PT_STRIDE;
      this.table[at + PT_FILE] = page.file.index;
      this.table[at + PT_SLOT] = page.offset / this.pageBytes;
    }
    if (conf.restore !== undefined) this.applySnapshot(conf.restore);
  }

  /** Put a page's version and written bytes in the shared table. */
  private publish(page: Page): void {
    const at = PT_HEADER_WORDS + page.id * PT_STRIDE;
    this.table[at + PT_WRITTEN] = page.free ? 0 : page.written;
    this.table[at + PT_VERSION] = page.free ? 0 : page.version;
  }

  /** The configuration a snapshot must match (pages are numbered from it). */
  private sameShape(snap: ExtstoreSnapshot): boolean {
    if (snap.pageBytes !== this.pageBytes || snap.wbufBytes !== this.wbufBytes) return false;
    if (snap.files.length !== this.files.length || snap.pages.length !== this.pages.length) return false;
    return this.files.every((f, i) => f.path === snap.files[i].path && f.pages.length === snap.files[i].pageCount &&
      f.freeBucket === snap.files[i].freeBucket);
  }

  private applySnapshot(snap: ExtstoreSnapshot): void {
    if (!this.sameShape(snap)) throw new Error('extstore snapshot of another configuration');
    for (const list of this.freeLists) list.length = 0;
    const c = this.counters;
    for (const page of this.pages) {
      const [version = 0, bucket = 0, objCount = 0, bytesUsed = 0, written = 0, active = 0] = snap.pages[page.id];
      if (version > 0 && (objCount > 0 || active === 1)) {
        page.version = version;
        page.bucket = bucket;
        page.objCount = objCount;
        page.bytesUsed = bytesUsed;
        page.written = written;
        page.free = false;
        // The page a bucket was filling goes on filling after what is on disk; the rest are full.
        page.active = active === 1 && written < this.pageBytes && bucket < BUCKET_COUNT && this.bucketPage[bucket] === null;
        page.allocated = page.active ? written : this.pageBytes;
        if (page.active) this.bucketPage[bucket] = page;
        c.objects_used += objCount;
        c.bytes_used += bytesUsed;
      } else {
        this.freeLists[page.freeBucket].push(page);
      }
      this.publish(page);
    }
    this.nextVersion = snap.nextVersion;
  }

  /** Nothing waits in a write buffer or is being written. */
  get quiet(): boolean {
    return this.writesInFlight === 0 && this.pages.every((p) => p.wbufs.length === 0);
  }

  /**
   * Write every partly filled buffer and wait until all are on disk (a graceful stop, before
   * snapshot()). False when that took longer than `timeoutMs` (a stuck disk).
   */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.flushAll();
      if (this.quiet) return true;
      if (this.closed || Date.now() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** The page table, for a restart (see ExtstoreSnapshot); null unless quiet. */
  snapshot(): ExtstoreSnapshot | null {
    if (!this.quiet) return null;
    return {
      pageBytes: this.pageBytes,
      wbufBytes: this.wbufBytes,
      files: this.files.map((f) => ({ path: f.path, pageCount: f.pages.length, freeBucket: f.freeBucket })),
      nextVersion: this.nextVersion,
      pages: this.pages.map((p) => (p.free ? [0] : [p.version, p.bucket, p.objCount, p.bytesUsed, p.written, p.active ? 1 : 0])),
    };
  }

  /** Start the periodic check for files removed or truncated underneath. */
  start(): void {
    if (this.checkTimer !== null) return;
    this.checkTimer = setInterval(() => this.checkFiles(), FILE_CHECK_MS);
    this.checkTimer.unref();
  }

  /** Stop timers and close the files; later callbacks are ignored. */
  close(): void {
    this.closed = true;
    if (this.checkTimer !== null) clearInterval(this.checkTimer);
    this.checkTimer = null;
    for (const f of this.files) {
      for (const fd of [f.fd, ...f.retired.splice(0)]) closeNow(fd);
      f.fd = -1;
      f.usable = false;
    }
  }

  get pageCount(): number {
    return this.pages.length;
  }

  get pagesFree(): number {
    let n = 0;
    for (const list of this.freeLists) n += list.length;
    return n;
  }

  get ioQueue(): number {
    return this.readsInFlight + (this.readQueue.length - this.readQueueHead) + this.writesInFlight;
  }

  // ---------------------------------------------------------------- writes

  /**
   * Reserve `len` bytes for a record in `bucket`'s current write buffer. On true, `slot` says
   * where to copy the record (slot.buf at slot.bufOffset) and where it will live (page id,
   * version, offset); the caller then calls writeCommit(len) before doing anything else with
   * this store. False when the record cannot be taken now (buffers busy flushing, writes
   * paused after a fault, too large): the caller simply does not write.
   */
  writeRequest(bucket: number, len: number): boolean {
    this.slotWbuf = null;
    if (this.closed || len <= 0 || len > this.wbufBytes) return false;
    if (this.writesPausedUntil !== 0) {
      if (Date.now() < this.writesPausedUntil) {
        this.counters.writes_refused++;
        return false;
      }
      this.writesPausedUntil = 0;
    }
    let page = this.bucketPage[bucket];
    if (page === null) {
      page = this.allocatePage(bucket);
      if (page === null) return false;
    }
    let w = page.wbufs.length > 0 ? page.wbufs[page.wbufs.length - 1] : null;
    if (w !== null && (w.submitted || w.used + len > this.wbufBytes)) {
      if (!w.submitted) this.submit(w);
      w = null;
    }
    if (w === null) {
      if (page.allocated >= this.pageBytes) {
        // This page is full; it stays active until its buffers are on disk.
        this.bucketPage[bucket] = null;
        page = this.allocatePage(bucket);
        if (page === null) return false;
      }
      w = this.takeWbuf();
      if (w === null) return false;
      w.page = page;
      w.version = page.version;
      w.pageOffset = page.allocated;
      w.used = 0;
      w.submitted = false;
      w.flushed = false;
      page.allocated += this.wbufBytes;
      page.wbufs.push(w);
    }
    const slot = this.slot;
    slot.buf = w.buf;
    slot.bufOffset = w.used;
    slot.pageId = page.id;
    slot.version = page.version;
    slot.offset = w.pageOffset + w.used;
    this.slotWbuf = w;
    return true;
  }

  /** Account a record copied into the slot of the last successful writeRequest(). */
  writeCommit(len: number): void {
    const w = this.slotWbuf;
    if (w === null || w.page === null) throw new Error('writeCommit without a writeRequest');
    this.slotWbuf = null;
    w.used += len;
    const page = w.page;
    page.objCount++;
    page.bytesUsed += len;
    const c = this.counters;
    c.bytes_written += len;
    c.bytes_used += len;
    c.objects_written++;
    c.objects_used++;
  }

  /** Flush every partly filled write buffer now (tests, shutdown); normally buffers flush when full. */
  flushAll(): void {
    for (const page of this.bucketPage) {
      if (page === null || page.wbufs.length === 0) continue;
      const w = page.wbufs[page.wbufs.length - 1];
      if (!w.submitted && w.used > 0) this.submit(w);
    }
  }

  private takeWbuf(): Wbuf | null {
    const w = this.wbufPool.pop();
    if (w !== undefined) return w;
    if (this.wbufCount >= this.wbufCountMax) return null;
    this.wbufCount++;
    return new Wbuf(this.wbufBytes);
  }

  private releaseWbuf(w: Wbuf): void {
    w.page = null;
    w.version = 0;
    this.wbufPool.push(w);
  }

  private submit(w: Wbuf): void {
    const page = w.page as Page;
    w.submitted = true;
    // Zero the tail so a reader walking the buffer (compaction) sees where records end.
    w.buf.fill(0, w.used);
    this.writesInFlight++;
    this.writeFrom(w, page, 0);
  }

  /**
   * Write w.buf[from, wbufBytes) to its place in the page, WRITE_CHUNK_BYTES at a time, one
   * after the other. A short write is continued with the rest, as pwrite(2) asks: on a
   * filling disk the kernel takes what fits, and the next write reports why the rest does not
   * (ENOSPC), so the error is counted for what it is.
   */
  private writeFrom(w: Wbuf, page: Page, from: number): void {
    const len = Math.min(this.wbufBytes - from, WRITE_CHUNK_BYTES);
    const file = page.file;
    const fd = file.fd;
    file.ioInFlight++;
    this.io.write(fd, w.buf, from, len, page.offset + w.pageOffset + from, (err, written) => {
      file.ioInFlight--;
      this.closeRetired(file);
      if (this.closed) {
        this.writesInFlight--;
        return;
      }
      // The rest goes on only to the same file, for the same page: not to a file created again.
      if (err === null && written > 0 && from + written < this.wbufBytes && file.fd === fd && w.page === page &&
        page.version === w.version) {
        this.writeFrom(w, page, from + written);
        return;
      }
      this.writesInFlight--;
      if (err === null && written !== len) {
        err = Object.assign(new Error(`write of ${len} bytes wrote ${written}`), { code: 'EIO' }) as NodeJS.ErrnoException;
      }
      this.onWritten(w, err);
    });
  }

  private onWritten(w: Wbuf, err: NodeJS.ErrnoException | null): void {
    w.flushed = true;
    const page = w.page;
    if (page === null || page.version !== w.version) {
      // The page was lost to a fault while this buffer was in flight.
      this.releaseWbuf(w);
      return;
    }
    if (err !== null) {
      this.counters.write_errors++;
      if (err.code === 'ENOSPC') this.counters.write_enospc++;
      this.logOnce(`write:${err.code ?? 'error'}:${page.file.path}`,
        `extstore: write to ${page.file.path} failed (${err.code ?? err.message}); values in page ${page.id} ` +
        `are dropped and writes pause for ${this.writePauseMs / 1000}s (logged once)`);
      this.pauseWrites();
      this.losePage(page);
      return;
    }
    this.writePauseMs = WRITE_PAUSE_MS_MIN;
    const wbufs = page.wbufs;
    while (wbufs.length > 0 && wbufs[0].flushed) {
      const done = wbufs.shift() as Wbuf;
      page.written = done.pageOffset + this.wbufBytes;
      this.releaseWbuf(done);
    }
    this.publish(page);
    this.maybeDeactivate(page);
  }

  private pauseWrites(): void {
    this.writesPausedUntil = Date.now() + this.writePauseMs;
    this.writePauseMs = Math.min(WRITE_PAUSE_MS_MAX, this.writePauseMs * 2);
  }

  /** A page with no room left and every buffer on disk stops being active. */
  private maybeDeactivate(page: Page): void {
    if (page.free || !page.active || page.wbufs.length > 0 || page.allocated < this.pageBytes) return;
    page.active = false;
    if (this.bucketPage[page.bucket] === page) this.bucketPage[page.bucket] = null;
    if (page.objCount === 0) this.freePage(page);
  }

  // ---------------------------------------------------------------- pages

  /**
   * A free page for `bucket`: one of the pages given that bucket, else a default one (as
   * memcached); with none free, the oldest page that could serve it is evicted first.
   */
  private allocatePage(bucket: number): Page | null {
    let page = this.takeFree(bucket);
    if (page === undefined) {
      this.evictOldest(bucket);
      page = this.takeFree(bucket);
    }
    if (page === undefined) return null;
    page.version = this.nextVersion++;
    page.bucket = bucket;
    page.free = false;
    page.active = true;
    page.allocated = 0;
    page.written = 0;
    page.objCount = 0;
    page.bytesUsed = 0;
    this.bucketPage[bucket] = page;
    this.counters.page_allocs++;
    this.publish(page);
    return page;
  }

  /**
   * memcached's eviction for a write to `bucket`: drop the inactive page with the oldest
   * version among those that could serve it (the default pages and the bucket's own).
   */
  private evictOldest(bucket: number): void {
    let victim: Page | null = null;
    for (const p of this.pages) {
      if (p.free || p.active || p.objCount === 0) continue;
      if (p.freeBucket !== BUCKET_DEFAULT && p.freeBucket !== bucket) continue;
      if (victim === null || p.version < victim.version) victim = p;
    }
    // Inactive pages without objects are freed as they empty; none may be left to take.
    if (victim !== null) this.evict(victim);
  }

  /** Evict page `pageId` if it still holds `version` and is not being written (compaction's eviction of a full cold or old bucket). */
  evictPage(pageId: number, version: number): void {
    const page = this.pages[pageId];
    if (page === undefined || page.free || page.active || page.version !== version) return;
    this.evict(page);
  }

  private evict(victim: Page): void {
    const c = this.counters;
    c.page_evictions++;
    c.objects_evicted += victim.objCount;
    c.bytes_evicted += victim.bytesUsed;
    this.freePage(victim);
  }

  private freePage(page: Page): void {
    const c = this.counters;
    c.objects_used -= page.objCount;
    c.bytes_used -= page.bytesUsed;
    c.page_reclaims++;
    if (this.bucketPage[page.bucket] === page) this.bucketPage[page.bucket] = null;
    for (const w of page.wbufs) {
      // Buffers in flight come back through onWritten (version mismatch); idle ones now.
      if (!w.submitted || w.flushed) this.releaseWbuf(w);
      else w.page = null;
    }
    page.wbufs.length = 0;
    page.version = 0;
    page.objCount = 0;
    page.bytesUsed = 0;
    page.allocated = 0;
    page.written = 0;
    page.bucket = 0;
    page.active = false;
    page.free = true;
    this.publish(page);
    if (page.file.usable) this.freeLists[page.freeBucket].push(page);
  }

  /** A free page of `bucket`'s own, else a default one. */
  private takeFree(bucket: number): Page | undefined {
    const own = this.freeLists[bucket];
    return own.length > 0 ? own.shift() : this.freeLists[BUCKET_DEFAULT].shift();
  }

  /** A fault took the page's data: count what was lost and free it. */
  private losePage(page: Page): void {
    if (page.free) return;
    this.counters.pages_lost++;
    this.counters.objects_lost += page.objCount;
    this.freePage(page);
  }

  /** Is a pointer (page id, version) still good? */
  check(pageId: number, version: number): boolean {
    const page = this.pages[pageId];
    return page !== undefined && !page.free && page.version === version;
  }

  /**
   * `count` objects of `bytes` in total were removed from a page (deleted, overwritten,
   * expired, evicted from memory). Only counters change; a page left empty is freed.
   */
  delete(pageId: number, version: number, count: number, bytes: number): boolean {
    const page = this.pages[pageId];
    if (page === undefined || page.free || page.version !== version) return false;
    const c = this.counters;
    const b = Math.min(bytes, page.bytesUsed);
    const n = Math.min(count, page.objCount);
    page.bytesUsed -= b;
    page.objCount -= n;
    c.bytes_used -= b;
    c.objects_used -= n;
    if (page.objCount === 0 && !page.active) this.freePage(page);
    return true;
  }

  /** The caller is done with a page (compacted): free it, dropping what is left in it. */
  closePage(pageId: number, version: number): void {
    const page = this.pages[pageId];
    if (page === undefined || page.free || page.version !== version || page.active) return;
    this.freePage(page);
  }

  /**
   * memcached's page data, page by page: version (0: free) and live bytes; the bucket it
   * was written for (0 while active or empty); the bucket its file serves; being written.
   */
  pageData(visit: (id: number, version: number, bytesUsed: number, bucket: number, freeBucket: number,
    active: boolean) => void): void {
    for (const p of this.pages) {
      const bucket = p.free || p.active || p.objCount === 0 ? 0 : p.bucket;
      visit(p.id, p.version, p.bytesUsed, bucket, p.freeBucket, p.active);
    }
  }

  // ---------------------------------------------------------------- reads

  /** The page a record pointer names, if that page version is still there and holds the range. */
  private livePage(pageId: number, version: number, offset: number, len: number): Page | null {
    const page = this.pages[pageId];
    if (this.closed || page === undefined || page.free || page.version !== version || offset + len > this.pageBytes) {
      return null;
    }
    return page;
  }

  /** The write buffer of `page` that still holds [offset, offset + len), if any. */
  private wbufHolding(page: Page, offset: number, len: number): Wbuf | null {
    for (const w of page.wbufs) {
      if (offset >= w.pageOffset && offset + len <= w.pageOffset + w.used) return w;
    }
    return null;
  }

  /**
   * Read the record at (page, version, offset) of `len` bytes. The callback runs at once when
   * the record is still in a write buffer or the pointer is stale, otherwise when the disk
   * read completes.
   */
  read(pageId: number, version: number, offset: number, len: number, cb: ReadCallback): void {
    const page = this.livePage(pageId, version, offset, len);
    if (page === null) {
      cb(ReadResult.Stale, EMPTY, 0);
      return;
    }
    const c = this.counters;
    if (offset + len > page.written) {
      const w = this.wbufHolding(page, offset, len);
      if (w === null) {
        cb(ReadResult.Stale, EMPTY, 0);
        return;
      }
      c.objects_read++;
      c.bytes_read += len;
      cb(ReadResult.Ok, w.buf, offset - w.pageOffset);
      return;
    }
    if (this.readBytesQueued + len > this.readBytesQueuedMax && this.readsInFlight > 0) {
      cb(ReadResult.Busy, EMPTY, 0);
      return;
    }
    c.objects_read++;
    c.bytes_read += len;
    this.readBytesQueued += len;
    const req: DiskRead = { page, version, pos: page.offset + offset, len, cb };
    if (this.readsInFlight < this.readsInFlightMax) this.startRead(req);
    else this.readQueue.push(req);
  }

  /**
   * The record at (page, version, offset) of `len` bytes now, if it can be had without
   * waiting: from its write buffer, or from the page cache whole (ExtstoreIo.readNow). Its
   * first `headLen` bytes (record header and key) go to head[0, headLen), the rest (the value)
   * to body[bodyAt, ...). Returns where it came from (READ_NOW_WBUF, READ_NOW_CACHED), or
   * READ_NOT_NOW when it cannot be had now (gone, on the device only, partly cached, an
   * error): the caller then reads it with read(), which reports whatever is wrong. Nothing is
   * counted here; the caller counts a read it accepts with countReadNow().
   */
  readInto(pageId: number, version: number, offset: number, len: number, head: Buffer, headLen: number,
    body: Buffer, bodyAt: number): number {
    const page = this.livePage(pageId, version, offset, len);
    if (page === null || headLen > len) return READ_NOT_NOW;
    if (offset + len > page.written) {
      const w = this.wbufHolding(page, offset, len);
      if (w === null) return READ_NOT_NOW;
      const at = offset - w.pageOffset;
      w.buf.copy(head, 0, at, at + headLen);
      w.buf.copy(body, bodyAt, at + headLen, at + len);
      return READ_NOW_WBUF;
    }
    const readNow = this.io.readNow;
    if (readNow === undefined || this.readNowOff || len > READ_NOW_BYTES_MAX) return READ_NOT_NOW;
    const n = readNow(page.file.fd, page.offset + offset, head, headLen, body, bodyAt, len - headLen);
    if (n === len) return READ_NOW_CACHED;
    if (READ_NOW_UNSUPPORTED.has(n)) {
      this.readNowOff = true;
      this.log(1, `extstore: this file system cannot read from the page cache without waiting (${n}); every read goes to the thread pool`);
    }
    return READ_NOT_NOW;
  }

  /** Count a read readInto answered (`from`: what it returned). */
  countReadNow(len: number, from: number): void {
    const c = this.counters;
    c.objects_read++;
    c.bytes_read += len;
    if (from === READ_NOW_CACHED) c.reads_cached++;
  }

  /**
   * A synchronous read, for callers that cannot wait (see Storage.readValueSync). Blocks the
   * event loop for one pread. Null when the record is gone or cannot be read.
   */
  readSync(pageId: number, version: number, offset: number, len: number): { buf: Buffer; start: number } | null {
    const page = this.livePage(pageId, version, offset, len);
    if (page === null) return null;
    const c = this.counters;
    if (offset + len > page.written) {
      const w = this.wbufHolding(page, offset, len);
      if (w === null) return null;
      c.objects_read++;
      c.bytes_read += len;
      return { buf: w.buf, start: offset - w.pageOffset };
    }
    const buf = Buffer.allocUnsafe(len);
    let n: number;
    try {
      n = fs.readSync(page.file.fd, buf, 0, len, page.offset + offset);
    } catch (e) {
      c.read_errors++;
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      this.logOnce(`read:${code}:${page.file.path}`, `extstore: read from ${page.file.path} failed (${code}); answered as a miss (logged once)`);
      return null;
    }
    if (n < len) {
      c.short_reads++;
      return null;
    }
    c.objects_read++;
    c.bytes_read += len;
    return { buf, start: 0 };
  }

  private startRead(req: DiskRead): void {
    this.readsInFlight++;
    const buf = Buffer.allocUnsafe(req.len);
    const file = req.page.file;
    file.ioInFlight++;
    this.io.read(file.fd, buf, 0, req.len, req.pos, (err, n) => {
      file.ioInFlight--;
      this.closeRetired(file);
      this.readsInFlight--;
      this.readBytesQueued -= req.len;
      if (!this.closed) this.pumpReads();
      this.onRead(req, buf, err, n);
    });
  }

  private pumpReads(): void {
    const q = this.readQueue;
    while (this.readsInFlight < this.readsInFlightMax && this.readQueueHead < q.length) {
      const next = q[this.readQueueHead];
      q[this.readQueueHead++] = undefined as unknown as DiskRead;
      this.startRead(next);
    }
    if (this.readQueueHead === q.length) {
      q.length = 0;
      this.readQueueHead = 0;
    }
  }

  private onRead(req: DiskRead, buf: Buffer, err: NodeJS.ErrnoException | null, n: number): void {
    const page = req.page;
    if (this.closed) {
      req.cb(ReadResult.Stale, EMPTY, 0);
      return;
    }
    if (err !== null) {
      this.counters.read_errors++;
      this.logOnce(`read:${err.code ?? 'error'}:${page.file.path}`,
        `extstore: read from ${page.file.path} failed (${err.code ?? err.message}); answered as a miss (logged once)`);
      req.cb(ReadResult.IoError, EMPTY, 0);
      return;
    }
    if (page.version !== req.version) {
      req.cb(ReadResult.Stale, EMPTY, 0);
      return;
    }
    if (n < req.len) {
      this.counters.short_reads++;
      this.logOnce(`short:${page.file.path}`,
        `extstore: short read from ${page.file.path} (truncated underneath?); answered as a miss (logged once)`);
      req.cb(ReadResult.ShortRead, EMPTY, 0);
      return;
    }
    req.cb(ReadResult.Ok, buf, 0);
  }

  // ---------------------------------------------------------------- faults

  /** Log a fault the first time it is seen (per kind and file), never per request. */
  logOnce(key: string, message: string): void {
    if (this.logged.has(key)) return;
    this.logged.add(key);
    this.log(0, message);
  }

  /** Look for files removed or truncated underneath (runs every FILE_CHECK_MS). */
  checkFiles(): void {
    if (this.closed) return;
    for (const f of this.files) {
      if (f.reopening) continue;
      if (!f.usable) {
        this.reopen(f);
        continue;
      }
      const fd = f.fd;
      this.io.fstat(fd, (err, st) => {
        if (this.closed || f.fd !== fd || !f.usable) return;
        if (err !== null) {
          this.logOnce(`fstat:${f.path}`, `extstore: cannot stat ${f.path} (${err.code ?? err.message}) (logged once)`);
          return;
        }
        if (st.nlink === 0) this.fileRemoved(f);
        else this.truncatedTo(f, st.size);
      });
    }
  }

  private fileRemoved(f: StoreFile): void {
    this.counters.files_removed++;
    this.logOnce(`removed:${f.path}`,
      `extstore: ${f.path} was removed underneath; its values are dropped and the file is created again (logged once)`);
    f.usable = false;
    for (const p of f.pages) this.losePage(p);
    this.removeFreePagesOf(f);
    f.retired.push(f.fd);
    f.fd = -1;
    this.closeRetired(f);
    this.reopen(f);
  }

  /** Close a removed file's old descriptors once nothing is in flight against the file. */
  private closeRetired(f: StoreFile): void {
    if (f.ioInFlight > 0 || f.retired.length === 0) return;
    for (const fd of f.retired.splice(0)) this.io.close(fd);
  }

  private truncatedTo(f: StoreFile, size: number): void {
    let lost = 0;
    for (const p of f.pages) {
      if (p.free || p.written === 0 || p.offset + p.written <= size) continue;
      this.losePage(p);
      lost++;
    }
    if (lost === 0) return;
    this.counters.files_truncated++;
    this.logOnce(`truncated:${f.path}`,
      `extstore: ${f.path} was truncated underneath to ${size} bytes; values in ${lost} page(s) are dropped (logged once)`);
  }

  private reopen(f: StoreFile): void {
    f.reopening = true;
    this.io.open(f.path, (err, fd) => {
      f.reopening = false;
      if (this.closed) {
        if (err === null) this.io.close(fd);
        return;
      }
      if (err !== null) {
        this.logOnce(`reopen:${f.path}`,
          `extstore: cannot create ${f.path} again (${err.code ?? err.message}); its pages stay out of use (logged once)`);
        return;
      }
      f.fd = fd;
      f.usable = true;
      this.table[PT_GENERATION]++;
      for (const p of f.pages) if (p.free) this.freeLists[p.freeBucket].push(p);
      this.log(1, `extstore: ${f.path} created again`);
    });
  }

  private removeFreePagesOf(f: StoreFile): void {
    const list = this.freeLists[f.freeBucket];
    let j = 0;
    for (let i = 0; i < list.length; i++) {
      const p = list[i];
      if (p.file !== f) list[j++] = p;
    }
    list.length = j;
  }
}

/**
 * Close `fd` at once (the store stops); one already closed, or -1, is no error. The same as
 * platform/descriptors.ts's closeDescriptor, which extstore may not import (it sits below the
 * platform layer: .dependency-cruiser.cjs).
 */
function closeNow(fd: number): void {
  if (fd < 0) return;
  try {
    fs.closeSync(fd);
  } catch {
    // already gone
  }
}
