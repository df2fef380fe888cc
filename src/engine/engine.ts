/**
 * Engine: memcached's command semantics over the item store, shared by the text, meta and
 * binary protocols. It knows what add/replace/append/cas/incr/touch/flush mean and which
 * counters each one moves; it knows nothing about wire formats.
 *
 * Keys arrive as (buffer, start, length) slices of a connection's read buffer; values are
 * copied straight into slab memory; nothing here allocates per request.
 */
import { decimalLength, useNativeCopy, writeDecimal } from '../bytes';
import { loadNative } from '../platform/native';
import {
  FetchStatus, LOG_DELETIONS, LOG_EVICTIONS, LOG_FETCHERS, LOG_MUTATIONS, uriEncodeKey, WatchLogger,
  type StoreCommand, type StoreStatus,
} from '../metrics/logger';
import type { ServerStats } from '../metrics/stats';
import type { Settings } from '../settings';
import { Clock } from '../store/clock';
import { hashKey } from '../store/hash';
import { COLD_LRU, FIND_EXPIRED, FIND_FLUSHED, IF_FETCHED, IF_STALE, IF_TOKEN_SENT, Items, KEY_BYTES_MAX as KEY_LENGTH_MAX, PREFETCH_KEYS_MAX as PREFETCH_KEYS_LIMIT } from '../store/items';
import { AllocFailure, Proto, type ItemSink, type ItemView, type ValueSource } from './item-view';
import { GLOBAL_POOL, SlabAllocator } from '../store/slabs';
import { ReassignResult, SlabMover } from '../store/mover';
import { SharedMemory, type MemoryBacking, type SharedMemoryList } from '../store/shared';
import { Crawler, forEachItem } from '../store/crawler';
import { SlabAutomover } from '../store/automove';
import { PrefixStats } from './prefix-stats';
import { Storage } from './storage';
import type { ExtstoreSnapshot, RecordStore } from '../extstore/extstore';
import { Tuning } from './tuning';
import { DebugRefs } from './debug-refs';

export const enum StoreMode {
  Set = 0,
  Add = 1,
  Replace = 2,
  Append = 3,
  Prepend = 4,
  Cas = 5,
  /** meta ms MA/MP with N: append/prepend, or store as new when the key is missing. */
  AppendVivify = 6,
  PrependVivify = 7,
}

export const enum StoreResult {
  Stored = 0,
  NotStored = 1,
  Exists = 2,
  NotFound = 3,
}

export const enum DeltaResult {
  Ok = 0,
  NotFound = 1,
  NonNumeric = 2,
  NoMemory = 3,
  CasMismatch = 4,
  /** ma N: the item appeared meanwhile, so the add of the initial value did not store. */
  NotStored = 5,
  /** ma N: no memory for the item holding the initial value. */
  CreateNoMemory = 6,
}

export const enum MetaDeleteResult {
  Deleted = 0,
  NotFound = 1,
  Exists = 2,
  /** md x: no memory for the emptied item. */
  NoMemory = 3,
}

/** memcached's MFLAG_MAX_OPT_LENGTH: flag tokens of a meta command. */
export const META_TOKENS_MAX = 20;
/** Key length limit (memcached's KEY_MAX_LENGTH). */
export const KEY_BYTES_MAX = KEY_LENGTH_MAX;
/** Most keys one prefetchKeys call touches. */
export const PREFETCH_KEYS_MAX = PREFETCH_KEYS_LIMIT;
/** Absent (a flag position, a CAS to give). */
const NONE = -1;

/**
 * The meta flags that change an item or decide what happens to it, parsed by the protocol
 * (src/protocol/text/meta.ts); one reused instance per session. Positions are the flag
 * token indexes (T, N and R act in request order, as memcached walks them).
 */
export class MetaRequest {
  /** T: new exptime (server-relative), at position touchAt (-1: absent). */
  touchAt = NONE;
  touchExptime = 0;
  /** N: autovivify with this exptime. */
  vivifyAt = NONE;
  vivifyExptime = 0;
  /** R: win the right to recache if the TTL is below recacheTime. */
  recacheAt = NONE;
  recacheTime = 0;
  /** u: no LRU bump. */
  noBump = false;
  /** Flags that make memcached lock the item (T, N, R, l, h): the bump comes after rendering. */
  locked = false;
  /** C: the CAS must match. */
  casCheck = false;
  casIn = 0;
  /** E: the CAS the item gets (-1: the next one). */
  casIdIn = NONE;
  /** md I, ms I: invalidate. */
  setStale = false;
  /** md x: keep the item with an empty value. */
  removeValue = false;
  /** F (md x). */
  clientFlags = 0;
  /** ma D and J. A parsed D below 2^53 is kept as a number in `deltaSmall` (no bigint made); -1: `delta` holds D. */
  delta = 1n;
  deltaSmall = -1;
  initial = 0n;

  reset(): void {
    this.touchAt = this.vivifyAt = this.recacheAt = this.casIdIn = NONE;
    this.touchExptime = this.vivifyExptime = this.recacheTime = this.casIn = this.clientFlags = 0;
    this.noBump = this.locked = this.casCheck = this.setStale = this.removeValue = false;
    this.delta = 1n;
    this.deltaSmall = -1;
    this.initial = 0n;
  }
}

/**
 * Items a connection's unsent replies still refer to (memcached holds a reference until it
 * transmits): an incr on such an item stores a copy. Keyed by what the view told the reply
 * (its CAS and handle), opaque to the protocol.
 */
export interface HeldItems {
  isHeld(ref: number, cas: number): boolean;
}

const enum CasCheck {
  None = 0,
  Match = 1,
  BadVal = 2,
  Stale = 3,
}

export const enum DeleteResult {
  Deleted = 0,
  NotFound = 1,
  Exists = 2,
}

const TWO_64 = 1n << 64n;
const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);
const TWO_63 = 1n << 63n;
/** `watch mutations` names, indexed by StoreMode and by StoreResult. */
const STORE_COMMANDS: readonly StoreCommand[] = ['set', 'add', 'replace', 'append', 'prepend', 'cas', 'append', 'prepend'];
const STORE_STATUSES: readonly StoreStatus[] = ['stored', 'not_stored', 'exists', 'not_found'];

/** The CAS of the first item stored (memcached 1.6.45's get_cas_id). */
const FIRST_CAS = 2;
/** How often the background crawler sweeps every class for expired items. */
const CRAWL_PERIOD_SECONDS = 60;

/** memcached's test-suite hook: bytes counted as allocated at start (T_MEMD_INITIAL_MALLOC). */
function initialMallocBytes(): number {
  const v = Number(process.env.T_MEMD_INITIAL_MALLOC);
  return Number.isSafeInteger(v) && v > 0 ? v : 0;
}

export class Engine implements ValueSource {
  readonly clock: Clock;
  readonly slabs: SlabAllocator;
  readonly items: Items;
  readonly stats: ServerStats;
  readonly settings: Settings;
  readonly crawler: Crawler;
  readonly detail: PrefixStats;
  /** Moves slab pages between classes and the global pool (`slabs reassign`, the automover). */
  readonly mover: SlabMover;
  /** slab_automove=1 (and 2): pages follow the classes that evict young items. */
  private automover: SlabAutomover;
  private automoverWindow = 0;
  private automoveSampledAt = 0;
  /** The automover's last page went to the global pool: decide again without waiting a second. */
  private automoveAgain = false;
  /** Passes of the LRU maintainer (memcached's lru_maintainer_juggles). */
  maintainerJuggles = 0;
  /** The `watch` streams; its hooks below cost one bit test while nobody watches. */
  readonly logger: WatchLogger;
  /** The item a successful commitStore linked (append/prepend: the merged item). */
  private storedRef = 0;
  /** The extstore tier (memcached's storage.c glue), when -o ext_path is given. */
  readonly storage: Storage | null;
  /** Operator log (stderr, by verbosity); storage faults are logged through it. */
  log: (level: number, message: string) => void;
  private readonly scratch = Buffer.alloc(64);
  /** The CAS the store in progress takes (meta E<cas>, else the next one; see Items.storeCas). */
  private storeCasValue = -1;
  private maintainer: NodeJS.Timeout | null = null;

  /** The shared memory the store lives in: another thread attaches an Engine with `memoryList()`. */
  private readonly memory: SharedMemory;
  /** This engine attached to a store another thread created (a serving thread: no background work). */
  readonly attached: boolean;

  /**
   * A new store, or (`attach`: another engine's `memoryList()`) a serving view of an existing
   * one in this thread. An attached engine runs no background work (maintainer, crawler,
   * mover, extstore): the creating thread does that for every thread.
   */
  constructor(settings: Settings, stats: ServerStats, clock = new Clock(), attach: SharedMemoryList | null = null,
    backing: MemoryBacking | null = null, tierRestore: ExtstoreSnapshot | null = null, tierLink: RecordStore | null = null) {
    this.log = (level, message) => {
      if (settings.verbose >= level) process.stderr.write(message.endsWith('\n') ? message : message + '\n');
    };
    this.settings = settings;
    // Long copies into and out of the arena by the addon's memmove (src/bytes.ts), per thread.
    useNativeCopy(loadNative().addon);
    this.stats = stats;
    this.clock = clock;
    // -e: the memory file backs the store (src/store/memory-file.ts), maybe with a saved one.
    const mem = attach === null ? SharedMemory.create(backing) : SharedMemory.attach(attach);
    // One serving thread and nothing attached: the store's mutexes need no atomics.
    mem.oneThread = attach === null && stats.table.threads === 1;
    this.memory = mem;
    this.attached = attach !== null;
    this.slabs = new SlabAllocator({
      memoryLimitBytes: settings.memoryLimitBytes,
      pageBytes: settings.slabPageBytes,
      chunkSizeBytes: settings.chunkSizeBytes,
      growthFactor: settings.growthFactor,
      slabChunkMaxBytes: settings.slabChunkMaxBytes,
      initialMallocBytes: initialMallocBytes(),
    }, mem);
    // The store reads the live settings (runtime tuning changes them: src/engine/tuning.ts).
    this.items = new Items(this.slabs, clock, settings, mem, stats.thread, stats.table.threads);
    // memcached 1.6.45 starts its CAS counter at 1 and pre-increments: the first item gets 2.
    if (!mem.attaching) this.items.startCasAt(FIRST_CAS);
    // A restored store: -m as given now (the saved one may have had cache_memlimit applied).
    else if (!this.attached) this.slabs.setMemoryLimit(settings.memoryLimitBytes);
    else if (!mem.complete) throw new Error('shared memory: the attaching store asked for fewer buffers than were made');
    this.mover = new SlabMover(this.items, () => settings.slabReassign, () => settings.slabAutomove);
    this.automover = this.newAutomover();
    this.crawler = new Crawler(this.items, settings.lruCrawler, settings.lruCrawlerSleepMicros,
      settings.lruCrawlerToCrawl);
    this.detail = new PrefixStats(settings.prefixDelimiter.charCodeAt(0));
    this.detail.enabled = settings.detailEnabled;
    this.logger = new WatchLogger(settings.watcherLogbufBytes);
    // Several serving threads: another thread's watcher may ask for evictions at any moment,
    // so the hook stays and looks at the shared flags.
    const onEvict = (ref: number): void => {
      if ((this.logger.flags & LOG_EVICTIONS) !== 0) this.logEviction(ref);
    };
    this.logger.onStreamsChanged = (flags) => {
      this.items.onEvict = (flags & LOG_EVICTIONS) !== 0 || this.logger.isShared ? onEvict : null;
    };
    this.tuning = new Tuning(this);
    this.debugRefs = new DebugRefs(this.items, {
      lockKey: (hash) => this.lockKey(hash),
      unlockKey: (hash) => this.unlockKey(hash),
      lookup: (key, start, len, hash) => Math.max(0, this.items.find(key, start, len, hash)),
    });
    // Thread 0 owns extstore; another serving thread reads through its link (`tierLink`).
    if (settings.extPaths.length > 0 && this.attached && tierLink === null) throw new Error('extstore on a serving thread needs its link to the first thread');
    this.storage = settings.extPaths.length > 0
      ? new Storage(this.items, this.mover, settings, stats, (level, message) => this.log(level, message), this.logger,
        undefined, tierRestore ?? undefined, this.attached ? tierLink : null)
      : null;
  }

  /** What another thread attaches to this store with (structured-cloneable). */
  memoryList(): SharedMemoryList {
    return this.memory.list();
  }

  /** Runtime tuning: the one writer of settings while the server runs. */
  readonly tuning: Tuning;

  /** memcached-debug's `debugitem` references (only reachable with -o debug_commands). */
  readonly debugRefs: DebugRefs;

  /** Connections in `watch` mode (memcached's log_watchers). */
  get watchers(): number {
    return this.logger.watcherCount;
  }

  /** `stats reset`: the store's counters (the server's are reset by ServerStats). */
  resetStats(): void {
    this.items.resetCounters();
    this.detail.clear();
    this.logger.resetCounters();
    this.storage?.counters.reset();
  }

  /** Visit every live item (engine-side stats: stats sizes, mem_requested). */
  walkItems(visit: (ref: number, cls: number) => void, classes: Uint8Array | null = null): void {
    forEachItem(this.items, classes, visit);
  }

  /** Start the clock and the LRU maintainer. */
  start(): void {
    this.clock.start();
    if (this.attached) return;
    if (this.settings.lruMaintainerThread) {
      this.maintainer = setInterval(() => this.maintain(), 100);
      this.maintainer.unref();
    }
    this.crawler.startAuto(CRAWL_PERIOD_SECONDS);
    this.storage?.start();
  }

  stop(): void {
    this.clock.stop();
    if (this.maintainer) clearInterval(this.maintainer);
    this.maintainer = null;
    this.crawler.stop();
    this.storage?.stop();
    if (this.indexTask !== null) clearImmediate(this.indexTask);
    this.indexTask = null;
  }

  /** One pass of the LRU maintainer over every class (bounded work). */
  maintain(): void {
    // The clock has its own timer (Clock.start): the maintainer reads it as it is.
    this.maintainerJuggles++;
    for (let cls = 1; cls <= this.slabs.largestClass; cls++) this.items.juggle(cls, 500);
    this.movePages();
    if (this.indexTask === null && this.items.growIndex(this.settings.hashExpand)) this.scheduleIndexGrowth();
  }

  /** A hash index growth in progress moves its buckets in steps, between other work. */
  private indexTask: NodeJS.Immediate | null = null;
  private scheduleIndexGrowth(): void {
    this.indexTask = setImmediate(() => {
      this.indexTask = null;
      if (this.items.growIndex(false)) this.scheduleIndexGrowth();
    });
    this.indexTask.unref();
  }

  private newAutomover(): SlabAutomover {
    const settings = this.settings;
    this.automoverWindow = settings.slabAutomoveWindowSamples;
    return new SlabAutomover(this.items, this.automoverWindow, () => settings.slabAutomoveRatio);
  }

  /**
   * memcached's slab maintenance thread: work on a page move in progress, else let the
   * automover decide, once a second (at once again after a page went to the global pool).
   */
  private movePages(): void {
    const mover = this.mover;
    mover.step();
    const s = this.settings;
    if (mover.running || !s.slabReassign || s.slabAutomove === 0) return;
    if (this.clock.now === this.automoveSampledAt && !this.automoveAgain) return;
    this.automoveSampledAt = this.clock.now;
    this.automoveAgain = false;
    if (s.slabAutomoveWindowSamples !== this.automoverWindow) this.automover = this.newAutomover();
    const decision = this.automover.run();
    if (decision === null) return;
    const result = mover.reassign(decision.src, decision.dst, false);
    this.log(2, `slab automove: page from class ${decision.src} to ${decision.dst}: ${result === ReassignResult.Ok ? 'ok' : 'fail'}`);
    this.automoveAgain = decision.dst === GLOBAL_POOL && result === ReassignResult.Ok;
  }

  // ---------------------------------------------------------------- item access (one door)

  /**
   * Touch the hash buckets and items of keys about to be looked up (`buf[spans[2i],
   * spans[2i] + spans[2i + 1])` for i < n; at most PREFETCH_KEYS_MAX are taken), all at once,
   * so that the lookups that follow find them in the CPU's caches: the requests of one read
   * event at pipeline depth, or a multiget's keys. Changes nothing, takes no lock and
   * counts nothing (Items.prefetch).
   */
  prefetchKeys(buf: Uint8Array, spans: Int32Array, n: number): void {
    const hashes = this.prefetchHashes;
    const count = Math.min(n, PREFETCH_KEYS_MAX);
    for (let i = 0; i < count; i++) hashes[i] = hashKey(buf, spans[2 * i], spans[2 * i + 1]);
    this.items.prefetch(hashes, count);
  }
  private readonly prefetchHashes = new Int32Array(PREFETCH_KEYS_MAX);

  /** Lock the item lock stripe of `hash` (held for the whole of one operation on a key). */
  private lockKey(hash: number): void {
    this.items.lockKey(hash);
  }

  private unlockKey(hash: number): void {
    this.items.unlockKey(hash);
  }

  /** Fill `v` from item `ref` (the caller holds its lock), ready for a sink. */
  private describe(v: ItemView, ref: number): void {
    v.ref = ref;
    v.source = this;
    this.items.readHeader(ref, v);
    v.diskReadRefused = false;
    v.refusalUncounted = false;
  }

  /** ValueSource: the value of the item a view describes, during its sink call. */
  copyValue(v: ItemView, dst: Uint8Array, dstOffset: number, dstView: DataView<ArrayBufferLike> | null): number {
    return this.items.copyValue(v.ref, dst, dstOffset, dstView);
  }

  /**
   * Read the value of a view whose item lives in extstore (v.onDisk), during its sink call:
   * `done` runs once, at once when the record is still in a write buffer or cannot be read,
   * else when the disk read completes. `buf[valueStart, valueStart + v.nbytes)` is the value
   * while `done` runs. A failed read is a miss, counted, and the header item is dropped.
   */
  readDiskValue(v: ItemView, done: (hit: boolean, buf: Buffer, valueStart: number) => void): void {
    const storage = this.storage;
    if (storage === null) throw new Error('a value on disk without extstore');
    storage.fetch(v.ref, done);
  }

  /**
   * A value on disk (`v.onDisk`) into dst[dstAt, dstAt + v.nbytes) now, when it can be had
   * without waiting (a write buffer or the page cache); false when not, with nothing counted:
   * then readDiskValue.
   */
  readDiskValueNow(v: ItemView, dst: Buffer, dstAt: number): boolean {
    const storage = this.storage;
    if (storage === null) throw new Error('a value on disk without extstore');
    return storage.fetchNow(v.ref, dst, dstAt);
  }

  /**
   * Can a value on disk be read now, memory-wise? False (counted in get_oom_extstore) when
   * memcached would have no slab memory to read it into: see Storage.roomToRead.
   */
  roomToReadDiskValue(v: ItemView): boolean {
    const storage = this.storage;
    if (storage === null) throw new Error('a value on disk without extstore');
    return storage.roomToRead(v.ref);
  }

  /** A disk read finished after its reply was dropped (connection gone). */
  countAbortedDiskRead(): void {
    this.storage?.countAborted();
  }

  /**
   * memcached's do_item_get: find a live item (expired or flushed ones are unlinked on the
   * way and counted in get_expired / get_flushed, whatever the command), logged for `watch
   * fetchers`. The caller holds the key's lock.
   */
  private lookup(key: Uint8Array, start: number, len: number, hash: number): number {
    const found = this.items.find(key, start, len, hash);
    if ((this.logger.flags & LOG_FETCHERS) !== 0) this.logFetch(found, key, start, len);
    if (found > 0) return found;
    if (found === FIND_FLUSHED) this.stats.get_flushed++;
    else if (found === FIND_EXPIRED) this.stats.get_expired++;
    return 0;
  }

  /**
   * The item reference of a live key, without counting or bumping: for the engine's own
   * modules, background work and tests. Protocol code never holds references (it gets views).
   */
  peek(key: Uint8Array, start: number, len: number): number {
    const hash = hashKey(key, start, len);
    this.lockKey(hash);
    const ref = this.lookup(key, start, len, hash);
    this.unlockKey(hash);
    return ref;
  }

  /** A get hit on an item of class `cls` found in LRU segment `segment` (before a bump). */
  private countGetHit(cls: number, segment: number): void {
    this.stats.get_hits++;
    this.items.counters.get_hits[cls]++;
    this.items.lruHits[(cls << 2) | segment]++;
  }

  // ---------------------------------------------------------------- retrieval

  /**
   * get/gets (text), get/getk (binary): find a live item, count and bump it as memcached
   * does, and hand it to `sink` under its lock. False on a miss.
   */
  get(v: ItemView, key: Uint8Array, start: number, len: number, sink: ItemSink): boolean {
    const hash = hashKey(key, start, len);
    this.lockKey(hash);
    const ref = this.lookup(key, start, len, hash);
    if (ref === 0) {
      this.stats.cmd_get++;
      this.stats.get_misses++;
    } else {
      const items = this.items;
      // The hit counts in the LRU segment the item was found in (bump may move it).
      const segment = items.segment(ref);
      items.bump(ref);
      this.describe(v, ref);
      sink.item(v);
      if (!v.diskReadRefused) {
        this.stats.cmd_get++;
        this.countGetHit(v.cls, segment);
      } else if (!v.refusalUncounted) {
        // A value on disk with no memory to read it into: a miss for memcached's binary get;
        // its text get, which fails whole, counts nothing.
        this.stats.cmd_get++;
        this.stats.get_misses++;
      }
    }
    this.unlockKey(hash);
    return ref !== 0;
  }

  /** gat/gats, binary gat: fetch and set a new exptime (memcached counts these as touches). */
  getAndTouch(v: ItemView, key: Uint8Array, start: number, len: number, exptime: number, sink: ItemSink | null): boolean {
    const hash = hashKey(key, start, len);
    this.lockKey(hash);
    const ref = this.lookup(key, start, len, hash);
    const items = this.items;
    this.stats.cmd_touch++;
    if (ref === 0) {
      this.stats.touch_misses++;
    } else {
      this.stats.touch_hits++;
      items.counters.touch_hits[items.classOf(ref)]++;
      items.setExptime(ref, exptime);
      items.bump(ref);
      this.describe(v, ref);
      sink?.item(v);
    }
    this.unlockKey(hash);
    return ref !== 0;
  }

  /** touch: set a new exptime. */
  touch(v: ItemView, key: Uint8Array, start: number, len: number, exptime: number): boolean {
    return this.getAndTouch(v, key, start, len, exptime, null);
  }

  // ---------------------------------------------------------------- storage

  /**
   * Allocate the item a storage command will fill and return its handle, or 0 with
   * `v.failure` saying why. memcached counts the failure (store_too_large /
   * store_no_memory, text and meta only) and, for `set` (and every meta set), removes the
   * old value, so a failed set never leaves stale data.
   */
  allocForStore(v: ItemView, mode: StoreMode, key: Uint8Array, start: number, len: number,
    flags: number, exptime: number, nbytes: number): number {
    const items = this.items;
    v.failure = AllocFailure.None;
    const ref = nbytes < 0 ? 0 : items.alloc(key, start, len, flags, exptime, nbytes);
    if (ref !== 0) return ref;
    const tooLarge = nbytes < 0 || !items.sizeOk(len, nbytes, flags);
    v.failure = tooLarge ? AllocFailure.TooLarge : AllocFailure.NoMemory;
    if (v.proto !== Proto.Binary) {
      if (tooLarge) this.stats.store_too_large++;
      else this.stats.store_no_memory++;
    }
    if ((this.logger.flags & LOG_MUTATIONS) !== 0) {
      this.logger.itemStore(tooLarge ? 'too_large' : 'no_memory', STORE_COMMANDS[mode], uriEncodeKey(key, start, len), 0, 0, 0);
    }
    if (mode === StoreMode.Set || v.proto === Proto.Meta) {
      const hash = hashKey(key, start, len);
      this.lockKey(hash);
      const old = this.lookup(key, start, len, hash);
      if (old !== 0) items.unlink(old, hash);
      this.unlockKey(hash);
    }
    return 0;
  }

  /**
   * Write value bytes src[srcStart, srcEnd) at `offset` of the item being filled (`srcView`: a
   * DataView over src's bytes, for word copies).
   */
  writeValue(handle: number, offset: number, src: Uint8Array, srcStart: number, srcEnd: number, srcView: DataView<ArrayBufferLike> | null = null): void {
    this.items.writeValue(handle, offset, src, srcStart, srcEnd, srcView);
  }

  /** The key of the item being filled was given base64-encoded (meta ms b). */
  markKeyBinary(handle: number): void {
    this.items.setKeyBinary(handle);
  }

  /** Would a value of `nbytes` with an `nkey`-byte key (flags 0) fit one chunk? (binary SASL data) */
  fitsOneChunk(nkey: number, nbytes: number): boolean {
    const items = this.items;
    return items.sizeOk(nkey, nbytes, 0) && items.memcachedItemTotal(nkey, nbytes, 0) <= this.settings.slabChunkMaxBytes;
  }

  /** Abandon an item being filled (connection closed mid-value). */
  abortStore(handle: number): void {
    this.items.free(handle);
  }

  /** The value did not end with CRLF: memcached counts the set and stores nothing (no CAS is used up). */
  badDataChunk(handle: number): void {
    this.stats.cmd_set++;
    this.items.free(handle);
  }

  /**
   * Complete a storage command whose item is fully written, as memcached's do_store_item.
   * `casIn` is the CAS the client supplied (0 = none). `setStale` (meta ms I) lets a CAS
   * lower than the item's replace it, marked stale. `casIdIn` (meta E) is the CAS the
   * stored item gets (-1: the next one). On Stored, `v.cas` is the item's CAS and
   * `v.storedBytes` the merged size after append/prepend.
   */
  commitStore(v: ItemView, mode: StoreMode, handle: number, casIn: number, setStale = false, casIdIn = -1): StoreResult {
    const items = this.items;
    const hash = items.hashOf(handle);
    this.lockKey(hash);
    // memcached takes the CAS before it tries the store: a refused store uses one up too.
    this.storeCasValue = items.storeCas(casIdIn);
    v.storedBytes = -1;
    v.cas = 0;
    let result: StoreResult;
    if ((this.logger.flags & LOG_MUTATIONS) === 0) {
      result = this.storeItem(v, mode, handle, hash, casIn, setStale);
    } else {
      // memcached's line names the item linked, else the one refused: freed by then, so read first.
      const keyText = uriEncodeKey(items.page(handle), items.keyOffset(handle), items.nkey(handle));
      let cls = items.classOf(handle);
      let nbytes = items.nbytes(handle);
      let exptime = items.exptime(handle);
      result = this.storeItem(v, mode, handle, hash, casIn, setStale);
      if (result === StoreResult.Stored) {
        const linked = this.storedRef;
        cls = items.classOf(linked);
        nbytes = items.nbytes(linked);
        exptime = items.exptime(linked);
      }
      const ttl = exptime === 0 ? 0 : exptime - this.clock.now;
      this.logger.itemStore(STORE_STATUSES[result], STORE_COMMANDS[mode], keyText, ttl, cls, nbytes);
    }
    this.unlockKey(hash);
    return result;
  }

  private storeItem(v: ItemView, mode: StoreMode, ref: number, hash: number, casIn: number, setStale: boolean): StoreResult {
    const items = this.items;
    const page = items.page(ref);
    const ko = items.keyOffset(ref);
    const nkey = items.nkey(ref);
    const old = this.lookup(page, ko, nkey, hash);
    this.stats.cmd_set++;
    items.counters.cmd_set[items.classOf(ref)]++;
    if (old === 0) return this.storeNew(v, mode, ref, hash);

    const oldCas = items.cas(old);
    const cas = casIn === 0 ? CasCheck.None
      : casIn === oldCas ? CasCheck.Match
        : setStale && casIn < oldCas ? CasCheck.Stale : CasCheck.BadVal;
    switch (mode) {
      case StoreMode.Add:
        items.refreshTime(old);
        break;
      case StoreMode.Cas:
        if (cas === CasCheck.Match || cas === CasCheck.Stale) {
          this.stats.cas_hits++;
          items.counters.cas_hits[items.classOf(old)]++;
          if (cas === CasCheck.Stale) items.inheritStale(ref, old);
          return this.linkStored(v, ref, hash, old);
        }
        this.stats.cas_badval++;
        items.counters.cas_badval[items.classOf(old)]++;
        items.free(ref);
        return StoreResult.Exists;
      case StoreMode.Append:
      case StoreMode.Prepend:
      case StoreMode.AppendVivify:
      case StoreMode.PrependVivify:
        if (cas !== CasCheck.None && cas !== CasCheck.Match) {
          items.free(ref);
          return StoreResult.Exists;
        }
        // memcached refuses append/prepend to a value that lives in extstore.
        if (items.isHdr(old)) break;
        return this.concat(v, mode, ref, hash, old);
      default:
        return this.linkStored(v, ref, hash, old);
    }
    items.free(ref);
    return StoreResult.NotStored;
  }

  private storeNew(v: ItemView, mode: StoreMode, ref: number, hash: number): StoreResult {
    switch (mode) {
      case StoreMode.Add:
      case StoreMode.Set:
      case StoreMode.AppendVivify:
      case StoreMode.PrependVivify:
        return this.linkStored(v, ref, hash, 0);
      case StoreMode.Cas:
        this.stats.cas_misses++;
        this.items.free(ref);
        return StoreResult.NotFound;
      default:
        this.items.free(ref);
        return StoreResult.NotStored;
    }
  }

  private linkStored(v: ItemView, ref: number, hash: number, old: number): StoreResult {
    this.items.linkAs(ref, hash, old, this.storeCasValue);
    this.storedRef = ref;
    v.cas = this.items.cas(ref);
    return StoreResult.Stored;
  }

  /** append/prepend: a new item holding both values, with the old item's flags and exptime. */
  private concat(v: ItemView, mode: StoreMode, ref: number, hash: number, old: number): StoreResult {
    const items = this.items;
    const oldBytes = items.nbytes(old);
    const addBytes = items.nbytes(ref);
    const page = items.page(ref);
    const merged = items.alloc(page, items.keyOffset(ref), items.nkey(ref), items.flags(old), items.exptime(old),
      oldBytes + addBytes);
    if (merged === 0) {
      items.free(ref);
      return StoreResult.NotStored;
    }
    const append = mode === StoreMode.Append || mode === StoreMode.AppendVivify;
    const first = append ? old : ref;
    const second = append ? ref : old;
    this.copyItemValue(first, merged, 0);
    this.copyItemValue(second, merged, items.nbytes(first));
    items.free(ref);
    v.storedBytes = oldBytes + addBytes;
    return this.linkStored(v, merged, hash, old);
  }

  /** Copy one item's whole value into another's at an offset (through a bounded scratch). */
  private copyItemValue(from: number, to: number, at: number): void {
    const items = this.items;
    const n = items.nbytes(from);
    if (!items.isChunked(from)) {
      const o = items.valueOffset(from);
      items.writeValue(to, at, items.page(from), o, o + n);
      return;
    }
    const step = 64 * 1024;
    const tmp = Buffer.allocUnsafe(Math.min(step, n));
    for (let pos = 0; pos < n; pos += step) {
      const end = Math.min(n, pos + step);
      items.copyValueRange(from, pos, end, tmp, 0);
      items.writeValue(to, at + pos, tmp, 0, end - pos);
    }
  }

  // ---------------------------------------------------------------- delete, arithmetic

  delete(v: ItemView, key: Uint8Array, start: number, len: number, casIn = 0): DeleteResult {
    const items = this.items;
    const hash = hashKey(key, start, len);
    this.lockKey(hash);
    const ref = this.lookup(key, start, len, hash);
    let result = DeleteResult.Deleted;
    if (ref === 0) {
      this.stats.delete_misses++;
      result = DeleteResult.NotFound;
    } else if (casIn !== 0 && items.cas(ref) !== casIn) {
      result = DeleteResult.Exists;
    } else {
      this.stats.delete_hits++;
      items.counters.delete_hits[items.classOf(ref)]++;
      if ((this.logger.flags & LOG_DELETIONS) !== 0) this.logDeletion(v.proto === Proto.Meta ? 'md' : 'delete', ref);
      items.unlink(ref, hash);
    }
    this.unlockKey(hash);
    return result;
  }

  /**
   * incr/decr by `delta` (64-bit unsigned). On Ok, `v.delta` is the new value, `v.cas` the
   * CAS and `v.copied` whether a copy was stored. memcached rewrites the value in place when
   * the new digits fit, padding with spaces, unless an unsent reply still holds the item
   * (`held`); otherwise it stores a new item. A miss counts incr_misses/decr_misses unless
   * `createOnMiss` (the caller creates the item then, and memcached counts no miss).
   */
  incrDecr(v: ItemView, key: Uint8Array, start: number, len: number, incr: boolean, delta: bigint, casIn = 0,
    held: HeldItems | null = null, createOnMiss = false): DeltaResult {
    return this.incrDecrKeyed(v, key, start, len, incr, delta, -1, casIn, held, createOnMiss);
  }

  /**
   * incrDecr with a delta below 2^53 given as a number: when the stored value and the result
   * are below 2^53 too (almost every counter), nothing is allocated; the result is then in
   * `v.deltaSmall` (else -1, and `v.delta` holds it).
   */
  incrDecrSmall(v: ItemView, key: Uint8Array, start: number, len: number, incr: boolean, delta: number, casIn = 0,
    held: HeldItems | null = null, createOnMiss = false): DeltaResult {
    return this.incrDecrKeyed(v, key, start, len, incr, 0n, delta, casIn, held, createOnMiss);
  }

  private incrDecrKeyed(v: ItemView, key: Uint8Array, start: number, len: number, incr: boolean, delta: bigint,
    deltaSmall: number, casIn: number, held: HeldItems | null, createOnMiss: boolean): DeltaResult {
    const hash = hashKey(key, start, len);
    this.lockKey(hash);
    const result = this.incrDecrLocked(v, key, start, len, hash, incr, delta, deltaSmall, casIn, held, createOnMiss);
    this.unlockKey(hash);
    return result;
  }

  /** `deltaSmall` >= 0: the delta as a number (then `delta` is not read); else `delta`. */
  private incrDecrLocked(v: ItemView, key: Uint8Array, start: number, len: number, hash: number, incr: boolean,
    delta: bigint, deltaSmall: number, casIn: number, held: HeldItems | null, createOnMiss: boolean): DeltaResult {
    const items = this.items;
    const ref = this.lookup(key, start, len, hash);
    v.copied = false;
    v.ref = 0;
    v.deltaSmall = -1;
    if (ref === 0) {
      if (!createOnMiss && incr) this.stats.incr_misses++;
      else if (!createOnMiss) this.stats.decr_misses++;
      return DeltaResult.NotFound;
    }
    const n = items.nbytes(ref);
    if (n === 0 || items.isChunked(ref) || items.isHdr(ref)) return DeltaResult.NonNumeric;
    if (casIn !== 0 && items.cas(ref) !== casIn) return DeltaResult.CasMismatch;
    if (deltaSmall >= 0) {
      const stored = this.parseStoredSmall(ref, n);
      if (stored >= 0) {
        const next = incr ? stored + deltaSmall : (deltaSmall > stored ? 0 : stored - deltaSmall);
        if (next <= Number.MAX_SAFE_INTEGER) {
          this.countDelta(incr, items.classOf(ref));
          v.deltaSmall = next;
          return this.storeDigits(v, key, start, len, hash, ref, n, next, null, held);
        }
      }
      // A value of 16 digits or more, a sign, or a result past 2^53: the exact path.
      delta = BigInt(deltaSmall);
    }
    const value = this.parseStoredNumber(ref, n);
    if (value < 0n) return DeltaResult.NonNumeric;
    this.countDelta(incr, items.classOf(ref));
    const next = incr ? (value + delta) % TWO_64 : delta > value ? 0n : value - delta;
    v.delta = next;
    return this.storeDigits(v, key, start, len, hash, ref, n, 0, next.toString(), held);
  }

  private countDelta(incr: boolean, cls: number): void {
    if (incr) {
      this.stats.incr_hits++;
      this.items.counters.incr_hits[cls]++;
    } else {
      this.stats.decr_hits++;
      this.items.counters.decr_hits[cls]++;
    }
  }

  /**
   * Store the new value of an incr/decr: `digits`, or (null) the decimal digits of `small`.
   * memcached rewrites the value in place when the digits fit, padded with spaces to the old
   * length (which may be far above 24 bytes: "5" and 100 spaces is a number), unless a reply
   * not yet sent holds the item; otherwise it stores a copy.
   */
  private storeDigits(v: ItemView, key: Uint8Array, start: number, len: number, hash: number, ref: number, n: number,
    small: number, digits: string | null, held: HeldItems | null): DeltaResult {
    const items = this.items;
    const count = digits === null ? decimalLength(small) : digits.length;
    if (count <= n && (held === null || !held.isHeld(ref, items.cas(ref)))) {
      // The value is one chunk (checked by the caller).
      const page = items.page(ref);
      const o = items.valueOffset(ref);
      if (digits === null) writeDecimal(page, o, small, count);
      else page.write(digits, o, 'latin1');
      page.fill(0x20, o + count, o + n);
      items.setCas(ref, this.settings.casEnabled ? items.nextCas() : 0);
      this.describe(v, ref);
      return DeltaResult.Ok;
    }
    const fresh = items.alloc(key, start, len, items.flags(ref), items.exptime(ref), count);
    if (fresh === 0) return DeltaResult.NoMemory;
    if (digits === null) writeDecimal(this.scratch, 0, small, count);
    else this.scratch.write(digits, 0, 'latin1');
    items.writeValue(fresh, 0, this.scratch, 0, count);
    // As in memcached, the new item starts unfetched (mg h answers h0 after such an incr).
    // memcached's reply describes the item do_add_delta handed back: the old one.
    this.describe(v, ref);
    items.link(fresh, hash, ref);
    v.cas = items.cas(fresh);
    v.ref = fresh;
    v.copied = true;
    return DeltaResult.Ok;
  }

  /**
   * The stored value as a number when parseStoredNumber would read it as one below 10^15
   * (optional leading whitespace, 1 to 15 digits, then the end, whitespace or NUL); -1 for
   * anything else (longer, signed, not a number), which the exact path then decides.
   */
  private parseStoredSmall(ref: number, n: number): number {
    const b = this.items.page(ref);
    let i = this.items.valueOffset(ref);
    const end = i + n;
    while (i < end && isSpace(b[i])) i++;
    const first = i;
    let v = 0;
    while (i < end && b[i] >= 0x30 && b[i] <= 0x39) {
      if (i - first === 15) return -1;
      v = v * 10 + (b[i] - 0x30);
      i++;
    }
    if (i === first) return -1;
    if (i < end && !(b[i] === 0 || isSpace(b[i]))) return -1;
    return v;
  }

  /**
   * The value as memcached's safe_strtoull reads it (see parseUnsigned64), over the whole
   * value as strtoull scans it: leading whitespace or zeros may run past 24 bytes. The item
   * is one chunk in memory (the caller refused chunked and header items).
   */
  private parseStoredNumber(ref: number, n: number): bigint {
    const o = this.items.valueOffset(ref);
    return parseUnsigned64(this.items.page(ref), o, o + n, true);
  }

  /**
   * Store a number after a miss, as an add (binary incr with an initial value, meta ma N):
   * with exptime `exptime` and CAS `casIdIn` (meta E, -1: the next one). False when not
   * stored (v.failure says whether memory was short).
   */
  createNumber(v: ItemView, key: Uint8Array, start: number, len: number, value: bigint, exptime: number,
    casIdIn = -1): boolean {
    const items = this.items;
    const digits = value.toString();
    v.failure = AllocFailure.None;
    const ref = items.alloc(key, start, len, 0, exptime, digits.length);
    if (ref === 0) {
      v.failure = items.sizeOk(len, digits.length, 0) ? AllocFailure.NoMemory : AllocFailure.TooLarge;
      return false;
    }
    this.scratch.write(digits, 0, 'latin1');
    items.writeValue(ref, 0, this.scratch, 0, digits.length);
    const hash = hashKey(key, start, len);
    this.lockKey(hash);
    let stored = false;
    // An add: its CAS is taken before the try, as memcached's store_item call.
    const cas = items.storeCas(casIdIn);
    if (this.lookup(key, start, len, hash) !== 0) {
      items.free(ref);
    } else {
      items.linkAs(ref, hash, 0, cas);
      this.describe(v, ref);
      v.delta = value;
      stored = true;
    }
    this.unlockKey(hash);
    return stored;
  }

  // ---------------------------------------------------------------- meta protocol

  /**
   * mg: memcached's meta get semantics. `req` holds the flags that change the item (T, N, R,
   * E, u, and whether any needs the item locked); they apply in request order. The sink gets
   * the item (`v.won`, `v.created` set) before the delayed bump of a locked fetch, as
   * memcached renders before it. A miss without N returns false; with N the placeholder item
   * is created (and false is returned only if memory is short). A hit is counted as a touch
   * when T was given, else as a get; a miss always as a get miss (as memcached).
   */
  metaGet(v: ItemView, key: Uint8Array, start: number, len: number, req: MetaRequest, sink: ItemSink): boolean {
    const items = this.items;
    const hash = hashKey(key, start, len);
    this.lockKey(hash);
    let ref = this.lookup(key, start, len, hash);
    // Without flags that need the item locked, memcached bumps it while fetching it.
    if (ref !== 0 && !req.locked && !req.noBump) items.bump(ref);
    v.created = false;
    v.won = false;
    if (ref === 0 && req.vivifyAt >= 0) {
      // memcached does not mark an item autovivified by mg as having a binary key (only ms
      // does), so later k flags print its raw key.
      ref = items.alloc(key, start, len, 0, 0, 0);
      if (ref !== 0) {
        items.linkAs(ref, hash, 0, items.storeCas(req.casIdIn));
        v.created = true;
      }
    }
    if (ref === 0) {
      // memcached notes T (ttl_set) only while walking the flags of a hit: a miss is
      // counted as a get miss, T or not.
      this.countMetaFetch(0, false);
      this.unlockKey(hash);
      return false;
    }
    this.describe(v, ref);
    const initialExptime = v.exptime;
    // T, N and R in request order, as memcached walks the flags.
    let exptime = initialExptime;
    let won = false;
    for (let pos = 0; pos < META_TOKENS_MAX; pos++) {
      if (pos === req.touchAt) exptime = req.touchExptime;
      else if (pos === req.vivifyAt && v.created) {
        exptime = req.vivifyExptime;
        won = true;
      } else if (pos === req.recacheAt) {
        if (!v.tokenSent && !v.created && exptime !== 0 && exptime < req.recacheTime) won = true;
      }
    }
    if (exptime !== initialExptime) items.setExptime(ref, exptime);
    if (v.stale && !v.tokenSent) won = true;
    if (won) items.setIflags(ref, items.iflags(ref) | IF_TOKEN_SENT);
    v.won = won;
    sink.item(v);
    // The delayed bump of a locked fetch, after the flags saw the item as it was.
    if (req.locked && !req.noBump) items.bump(ref);
    this.countMetaFetch(v.diskReadRefused ? 0 : ref, req.touchAt >= 0);
    this.unlockKey(hash);
    return true;
  }

  /** Count a meta get as memcached does: as a touch when it set a TTL, else as a get. */
  private countMetaFetch(ref: number, ttlSet: boolean): void {
    const items = this.items;
    if (ttlSet) {
      this.stats.cmd_touch++;
      if (ref !== 0) {
        this.stats.touch_hits++;
        items.counters.touch_hits[items.classOf(ref)]++;
      } else {
        this.stats.touch_misses++;
      }
      return;
    }
    this.stats.cmd_get++;
    if (ref === 0) this.stats.get_misses++;
    else this.countGetHit(items.classOf(ref), items.segment(ref));
  }

  /**
   * md: delete, or with `req.setStale` (I) invalidate, or with `req.removeValue` (x) keep the
   * item with an empty value, flags `req.clientFlags` and exptime `req.touchExptime`.
   * `req.casCheck` (C) must match. Returns what memcached answers.
   */
  metaDelete(v: ItemView, key: Uint8Array, start: number, len: number, req: MetaRequest): MetaDeleteResult {
    const items = this.items;
    const hash = hashKey(key, start, len);
    this.lockKey(hash);
    let ref = this.lookup(key, start, len, hash);
    let result = MetaDeleteResult.Deleted;
    if (ref === 0) {
      this.stats.delete_misses++;
      result = MetaDeleteResult.NotFound;
    } else if (req.casCheck && items.cas(ref) !== req.casIn) {
      this.stats.delete_misses++;
      result = MetaDeleteResult.Exists;
    } else {
      if (req.removeValue) {
        const cas = req.casIdIn >= 0 ? req.casIdIn : items.cas(ref);
        const emptied = items.alloc(items.page(ref), items.keyOffset(ref), items.nkey(ref), req.clientFlags,
          req.touchExptime, 0);
        if (emptied === 0) {
          result = MetaDeleteResult.NoMemory;
        } else {
          if (items.keyBinary(ref)) items.setKeyBinary(emptied);
          items.link(emptied, hash, ref);
          items.setCas(emptied, cas);
          ref = emptied;
        }
      }
      if (result === MetaDeleteResult.Deleted) {
        if (req.setStale) {
          // md I: keep the item but mark it stale with a new CAS, so the next reader may win.
          if (req.touchAt >= 0) items.setExptime(ref, req.touchExptime);
          items.setIflags(ref, (items.iflags(ref) | IF_STALE) & ~IF_TOKEN_SENT);
          items.setCas(ref, req.casIdIn >= 0 ? req.casIdIn : this.settings.casEnabled ? items.nextCas() : 0);
        } else {
          this.stats.delete_hits++;
          items.counters.delete_hits[items.classOf(ref)]++;
          if ((this.logger.flags & LOG_DELETIONS) !== 0) this.logDeletion('md', ref);
          if (!req.removeValue) items.unlink(ref, hash);
        }
      }
    }
    this.unlockKey(hash);
    return result;
  }

  /**
   * ma: incr/decr, or with N (`req.vivifyAt`) create the item from `req.initial` when it is
   * missing. After Ok, `v` describes the item memcached's reply reads (after a copy, the old
   * one, whose exptime the reply's t shows), `v.delta` the value and `v.cas` the CAS. T and
   * E change the stored item unless a copy was made (memcached changes the old one then).
   */
  metaArithmetic(v: ItemView, key: Uint8Array, start: number, len: number, incr: boolean, req: MetaRequest,
    held: HeldItems | null): DeltaResult {
    const items = this.items;
    const hash = hashKey(key, start, len);
    this.lockKey(hash);
    v.created = false;
    // Comparing and converting a bigint allocates nothing; the number path then makes no bigint.
    const small = req.deltaSmall >= 0 ? req.deltaSmall : req.delta <= MAX_SAFE_BIG ? Number(req.delta) : -1;
    let result = this.incrDecrLocked(v, key, start, len, hash, incr, req.delta, small,
      req.casCheck ? req.casIn : 0, held, req.vivifyAt >= 0);
    if (result === DeltaResult.Ok) {
      if (req.casIdIn >= 0) {
        v.cas = req.casIdIn;
        if (!v.copied) items.setCas(v.ref, req.casIdIn);
      }
      if (req.touchAt >= 0 && !v.copied) items.setExptime(v.ref, req.touchExptime);
    }
    this.unlockKey(hash);
    if (result === DeltaResult.NotFound && req.vivifyAt >= 0) {
      // The item starts without a TTL; T and N then set it in request order.
      if (this.createNumber(v, key, start, len, req.initial, 0, req.casIdIn)) {
        v.created = true;
        const exptime = req.touchAt > req.vivifyAt ? req.touchExptime : req.vivifyExptime;
        this.lockKey(hash);
        if (items.isLinked(v.ref) && items.cas(v.ref) === v.cas) items.setExptime(v.ref, exptime);
        this.unlockKey(hash);
        result = DeltaResult.Ok;
      } else {
        result = v.failure === AllocFailure.None ? DeltaResult.NotStored : DeltaResult.CreateNoMemory;
      }
    }
    return result;
  }

  /** me: the item's metadata for memcached's debug line. Counted as a meta command. */
  metaDebug(v: ItemView, key: Uint8Array, start: number, len: number, sink: ItemSink): boolean {
    const hash = hashKey(key, start, len);
    this.lockKey(hash);
    const ref = this.lookup(key, start, len, hash);
    this.stats.cmd_meta++;
    if (ref !== 0) {
      this.describe(v, ref);
      sink.item(v);
    }
    this.unlockKey(hash);
    return ref !== 0;
  }

  // ---------------------------------------------------------------- administration

  /**
   * `stats cachedump <class> <limit>`: items from the head of the class's COLD list (the
   * list's lock held while walking, as memcached). `visit` returns false to stop.
   */
  dumpColdList(v: ItemView, cls: number, visit: (v: ItemView) => boolean): void {
    if (cls < 1 || cls > this.slabs.largestClass) return;
    const items = this.items;
    const id = (cls << 2) | COLD_LRU;
    items.lruLocks.lock(id);
    for (let ref = items.lruHead[id]; ref !== 0; ref = items.next(ref)) {
      this.describe(v, ref);
      if (!visit(v)) break;
    }
    items.lruLocks.unlock(id);
  }

  /**
   * `lru_crawler metadump` / `mgdump`: every live item of the classes (null: all), each under
   * its lock, in one pass over slab memory.
   */
  dumpLiveItems(v: ItemView, classes: Uint8Array | null, visit: (v: ItemView) => void): void {
    const items = this.items;
    this.clock.tick();
    forEachItem(items, classes, (ref) => {
      const hash = items.hashOf(ref);
      this.lockKey(hash);
      if (items.isLinked(ref) && !items.isDead(ref)) {
        this.describe(v, ref);
        visit(v);
      }
      this.unlockKey(hash);
    });
  }

  /** Is the background LRU crawler enabled (`lru_crawler enable`)? */
  get crawlerEnabled(): boolean {
    return this.crawler.enabled;
  }

  /** `lru_crawler crawl`: start reclaiming expired items of the classes (null: all). False if one runs. */
  crawl(classes: Uint8Array | null): boolean {
    return this.crawler.crawl(classes);
  }

  /** `slabs reassign <src> <dst>` (manual moves may evict). */
  reassignPage(src: number, dst: number): ReassignResult {
    return this.mover.reassign(src, dst, true);
  }

  /** `stats reset`: every counter memcached resets. */
  resetAllStats(): void {
    this.stats.reset();
    this.resetStats();
  }

  // ---------------------------------------------------------------- watch streams

  /** `watch fetchers`: memcached logs every lookup (do_item_get), stores and deletes included. */
  private logFetch(found: number, key: Uint8Array, start: number, len: number): void {
    const items = this.items;
    if (found > 0) {
      this.logger.itemGet(FetchStatus.Found, key, start, len, items.classOf(found), items.nbytes(found));
      return;
    }
    const status = found === FIND_FLUSHED ? FetchStatus.Flushed : found === FIND_EXPIRED ? FetchStatus.Expired : FetchStatus.NotFound;
    this.logger.itemGet(status, key, start, len, 0, 0);
  }

  private logDeletion(cmd: 'delete' | 'md', ref: number): void {
    const items = this.items;
    this.logger.deletion(cmd, items.page(ref), items.keyOffset(ref), items.nkey(ref), items.classOf(ref), items.nbytes(ref));
  }

  /** Items.onEvict while someone watches evictions. */
  private logEviction(ref: number): void {
    const items = this.items;
    const now = this.clock.now;
    const exptime = items.exptime(ref);
    this.logger.eviction(items.page(ref), items.keyOffset(ref), items.nkey(ref), (items.iflags(ref) & IF_FETCHED) !== 0,
      exptime !== 0 ? exptime - now : -1, now - items.atime(ref), items.classOf(ref), items.nbytes(ref));
  }

  // ---------------------------------------------------------------- flush

  /**
   * flush_all with a delay in client exptime units (0 or less = now), as memcached 1.6.45:
   * items last used at or before oldest_live (the flush time minus one second) are flushed
   * lazily, and item_flush_expired removes at once those used since, so an item stored after
   * the flush survives even in the same second. No CAS is involved (1.6.18 compared CAS
   * values, and without CAS flushed items stored in the same second after it).
   */
  flushAll(delay: number): void {
    const items = this.items;
    const now = this.clock.now;
    const oldest = (delay > 0 ? this.clock.realtime(delay) : now) - 1;
    items.setFlushState(oldest, 0);
    if (oldest > now) return;
    // Other threads use the items meanwhile: each is unlinked under its item lock, once it is
    // sure to be the same linked item.
    forEachItem(items, null, (ref) => {
      if (items.atime(ref) < oldest) return;
      const hash = items.hashOf(ref);
      this.lockKey(hash);
      if (items.isLinkedWithHash(ref, hash) && items.atime(ref) >= oldest) items.unlink(ref, hash);
      this.unlockKey(hash);
    });
  }
}

function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/**
 * Parse an unsigned 64-bit decimal as memcached's safe_strtoull (strtoull, then its checks):
 * leading whitespace allowed, an optional sign, digits, then the end of the range or (when
 * `trailingSpaceOk`, for a stored value, which is a C string there) whitespace or a NUL
 * byte. A magnitude above 2^64-1 is refused (ERANGE). A '-' makes strtoull negate modulo
 * 2^64, and safe_strtoull refuses the result only when it is negative as a signed 64-bit
 * number: "-5" is refused, "-0" reads as 0 and "-18446744073709551615" as 1, as in
 * memcached. Returns -1n if invalid.
 */
export function parseUnsigned64(b: Uint8Array, start: number, end: number, trailingSpaceOk: boolean): bigint {
  let i = start;
  while (i < end && isSpace(b[i])) i++;
  const negative = i < end && b[i] === 0x2d;
  if (i < end && (b[i] === 0x2b || negative)) i++;
  const digitsStart = i;
  let small = 0;
  while (i < end && b[i] >= 0x30 && b[i] <= 0x39 && i - digitsStart < 15) {
    small = small * 10 + (b[i] - 0x30);
    i++;
  }
  let v = BigInt(small);
  while (i < end && b[i] >= 0x30 && b[i] <= 0x39) {
    v = v * 10n + BigInt(b[i] - 0x30);
    i++;
    if (v >= TWO_64) return -1n;
  }
  if (i === digitsStart) return -1n;
  if (i < end && !(trailingSpaceOk && (isSpace(b[i]) || b[i] === 0))) return -1n;
  if (!negative) return v;
  const negated = (TWO_64 - v) % TWO_64;
  return negated >= TWO_63 ? -1n : negated;
}
