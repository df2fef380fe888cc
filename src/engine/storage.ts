/**
 * Storage: the glue between the item store and extstore, as memcached's storage.c is. It
 * decides which values go to disk and when, turns items into header items and back, checks
 * what comes back from disk, compacts fragmented pages and keeps memcached's counters.
 *
 * What it is for: the write path (the background writer moves COLD tail items to write
 * buffers ahead of memory pressure, and a qualifying item about to be evicted is written as a
 * fallback; each becomes a header item holding key, flags, exptime, CAS and a pointer),
 * the read path (fetch() reads a header item's record asynchronously and checks it), recache,
 * compaction, `stats` numbers. What it is not for: replies (src/protocol/disk-value.ts puts
 * a fetched value into a connection's output), page and file management (src/extstore/).
 *
 * A record on disk, as written by writeItem():
 *
 *   byte  0: record bytes (u32, never 0)      4: CRC-32C of bytes [8, record bytes)
 *         8: value bytes (u32)               12: key bytes (u8)   13-15: zero
 *        16: key, then value
 *
 * The header item keeps (page, version, offset, record bytes, CRC) — see src/store/items.ts.
 * A read is good only if the page version still matches, the record's own header agrees with
 * the item and the CRC over what was read equals the CRC kept in memory.
 */
import { copyPlain, readU32LE, writeU32LE } from '../bytes';
import { crc32c, useNativeCrc32c } from '../extstore/crc32c';
import {
  BUCKET_CHUNKED, BUCKET_COLDCOMPACT, BUCKET_COMPACT, BUCKET_COUNT, BUCKET_DEFAULT, BUCKET_LOWTTL, BUCKET_OLD,
  Extstore, nodeIo, READ_NOT_NOW, ReadResult, type ExtstoreIo, type ExtstoreSnapshot, type RecordStore,
} from '../extstore/extstore';
import { LOG_SYSEVENTS, type CompactReadCounts, type WatchLogger } from '../metrics/logger';
import { hashKey } from '../store/hash';
import {
  COLD_LRU, HDR_BIT, IF_ACTIVE, IF_FETCHED, IF_LINKED, ITEM_UPDATE_INTERVAL_SECONDS, Items, WARM_LRU,
  hdrItemBytes, type ColdTier,
} from '../store/items';
import { KIND_ITEM, refPage } from '../store/slabs';
import { ReassignResult, type SlabMover } from '../store/mover';
import type { ServerStats } from '../metrics/stats';
import { loadNative } from '../platform/native';
import { batchedReadIo } from './batched-reads';
import type { Settings } from '../settings';

export const RECORD_HEADER_BYTES = 16;
/** memcached: ext_item_age of UINT_MAX means "no age limit" (write only under memory pressure). */
const ITEM_AGE_NEVER = 4294967295;
/** Bytes the background writer writes per pass before it yields to the event loop. */
const WRITER_BYTES_PER_PASS = 1024 * 1024;
/** The background writer's shortest sleep between idle passes (memcached's WRITE_SLEEP_MIN, µs). */
const WRITER_SLEEP_MIN_US = 200;
/** memcached's MIN_STORAGE_COMPACT_SLEEP: pause between readback chunks while compacting. */
const COMPACT_STEP_MS = 10;
/** Disk reads queued or in flight, in bytes, beyond which a read is refused (get_oom_extstore). */
const READ_BYTES_QUEUED_MAX = 64 * 1024 * 1024;
/** memcached's MIN_PAGES_FOR_SOURCE: a value class keeps more pages than this when giving one. */
const MIN_DONOR_PAGES = 2;
/** Pages of the donor class tried when the first holds an item in use. */
const DONOR_PAGE_TRIES = 4;
/** libuv's default thread pool size, when UV_THREADPOOL_SIZE is not set. */
const UV_POOL_DEFAULT = 4;

/**
 * memcached's compaction counters (thread 0's). The per-request ones (get_extstore,
 * miss_from_extstore ...) are thread stats, in each thread's row of ServerStats.
 */
export class StorageCounters {
  extstore_compact_lost = 0;
  extstore_compact_rescues = 0;
  /** Rescues written to the coldcompact bucket. */
  extstore_compact_resc_cold = 0;
  /** Rescues written to the old bucket. */
  extstore_compact_resc_old = 0;
  extstore_compact_skipped = 0;

  reset(): void {
    for (const k of Object.keys(this) as (keyof StorageCounters)[]) {
      if (typeof this[k] === 'number') (this as unknown as Record<string, number>)[k] = 0;
    }
  }
}

/** `hit`: buf[valueStart, valueStart + value bytes) is the value, valid only during the call. */
export type FetchCallback = (hit: boolean, buf: Buffer, valueStart: number) => void;

const enum Grow {
  No = 0,
  Yes = 1,
  /** The page moved and the item being written was among those it held (now on disk). */
  TookItem = 2,
}

/** An item written to extstore while its page moved, waiting for its header. */
interface MovedRecord {
  key: Buffer;
  hash: number;
  flags: number;
  exptime: number;
  nbytes: number;
  cas: number;
  /** The item's flags (IF_MOVE_KEPT of them carry over to the header). */
  iflags: number;
  keyBinary: boolean;
  pageId: number;
  version: number;
  offset: number;
  len: number;
  crc: number;
}

interface Compaction {
  pageId: number;
  version: number;
  offset: number;
  /** COLD items are dropped instead of rewritten (the page is the oldest, not a fragmented one). */
  dropUnread: boolean;
  /** COLD items are rewritten to the coldcompact bucket. */
  toColdcompact: boolean;
  /** What is rewritten goes to the old bucket instead of the compact one. */
  toOld: boolean;
}

/** One free bucket's pages as the compaction check sees them (memcached's _storage_buk). */
class BucketScan {
  total!: number;
  free!: number;
  /** The most fragmented inactive page under the fragmentation bound, if any (version Infinity: none). */
  lowPage!: number;
  lowVersion!: number;
  fragmented!: number;
  /** The inactive page with the oldest version. */
  lowestPage!: number;
  lowestVersion!: number;

  constructor() {
    this.reset();
  }

  reset(): void {
    this.total = 0;
    this.free = 0;
    this.lowPage = 0;
    this.lowVersion = Infinity;
    this.fragmented = 0;
    this.lowestPage = 0;
    this.lowestVersion = Infinity;
  }
}

const EMPTY = Buffer.alloc(0);

/** Threads in libuv's pool: UV_THREADPOOL_SIZE as the process started with it, else 4. */
export function threadPoolSize(): number {
  const n = Number(process.env.UV_THREADPOOL_SIZE);
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1024) : UV_POOL_DEFAULT;
}

/**
 * -o ext_threads: memcached's IO threads are libuv's thread pool here. Must run before the
 * first use of the pool (the first async fs call); an explicit UV_THREADPOOL_SIZE wins.
 */
export function applyExtstoreThreads(settings: Settings): void {
  if (settings.extPaths.length === 0 || !settings.extThreadsSet) return;
  if (process.env.UV_THREADPOOL_SIZE !== undefined) return;
  process.env.UV_THREADPOOL_SIZE = String(settings.extThreads);
}

/** Does the record header at b[at, at + 16) say what the header item says of it? */
function recordHeaderOk(b: Buffer, at: number, len: number, crc: number, nkey: number, nbytes: number): boolean {
  return readU32LE(b, at) === len && readU32LE(b, at + 4) === crc && readU32LE(b, at + 8) === nbytes &&
    readU32LE(b, at + 12) === nkey;
}

/** Where a header item's record is on disk, and its length, CRC-32C, key and value sizes. */
interface DiskRecordRef {
  pageId: number;
  version: number;
  offset: number;
  len: number;
  crc: number;
  nkey: number;
  nbytes: number;
}

export class Storage implements ColdTier {
  /** The pages and files: thread 0's alone (null on the worker threads). */
  private readonly local: Extstore | null;
  /** Where records are read: `local`, or on another thread its link to thread 0 (src/engine/storage-link.ts). */
  private readonly records: RecordStore;
  /** Other serving threads share the store: item locks are real, and page moves go through the mover. */
  private readonly shared: boolean;
  readonly counters = new StorageCounters();
  log: (level: number, message: string) => void;
  private readonly items: Items;
  private readonly settings: Settings;
  private minItemTotalFor = -1;
  private minItemTotalBytes = 0;
  private recacheCounter = 0;
  private readonly recordRef: DiskRecordRef = { pageId: 0, version: 0, offset: 0, len: 0, crc: 0, nkey: 0, nbytes: 0 };
  /** fetchNow's target for a record's header and key (a key is at most 250 bytes). */
  private readonly recordHead = Buffer.alloc(RECORD_HEADER_BYTES + 256);
  /** True while ext.read() runs: its callback is then synchronous (record in a write buffer). */
  private inReadCall = false;
  private compaction: Compaction | null = null;
  private compactTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  /**
   * @param logger where compaction's sysevents go (`watch sysevents`)
   */
  constructor(items: Items, private readonly mover: SlabMover, settings: Settings, private readonly stats: ServerStats,
    log: (level: number, message: string) => void, private readonly logger: WatchLogger | null = null, io?: ExtstoreIo,
    restore?: ExtstoreSnapshot, remote: RecordStore | null = null) {
    this.items = items;
    this.settings = settings;
    this.log = log;
    this.shared = stats.table.threads > 1;
    // Every record read is checked against its CRC-32C: with the addon's, on every thread (the
    // choice is per isolate; a worker that skipped it checked in JavaScript, ten times slower).
    const native = loadNative().addon;
    useNativeCrc32c(native);
    if (remote !== null) {
      // A worker thread: reads only; thread 0 writes, compacts and counts pages.
      this.local = null;
      this.records = remote;
      items.coldTier = this;
      return;
    }
    const pageBytes = settings.extPageBytes;
    const files = settings.extPaths.map((f) => ({
      path: f.path, pageCount: Math.floor(f.sizeBytes / pageBytes), freeBucket: f.bucket,
    }));
    // Without the native addon the files are not locked (README: the addon is optional).
    this.local = new Extstore({
      pageBytes,
      wbufBytes: settings.extWbufBytes,
      files,
      readsInFlightMax: threadPoolSize() * settings.extIoDepth * 2,
      readBytesQueuedMax: READ_BYTES_QUEUED_MAX,
      // Tests pass their own io (faults); the server batches its reads when it can.
      io: io ?? batchedReadIo(nodeIo, threadPoolSize()) ?? nodeIo,
      log: (level, message) => this.log(level, message),
      lockFile: native === null ? undefined : (fd) => native.lockFile(fd),
      restore,
    });
    this.records = this.local;
    if (settings.extCompactUnderPages === 0) {
      // memcached 1.6.45 sizes both at 1% of the pages of the ext_path given last (the head of
      // its list), at least 1.
      const onePercent = Math.max(1, Math.floor(files[files.length - 1].pageCount * 0.01));
      settings.extCompactUnderPages = onePercent;
      settings.extDropUnderPages = onePercent;
    }
    items.coldTier = this;
  }

  /** Thread 0's extstore (pages, files, counters); throws on another thread. */
  get ext(): Extstore {
    if (this.local === null) throw new Error('extstore pages are the first thread\'s');
    return this.local;
  }

  start(): void {
    this.ext.start();
    this.scheduleCompaction(this.idleCompactMs());
    this.writerTimer = setTimeout(() => this.writerStep(), 1);
    this.writerTimer.unref();
  }

  /** Run the writer now if it sleeps (another serving thread evicted a value it could have written). */
  wakeWriter(): void {
    if (this.stopped || this.writerTimer === null || !this.writerSleeping) return;
    clearTimeout(this.writerTimer as NodeJS.Timeout);
    this.writerSleeping = false;
    this.writerTimer = setImmediate(() => this.writerStep());
    this.writerTimer.unref();
  }

  /**
   * A graceful stop with -e: stop writing and compacting, put every buffered value on disk,
   * and return the page table the next start restores (null: the disk did not finish in time).
   */
  async drainForRestart(timeoutMs: number): Promise<ExtstoreSnapshot | null> {
    this.stopped = true;
    this.clearTimers();
    return (await this.ext.drain(timeoutMs)) ? this.ext.snapshot() : null;
  }

  private clearTimers(): void {
    if (this.compactTimer !== null) clearTimeout(this.compactTimer);
    this.compactTimer = null;
    if (this.writerTimer !== null) {
      clearTimeout(this.writerTimer as NodeJS.Timeout);
      clearImmediate(this.writerTimer as NodeJS.Immediate);
    }
    this.writerTimer = null;
  }

  stop(): void {
    this.stopped = true;
    this.clearTimers();
    if (this.items.coldTier === this) this.items.coldTier = null;
    this.local?.close();
  }

  // ---------------------------------------------------------------- ColdTier (store side)

  flushForEviction(ref: number): boolean {
    return this.writeItem(ref);
  }

  released(ref: number): void {
    const items = this.items;
    this.records.delete(items.diskPage(ref), items.diskVersion(ref), 1, items.diskLength(ref));
  }

  valid(ref: number): boolean {
    return this.records.check(this.items.diskPage(ref), this.items.diskVersion(ref));
  }

  /**
   * A reader that cannot wait (not hole-aware) wants the value now: read it synchronously.
   * Blocks the event loop for one pread; the text and meta protocols never come here. On
   * failure the value reads as zeros and the miss is counted.
   */
  readValueSync(ref: number, dst: Uint8Array, dstOffset: number): number {
    const items = this.items;
    const nbytes = items.nbytes(ref);
    const len = items.diskLength(ref);
    const nkey = items.nkey(ref);
    this.records.logOnce('sync-read', 'extstore: a value was read synchronously by a caller that is not extstore-aware (logged once)');
    this.stats.get_extstore++;
    const rec = this.records.readSync(items.diskPage(ref), items.diskVersion(ref), items.diskOffset(ref), len);
    if (rec === null || !this.recordOk(rec.buf, rec.start, len, items.diskCrc(ref), nkey, nbytes)) {
      this.stats.miss_from_extstore++;
      dst.fill(0, dstOffset, dstOffset + nbytes);
      return nbytes;
    }
    const vs = rec.start + RECORD_HEADER_BYTES + nkey;
    dst.set(rec.buf.subarray(vs, vs + nbytes), dstOffset);
    return nbytes;
  }

  // ---------------------------------------------------------------- write path

  /** memcached writes items of classes at or above ext_item_size's class: the same bound in bytes. */
  private minItemTotal(): number {
    const size = this.settings.extItemSizeBytes;
    if (size !== this.minItemTotalFor) {
      const slabs = this.items.slabs;
      const cls = slabs.classFor(size);
      this.minItemTotalBytes = cls === 0 ? Infinity : cls === 1 ? 0 : slabs.classSize[cls - 1] + 1;
      this.minItemTotalFor = size;
    }
    return this.minItemTotalBytes;
  }

  /**
   * Write item `ref`'s value to extstore and replace the item with a header item. False,
   * with nothing changed, when it does not qualify or cannot be written now (then it is
   * evicted as without extstore: a set never waits for the disk).
   */
  writeItem(ref: number): boolean {
    const items = this.items;
    if (this.stopped) return false;
    const nkey = items.nkey(ref);
    const nbytes = items.nbytes(ref);
    if (items.memcachedItemTotal(nkey, nbytes, items.flags(ref)) < this.minItemTotal()) return false;
    if (this.local === null) {
      // Another serving thread evicts it: thread 0's writer is behind; wake it.
      this.records.writerWanted?.();
      return false;
    }
    const word = items.u32(ref)[items.w(ref)];
    if ((word & IF_LINKED) === 0 || (word & HDR_BIT) !== 0) return false;
    // Headers grow into memory taken from value classes before they evict each other.
    const hdrCls = items.slabs.classFor(hdrItemBytes(nkey, items.flags(ref)));
    if (!items.slabs.hasFree(hdrCls) && this.growHeaderClass(hdrCls, ref) === Grow.TookItem) return true;
    const len = RECORD_HEADER_BYTES + nkey + nbytes;
    if (!this.ext.writeRequest(this.bucketFor(ref), len)) return false;
    const hdr = this.allocHeaderFor(ref);
    if (hdr === 0) return false;
    const slot = this.ext.slot;
    const crc = this.copyRecord(ref, slot.buf, slot.bufOffset, len);
    this.ext.writeCommit(len);
    this.items.setDiskPointer(hdr, slot.pageId, slot.version, slot.offset, len, crc);
    items.replaceKeepingCas(ref, hdr);
    return true;
  }

  private bucketFor(ref: number): number {
    const items = this.items;
    const exp = items.exptime(ref);
    const now = items.clock.now;
    // memcached: (exptime - now) < ext_low_ttl in unsigned arithmetic (never for 0 or past).
    if (exp > now && exp - now < this.settings.extLowTtlSeconds) return BUCKET_LOWTTL;
    return items.isChunked(ref) ? BUCKET_CHUNKED : BUCKET_DEFAULT;
  }

  /** A header item for `ref`, allocated without evicting `ref` and without nested disk writes. */
  private allocHeaderFor(ref: number): number {
    const items = this.items;
    const hdr = items.withoutColdTier(ref, () => items.allocHdr(items.page(ref), items.keyOffset(ref), items.nkey(ref),
      items.flags(ref), items.exptime(ref), items.nbytes(ref)));
    if (hdr !== 0 && items.keyBinary(ref)) items.setKeyBinary(hdr);
    return hdr;
  }

  /** Write the record for item `ref` at buf[o, o + len); returns its CRC-32C. */
  private copyRecord(ref: number, b: Buffer, o: number, len: number): number {
    const items = this.items;
    const nkey = items.nkey(ref);
    writeU32LE(b, o, len);
    writeU32LE(b, o + 8, items.nbytes(ref));
    writeU32LE(b, o + 12, nkey);
    copyPlain(b, o + RECORD_HEADER_BYTES, items.page(ref), items.keyOffset(ref), nkey);
    items.copyValue(ref, b, o + RECORD_HEADER_BYTES + nkey);
    const crc = crc32c(b, o + 8, o + len);
    writeU32LE(b, o + 4, crc);
    return crc;
  }

  /**
   * Header classes grow instead of evicting headers, as memcached's extstore page mover
   * feeds small classes from its global pool: a page of the value class with the oldest
   * COLD tail (keeping at least MIN_DONOR_PAGES) moves to `hdrCls`; each of its items is
   * written to extstore first and gets a header in the moved page. `ref` (the item being
   * written) may be among them.
   */
  private growHeaderClass(hdrCls: number, ref: number): Grow {
    const items = this.items;
    const slabs = items.slabs;
    if (!this.settings.slabReassign || hdrCls === 0) return Grow.No;
    const first = slabs.classFor(this.settings.extItemSizeBytes);
    if (first === 0) return Grow.No;
    const now = items.clock.now;
    let donor = 0;
    let donorAge = -1;
    for (let c = first; c <= slabs.largestClass; c++) {
      if (c === hdrCls || slabs.pagesPerClass[c] <= MIN_DONOR_PAGES) continue;
      const tail = items.lruTail[(c << 2) | COLD_LRU];
      const age = tail !== 0 ? now - items.atime(tail) : 0;
      if (age > donorAge) {
        donor = c;
        donorAge = age;
      }
    }
    if (donor === 0) return Grow.No;
    if (this.shared) return this.reassignToHeaders(donor, hdrCls);
    // The page holding the donor's oldest item first; if an item there is in use (being
    // filled by a connection), a few others of the class.
    const tail = items.lruTail[(donor << 2) | COLD_LRU];
    const candidates: number[] = tail !== 0 ? [refPage(tail)] : [];
    for (const p of slabs.pagesOf(donor)) {
      if (candidates.length >= DONOR_PAGE_TRIES) break;
      if (p !== candidates[0]) candidates.push(p);
    }
    for (const page of candidates) {
      const saved: MovedRecord[] = [];
      let tookItem = false;
      const moved = items.withoutColdTier(0, () => {
        const done = this.mover.evacuate(page, hdrCls, (r) => {
          if (r === ref) tookItem = true;
          return this.stashForMove(r, saved);
        }, (r) => items.countEviction(r));
        if (done) for (const m of saved) this.relinkMoved(m);
        return done;
      });
      if (!moved) continue;
      this.log(2, `extstore: page ${page} moved from class ${donor} to header class ${hdrCls} (${saved.length} values written)`);
      return tookItem ? Grow.TookItem : Grow.Yes;
    }
    return Grow.No;
  }

  /**
   * growHeaderClass with the worker threads: a page cannot be emptied in one go under
   * them (a chunk may be taken and filled meanwhile), so the page mover moves it as any other
   * (`slabs reassign`: item locks by trylock, rescues, a busy chunk retried later by the LRU
   * maintainer); the donor's items it cannot rescue are evicted, as its COLD tail would be.
   */
  private reassignToHeaders(donor: number, hdrCls: number): Grow {
    const mover = this.mover;
    if (mover.running) return Grow.No;
    const result = this.items.withoutColdTier(0, () => mover.reassign(donor, hdrCls, true));
    if (result !== ReassignResult.Ok) return Grow.No;
    this.log(2, `extstore: a page of class ${donor} goes to header class ${hdrCls}${mover.running ? ' (under way)' : ''}`);
    return mover.running ? Grow.No : Grow.Yes;
  }

  /** Write an item of a page being moved to extstore; remember what its header needs. */
  private stashForMove(ref: number, saved: MovedRecord[]): boolean {
    const items = this.items;
    if (items.isHdr(ref) || items.isDead(ref)) return false;
    const nkey = items.nkey(ref);
    const nbytes = items.nbytes(ref);
    if (items.memcachedItemTotal(nkey, nbytes, items.flags(ref)) < this.minItemTotal()) return false;
    const len = RECORD_HEADER_BYTES + nkey + nbytes;
    const ext = this.ext;
    if (!ext.writeRequest(this.bucketFor(ref), len)) return false;
    const slot = ext.slot;
    const crc = this.copyRecord(ref, slot.buf, slot.bufOffset, len);
    ext.writeCommit(len);
    const ko = items.keyOffset(ref);
    saved.push({
      key: Buffer.from(items.page(ref).subarray(ko, ko + nkey)),
      hash: items.hashOf(ref),
      flags: items.flags(ref),
      exptime: items.exptime(ref),
      nbytes,
      cas: items.cas(ref),
      iflags: items.iflags(ref),
      keyBinary: items.keyBinary(ref),
      pageId: slot.pageId,
      version: slot.version,
      offset: slot.offset,
      len,
      crc,
    });
    return true;
  }

  private relinkMoved(m: MovedRecord): void {
    const items = this.items;
    const hdr = items.allocHdr(m.key, 0, m.key.length, m.flags, m.exptime, m.nbytes);
    if (hdr === 0) {
      this.ext.delete(m.pageId, m.version, 1, m.len);
      return;
    }
    if (m.keyBinary) items.setKeyBinary(hdr);
    this.items.setDiskPointer(hdr, m.pageId, m.version, m.offset, m.len, m.crc);
    items.linkMoved(hdr, m.hash, 0, m.cas, m.iflags);
  }

  /**
   * memcached's storage writer thread, one pass: from the largest class down, the COLD tail item is written to disk (and replaced by a header) while the class has
   * fewer free chunks than its target (a few pages' worth while the global page pool is at
   * or under its low mark: then at any age), or while the tail is older than ext_item_age.
   * A class that wrote nothing is looked at less often (backoff), as memcached. Bounded by
   * WRITER_BYTES_PER_PASS; runs on thread 0 (which owns the files). True when
   * anything was written.
   */
  writePass(): boolean {
    const items = this.items;
    const slabs = items.slabs;
    const s = this.settings;
    const minClass = slabs.classFor(s.extItemSizeBytes);
    if (this.stopped || minClass === 0) return false;
    const poolMin = this.globalPoolMin();
    const globalPages = slabs.globalPoolPages;
    const targetPages = globalPages < poolMin ? poolMin - globalPages : globalPages === poolMin ? 1 : 0;
    this.writerPasses++;
    let budget = WRITER_BYTES_PER_PASS;
    let wrote = false;
    // Down to class 1, not ext_item_size's class: a chunked item's head lives in a small class
    // (writeItem refuses the items under ext_item_size there).
    for (let x = slabs.largestClass; x >= 1 && budget > 0; x--) {
      const backoff = this.writerBackoff[x];
      if (backoff > 1 && this.writerPasses % backoff !== 0) continue;
      if (slabs.pagesPerClass[x] === 0) continue;
      const chunkSize = slabs.classSize[x];
      // memcached: small classes are not flushed past a few pages (their headers would be
      // close to their size).
      const maxPages = chunkSize < 500 ? 3 : chunkSize < 1000 ? 4 : chunkSize < 2000 ? 5 : targetPages;
      const target = slabs.perPage[x] * Math.min(targetPages, maxPages);
      let chunksFree = slabs.totalChunks(x) - slabs.usedChunks[x];
      let moved = false;
      while (budget > 0) {
        const age = chunksFree < target ? 0 : s.extItemAgeSeconds;
        const written = this.writeColdTail(x, age);
        if (written === 0) break;
        budget -= written;
        chunksFree++;
        moved = true;
      }
      this.writerBackoff[x] = moved ? 1 : backoff + 1;
      wrote ||= moved;
    }
    if (!wrote) this.writerBackoff.fill(1);
    return wrote;
  }

  /** Bytes written for class `cls`'s COLD tail item if it qualifies at `age` (0: any age), else 0. */
  private writeColdTail(cls: number, age: number): number {
    const items = this.items;
    let bytes = 0;
    items.withColdTail(cls, (ref) => {
      if (items.isHdr(ref)) return false;
      if (age !== 0 && (age >= ITEM_AGE_NEVER || items.clock.now - items.atime(ref) <= age)) return false;
      const len = RECORD_HEADER_BYTES + items.nkey(ref) + items.nbytes(ref);
      if (!this.writeItem(ref)) return false;
      bytes = len;
      return true;
    });
    return bytes;
  }

  /**
   * memcached's ext_global_pool_min: the extstore automover's free-page watermark (1% of the
   * pages, at least 2: slab_automove_freeratio) while the automover runs, else 0.
   */
  private globalPoolMin(): number {
    const s = this.settings;
    if (s.slabAutomove === 0) return 0;
    const total = Math.floor(this.items.slabs.mallocedBytes / s.slabPageBytes);
    return Math.max(2, Math.floor(total * s.slabAutomoveFreeRatio));
  }

  private writerPasses = 0;
  private readonly writerBackoff: number[] = new Array<number>(256).fill(1);
  private writerTimer: NodeJS.Timeout | NodeJS.Immediate | null = null;
  /** writerTimer is a sleep (a timeout), not the next pass at once. */
  private writerSleeping = true;
  private writerSleepUs = WRITER_SLEEP_MIN_US;

  /**
   * The writer's pacing, as memcached's: after a pass that wrote, the next comes at once (after
   * pending I/O) and the idle sleep halves; after an idle pass the sleep grows by 1 µs, up to
   * ext_max_sleep (a timer sleeps whole milliseconds, at least one).
   */
  private writerStep(): void {
    this.writerTimer = null;
    if (this.stopped) return;
    if (this.writePass()) {
      if (this.writerSleepUs > WRITER_SLEEP_MIN_US) this.writerSleepUs = Math.floor(this.writerSleepUs / 2);
      this.writerSleeping = false;
      this.writerTimer = setImmediate(() => this.writerStep());
    } else {
      this.writerSleepUs = Math.min(Math.max(this.settings.extMaxSleepMicros, 1), this.writerSleepUs + 1);
      this.writerSleeping = true;
      this.writerTimer = setTimeout(() => this.writerStep(), Math.max(1, Math.round(this.writerSleepUs / 1000)));
    }
    this.writerTimer.unref();
  }

  // ---------------------------------------------------------------- read path

  /** A read finished after its reply was dropped (memcached's get_aborted_extstore). */
  countAborted(): void {
    this.stats.get_aborted_extstore++;
  }

  /**
   * Read header item `ref`'s value. `done` runs once: at once when the record is still in a
   * write buffer or cannot be read, otherwise when the disk read completes. A record that
   * is gone or fails its checks is a miss, and the header item is unlinked (memcached).
   */
  fetch(ref: number, done: FetchCallback): void {
    this.stats.get_extstore++;
    const r = this.recordOf(ref);
    this.fetchOnce(ref, done, this.items.cas(ref), this.items.hashOf(ref), false, r.pageId, r.version, r.offset, r.len,
      r.crc, r.nkey, r.nbytes);
  }

  /**
   * Is there room to read header item `ref`'s value? memcached reads it into an item it takes
   * from slab memory, and refuses the read (get_oom_extstore) when the value's classes cannot
   * supply one: Items.couldHold. Counted when not.
   */
  roomToRead(ref: number): boolean {
    const items = this.items;
    if (items.couldHold(items.nkey(ref), items.nbytes(ref), items.flags(ref))) return true;
    this.stats.get_oom_extstore++;
    return false;
  }

  /** Header item `ref`'s record: where it is and what it must hold (in a reused object: copy it out at once). */
  private recordOf(ref: number): DiskRecordRef {
    const items = this.items;
    const r = this.recordRef;
    r.pageId = items.diskPage(ref);
    r.version = items.diskVersion(ref);
    r.offset = items.diskOffset(ref);
    r.len = items.diskLength(ref);
    r.crc = items.diskCrc(ref);
    r.nkey = items.nkey(ref);
    r.nbytes = items.nbytes(ref);
    return r;
  }

  /**
   * Read the record (pageId, version, offset, len, crc, nkey, nbytes), which header item `ref`
   * (CAS `cas`, key hash `hash`) pointed at when the read began.
   */
  private fetchOnce(ref: number, done: FetchCallback, cas: number, hash: number, retried: boolean, pageId: number,
    version: number, offset: number, len: number, crc: number, nkey: number, nbytes: number): void {
    this.inReadCall = true;
    this.records.read(pageId, version, offset, len, (result, buf, start) => {
      const sync = this.inReadCall;
      if (result === ReadResult.Busy) {
        this.stats.get_oom_extstore++;
        done(false, EMPTY, 0);
        return;
      }
      if (result === ReadResult.Ok && this.recordOk(buf, start, len, crc, nkey, nbytes)) {
        done(true, buf, start + RECORD_HEADER_BYTES + nkey);
        if (!this.recacheDue(ref, pageId, version, offset)) return;
        if (!sync) {
          this.recache(ref, hash, pageId, version, offset, buf, start, nkey, nbytes);
          return;
        }
        // Answered from a write buffer within the caller's own command, which may still use
        // `ref`: recache after it, from a copy (the buffer may be reused by then).
        const copy = Buffer.from(buf.subarray(start, start + len));
        queueMicrotask(() => this.recache(ref, hash, pageId, version, offset, copy, 0, nkey, nbytes));
        return;
      }
      // Compaction may have moved the record while the read was queued: follow it once.
      if (result === ReadResult.Stale && !retried && !sync && this.followMoved(ref, done, cas, hash, pageId, version, offset)) {
        return;
      }
      if (result === ReadResult.Ok) {
        this.stats.badcrc_from_extstore++;
        this.records.logOnce('badcrc', `extstore: a value failed its checksum (page ${pageId}); answered as a miss (logged once)`);
      }
      this.stats.miss_from_extstore++;
      done(false, EMPTY, 0);
      // The caller may still be using `ref` when this runs synchronously: unlink later.
      if (sync) queueMicrotask(() => this.dropHeader(ref, hash, pageId, version, offset));
      else this.dropHeader(ref, hash, pageId, version, offset);
    });
    this.inReadCall = false;
  }

  /**
   * If header item `ref` is still the item read (CAS and key hash) with its record moved
   * elsewhere meanwhile, read it again there (once) and say true.
   */
  private followMoved(ref: number, done: FetchCallback, cas: number, hash: number, pageId: number, version: number,
    offset: number): boolean {
    let r: DiskRecordRef | null = null;
    this.items.lockKey(hash);
    try {
      if (this.movedSince(ref, cas, hash, pageId, version, offset)) r = this.recordOf(ref);
    } finally {
      this.items.unlockKey(hash);
    }
    if (r === null) return false;
    this.fetchOnce(ref, done, cas, hash, true, r.pageId, r.version, r.offset, r.len, r.crc, r.nkey, r.nbytes);
    return true;
  }

  /**
   * Header item `ref`'s value into dst[dstAt, dstAt + nbytes) now, when it can be had without
   * waiting (a write buffer, or the page cache: Extstore.readInto) and passes its checks: the
   * value goes straight into the caller's reply, with no thread-pool hop and no second copy.
   * Counted as fetch() counts a hit. False otherwise, with nothing counted: the caller then
   * uses fetch(), which reads again and reports a miss or a fault as usual.
   */
  fetchNow(ref: number, dst: Buffer, dstAt: number): boolean {
    const { pageId, version, offset, len, crc, nkey, nbytes } = this.recordOf(ref);
    const headLen = RECORD_HEADER_BYTES + nkey;
    const head = this.recordHead;
    if (len !== headLen + nbytes || headLen > head.length) return false;
    const from = this.records.readInto(pageId, version, offset, len, head, headLen, dst, dstAt);
    if (from === READ_NOT_NOW) return false;
    if (!recordHeaderOk(head, 0, len, crc, nkey, nbytes) ||
      crc32c(dst, dstAt, dstAt + nbytes, crc32c(head, 8, headLen)) !== crc) {
      return false;
    }
    this.records.countReadNow(len, from);
    this.stats.get_extstore++;
    if (this.recacheDue(ref, pageId, version, offset)) {
      // The caller's command may still use `ref`: recache after it, from a copy of the record.
      const copy = Buffer.allocUnsafe(len);
      head.copy(copy, 0, 0, headLen);
      dst.copy(copy, headLen, dstAt, dstAt + nbytes);
      const hash = this.items.hashOf(ref);
      queueMicrotask(() => this.recache(ref, hash, pageId, version, offset, copy, 0, nkey, nbytes));
    }
    return true;
  }

  /** Is `ref` still the same item (CAS and key hash) with its record moved elsewhere? */
  private movedSince(ref: number, cas: number, hash: number, pageId: number, version: number, offset: number): boolean {
    const items = this.items;
    const word = items.u32(ref)[items.w(ref)];
    if ((word & 3) !== KIND_ITEM || (word & IF_LINKED) === 0 || (word & HDR_BIT) === 0) return false;
    if (this.sameHeader(ref, pageId, version, offset)) return false;
    return items.cas(ref) === cas && items.hashOf(ref) === hash;
  }

  private recordOk(buf: Buffer, start: number, len: number, crc: number, nkey: number, nbytes: number): boolean {
    if (buf.length < start + len || len < RECORD_HEADER_BYTES) return false;
    return recordHeaderOk(buf, start, len, crc, nkey, nbytes) && crc32c(buf, start + 8, start + len) === crc;
  }

  /** Is `ref` still the linked header item that pointed at (page, version, offset)? */
  private sameHeader(ref: number, pageId: number, version: number, offset: number): boolean {
    const items = this.items;
    const u = items.u32(ref);
    const word = u[items.w(ref)];
    if ((word & 3) !== KIND_ITEM || (word & IF_LINKED) === 0 || (word & HDR_BIT) === 0) return false;
    return items.diskPointerIs(ref, pageId, version, offset);
  }

  /** Unlink header item `ref` (key hash `hash`) if it still points at (page, version, offset). */
  private dropHeader(ref: number, hash: number, pageId: number, version: number, offset: number): void {
    if (this.stopped) return;
    const items = this.items;
    items.lockKey(hash);
    try {
      if (this.sameHeader(ref, pageId, version, offset) && items.hashOf(ref) === hash) items.unlink(ref, hash);
    } finally {
      items.unlockKey(hash);
    }
  }

  /**
   * memcached's recache: a header hit twice (FETCHED, then ACTIVE or moved to WARM) within
   * ITEM_UPDATE_INTERVAL goes back to memory once every ext_recache_rate such reads, whether
   * the read came from disk or from a write buffer. The CAS is kept (a value moved between
   * tiers has not changed), as memcached's item_replace does.
   */
  private recacheDue(ref: number, pageId: number, version: number, offset: number): boolean {
    const rate = this.settings.extRecacheRate;
    if (rate === 0 || this.stopped || !this.sameHeader(ref, pageId, version, offset)) return false;
    const items = this.items;
    const f = items.iflags(ref);
    const hitTwice = (f & IF_FETCHED) !== 0 && ((f & IF_ACTIVE) !== 0 || items.segment(ref) === WARM_LRU);
    if (!hitTwice || items.atime(ref) <= items.clock.now - ITEM_UPDATE_INTERVAL_SECONDS) return false;
    return this.recacheCounter++ % rate === 0;
  }

  private recache(ref: number, hash: number, pageId: number, version: number, offset: number, buf: Buffer,
    start: number, nkey: number, nbytes: number): void {
    if (this.stopped) return;
    const items = this.items;
    // Under its item lock no thread frees, moves or rewrites the header (evictions skip it).
    items.lockKey(hash);
    try {
      if (!this.sameHeader(ref, pageId, version, offset) || items.hashOf(ref) !== hash) return;
      // The header being replaced must survive the allocation (disk writes may go on meanwhile).
      const fresh = items.withPinned(ref, () =>
        items.alloc(items.page(ref), items.keyOffset(ref), nkey, items.flags(ref), items.exptime(ref), nbytes));
      if (fresh === 0) return;
      if (!this.sameHeader(ref, pageId, version, offset)) {
        items.free(fresh);
        return;
      }
      const vs = start + RECORD_HEADER_BYTES + nkey;
      items.writeValue(fresh, 0, buf, vs, vs + nbytes);
      if (items.keyBinary(ref)) items.setKeyBinary(fresh);
      items.setIflags(fresh, items.iflags(fresh) | IF_FETCHED);
      items.replaceKeepingCas(ref, fresh);
      this.stats.recache_from_extstore++;
    } finally {
      items.unlockKey(hash);
    }
  }

  // ---------------------------------------------------------------- compaction

  private idleCompactMs(): number {
    return Math.max(COMPACT_STEP_MS, Math.floor(this.settings.extMaxSleepMicros / 1000));
  }

  private scheduleCompaction(ms: number): void {
    if (this.stopped) return;
    this.compactTimer = setTimeout(() => this.compactStep(), ms);
    this.compactTimer.unref();
  }

  private readonly bucketScans = Array.from({ length: BUCKET_COUNT }, () => new BucketScan());

  private sysevents(): WatchLogger | null {
    const l = this.logger;
    return l !== null && (l.flags & LOG_SYSEVENTS) !== 0 ? l : null;
  }

  /**
   * memcached 1.6.45's storage_compact_check, bucket by bucket (a page belongs to the bucket
   * of its file): a full coldcompact or old bucket evicts its oldest page; a bucket with
   * fewer than ext_compact_under free pages compacts its most fragmented page (live bytes
   * under ext_max_frag of a page); failing that, with fewer than ext_drop_under free, its
   * oldest page, dropping COLD items (ext_drop_unread) or sending them on to coldcompact/old.
   */
  private pickCompaction(): Compaction | null {
    const ext = this.ext;
    const s = this.settings;
    if (ext.pageCount - ext.pagesFree === 0) return null;
    const fragLimit = Math.floor(ext.pageBytes * s.extMaxFrag);
    this.sysevents()?.compactFragInfo(s.extMaxFrag, fragLimit);
    const scans = this.bucketScans;
    for (const b of scans) b.reset();
    ext.pageData((id, version, bytes, _bucket, freeBucket, active) => {
      const b = scans[freeBucket];
      b.total++;
      if (version === 0) {
        b.free++;
        return;
      }
      if (active) return;
      if (version < b.lowestVersion) {
        b.lowestPage = id;
        b.lowestVersion = version;
      }
      const frag = ext.pageBytes - bytes;
      if (bytes < fragLimit && frag > b.fragmented) {
        b.lowPage = id;
        b.lowVersion = version;
        b.fragmented = frag;
      }
    });
    const toColdcompact = scans[BUCKET_COLDCOMPACT].total > 0;
    const hasOld = scans[BUCKET_OLD].total > 0;
    for (const x of [BUCKET_COLDCOMPACT, BUCKET_OLD]) {
      const b = scans[x];
      if (b.total > 0 && b.free === 0 && b.lowestVersion !== Infinity) {
        ext.evictPage(b.lowestPage, b.lowestVersion);
        return null;
      }
    }
    for (let x = 0; x < BUCKET_COUNT; x++) {
      const b = scans[x];
      if (b.total === 0 || x === BUCKET_LOWTTL || b.free >= s.extCompactUnderPages) continue;
      if (b.lowVersion !== Infinity) {
        return { pageId: b.lowPage, version: b.lowVersion, offset: 0, dropUnread: false, toColdcompact, toOld: false };
      }
      if (b.free >= s.extDropUnderPages || b.lowestVersion === Infinity) continue;
      // Evicting into these buckets is their way of freeing pages, not dropping.
      if (x === BUCKET_COLDCOMPACT || x === BUCKET_OLD) continue;
      const dropUnread = s.extDropUnread;
      if (dropUnread || toColdcompact || hasOld) {
        return { pageId: b.lowestPage, version: b.lowestVersion, offset: 0, dropUnread, toColdcompact, toOld: hasOld };
      }
    }
    return null;
  }

  /** One step: pick a page, or read back one write buffer of it and rescue what is live. */
  compactStep(): void {
    this.compactTimer = null;
    if (this.stopped) return;
    if (this.compaction === null) {
      this.compaction = this.pickCompaction();
      if (this.compaction === null) {
        this.scheduleCompaction(this.idleCompactMs());
        return;
      }
      this.log(2, `extstore: compacting page ${this.compaction.pageId}`);
      this.sysevents()?.compactStart(this.compaction.pageId, this.compaction.version);
    }
    const c = this.compaction;
    const ext = this.ext;
    if (c.offset >= ext.pageBytes) {
      ext.closePage(c.pageId, c.version);
      this.compaction = null;
      this.sysevents()?.compactEnd(c.pageId);
      this.scheduleCompaction(COMPACT_STEP_MS);
      return;
    }
    ext.read(c.pageId, c.version, c.offset, ext.wbufBytes, (result, buf, start) => {
      if (this.stopped) return;
      if (result === ReadResult.Ok) {
        this.sysevents()?.compactReadStart(c.pageId, c.offset);
        this.readback(c, buf, start);
        c.offset += ext.wbufBytes;
      } else if (result !== ReadResult.Busy) {
        // The page went away (evicted, emptied, lost to a fault): nothing left to rescue.
        this.compaction = null;
        this.sysevents()?.compactAbort(c.pageId);
      }
      this.scheduleCompaction(COMPACT_STEP_MS);
    });
  }

  private readonly readCounts: CompactReadCounts = { rescues: 0, rescuesRealloc: 0, lost: 0, skipped: 0 };

  /** memcached's storage_compact_readback: rewrite live records of one write buffer. */
  private readback(c: Compaction, buf: Buffer, start: number): void {
    const items = this.items;
    const ext = this.ext;
    const end = start + ext.wbufBytes;
    const now = items.clock.now;
    const r = this.readCounts;
    r.rescues = r.rescuesRealloc = r.lost = r.skipped = 0;
    let pos = start;
    while (pos + RECORD_HEADER_BYTES <= end) {
      const len = readU32LE(buf, pos);
      if (len === 0) break; // the zeroed tail of the buffer
      if (len < RECORD_HEADER_BYTES || pos + len > end) break;
      const nkey = readU32LE(buf, pos + 12);
      const ks = pos + RECORD_HEADER_BYTES;
      if (nkey > 0 && nkey <= 250) {
        const hash = hashKey(buf, ks, nkey);
        items.lockKey(hash);
        try {
          const ref = items.index.find(hash, buf, ks, nkey);
          const offset = c.offset + (pos - start);
          if (ref !== 0 && this.sameHeader(ref, c.pageId, c.version, offset)) {
            const exp = items.exptime(ref);
            if ((exp === 0 || exp > now) && !items.isFlushed(ref)) this.rescue(c, ref, buf, pos, len, r);
          }
        } finally {
          items.unlockKey(hash);
        }
      }
      pos += len;
    }
    const sc = this.counters;
    sc.extstore_compact_rescues += r.rescues;
    sc.extstore_compact_lost += r.lost;
    sc.extstore_compact_skipped += r.skipped;
    this.sysevents()?.compactReadEnd(c.pageId, pos - start, r);
  }

  private rescue(c: Compaction, ref: number, buf: Buffer, pos: number, len: number, r: CompactReadCounts): void {
    const items = this.items;
    const ext = this.ext;
    // A referenced header keeps its memory as it is: it gets a new header item (below), and
    // unlinking it deletes its old record then.
    const realloc = items.debugReferenced(ref);
    if (!realloc) ext.delete(c.pageId, c.version, 1, len);
    let bucket = c.toOld ? BUCKET_OLD : BUCKET_COMPACT;
    if (items.segment(ref) === COLD_LRU) {
      if (c.toColdcompact) {
        bucket = BUCKET_COLDCOMPACT;
      } else if (c.dropUnread) {
        r.skipped++;
        return;
      }
    }
    const fresh = realloc ? this.allocHeaderFor(ref) : 0;
    if (realloc && fresh === 0) {
      r.lost++;
      return;
    }
    if (!ext.writeRequest(bucket, len)) {
      if (fresh !== 0) items.free(fresh);
      r.lost++;
      return;
    }
    const slot = ext.slot;
    buf.copy(slot.buf, slot.bufOffset, pos, pos + len);
    ext.writeCommit(len);
    if (fresh !== 0) {
      // memcached's realloc rescue: the new header takes the old one's place (CAS and the
      // flags a move keeps).
      items.setDiskPointer(fresh, slot.pageId, slot.version, slot.offset, len, items.diskCrc(ref));
      items.replaceKeepingCas(ref, fresh);
      r.rescuesRealloc++;
    } else {
      items.moveDiskPointer(ref, slot.pageId, slot.version, slot.offset);
    }
    r.rescues++;
    if (bucket === BUCKET_COLDCOMPACT) this.counters.extstore_compact_resc_cold++;
    else if (bucket === BUCKET_OLD) this.counters.extstore_compact_resc_old++;
  }
}
