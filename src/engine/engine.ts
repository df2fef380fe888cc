/**
 * Engine: memcached's command semantics over the item store, shared by the text, meta and
 * binary protocols. It knows what add/replace/append/cas/incr/touch/flush mean and which
 * counters each one moves; it knows nothing about wire formats.
 *
 * Keys arrive as (buffer, start, length) slices of a connection's read buffer; values are
 * copied straight into slab memory; nothing here allocates per request.
 */
import {
  FetchStatus, LOG_DELETIONS, LOG_EVICTIONS, LOG_FETCHERS, LOG_MUTATIONS, uriEncodeKey, WatchLogger,
  type StoreCommand, type StoreStatus,
} from '../metrics/logger';
import type { ServerStats } from '../metrics/stats';
import type { Settings } from '../settings';
import { Clock } from '../store/clock';
import { hashKey } from '../store/hash';
import { AllocError, IF_FETCHED, IF_STALE, IF_TOKEN_SENT, Items } from '../store/items';
import { GLOBAL_POOL, SlabAllocator } from '../store/slabs';
import { ReassignResult, SlabMover } from '../store/mover';
import { SharedMemory } from '../store/shared';
import { Crawler, forEachItem } from '../store/crawler';
import { SlabAutomover } from '../store/automove';
import { PrefixStats } from './prefix-stats';
import { Storage } from './storage';

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
}

/** Items a connection's unsent replies still refer to (see TextSession.holdItem). */
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

/** Longest decimal number incr/decr will read from a value (memcached: INCR_MAX_STORAGE_LEN). */
const DELTA_VALUE_BYTES_MAX = 24;
const TWO_64 = 1n << 64n;
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

export class Engine {
  readonly clock: Clock;
  readonly slabs: SlabAllocator;
  readonly items: Items;
  readonly stats: ServerStats;
  readonly settings: Settings;
  /** Result of the last incrDecr (the new value) and its CAS. */
  deltaValue = 0n;
  /** CAS of the item last stored, for replies that report it. */
  lastCas = 0;
  /** The item an incrDecr left in place (meta ma reports its TTL and CAS). */
  lastRef = 0;
  /** The last incrDecr stored a copy (the new value did not fit, or a reply held the item). */
  lastDeltaCopied = false;
  /** Size of the value an append/prepend stored by the last commitStore (-1: none). */
  lastMergedBytes = -1;
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
  /** meta E<cas> of the store in progress (-1: none). */
  private casIdIn = -1;
  private maintainer: NodeJS.Timeout | null = null;

  constructor(settings: Settings, stats: ServerStats, clock = new Clock()) {
    this.log = (level, message) => {
      if (settings.verbose >= level) process.stderr.write(message.endsWith('\n') ? message : message + '\n');
    };
    this.settings = settings;
    this.stats = stats;
    this.clock = clock;
    const mem = SharedMemory.create();
    this.slabs = new SlabAllocator({
      memoryLimitBytes: settings.memoryLimitBytes,
      pageBytes: settings.slabPageBytes,
      chunkSizeBytes: settings.chunkSizeBytes,
      growthFactor: settings.growthFactor,
      slabChunkMaxBytes: settings.slabChunkMaxBytes,
      initialMallocBytes: initialMallocBytes(),
    }, mem);
    this.items = new Items(this.slabs, clock, {
      casEnabled: settings.casEnabled,
      itemSizeMaxBytes: settings.itemSizeMaxBytes,
      evictToFree: settings.evictToFree,
      lruSegmented: settings.lruSegmented,
      hotLruPct: settings.hotLruPct,
      warmLruPct: settings.warmLruPct,
      hotMaxFactor: settings.hotMaxFactor,
      warmMaxFactor: settings.warmMaxFactor,
      tempLru: settings.tempLru,
      temporaryTtlSeconds: settings.temporaryTtlSeconds,
      hashPowerInit: settings.hashPowerInit,
    }, mem);
    // memcached 1.6.45 starts its CAS counter at 1 and pre-increments: the first item gets 2.
    this.items.startCasAt(FIRST_CAS);
    this.mover = new SlabMover(this.items, () => settings.slabReassign, () => settings.slabAutomove);
    this.automover = this.newAutomover();
    this.crawler = new Crawler(this.items, settings.lruCrawler, settings.lruCrawlerSleepMicros,
      settings.lruCrawlerToCrawl);
    this.detail = new PrefixStats(settings.prefixDelimiter.charCodeAt(0));
    this.detail.enabled = settings.detailEnabled;
    this.logger = new WatchLogger(settings.watcherLogbufBytes);
    const onEvict = (ref: number): void => this.logEviction(ref);
    this.logger.onStreamsChanged = (flags) => {
      this.items.onEvict = (flags & LOG_EVICTIONS) !== 0 ? onEvict : null;
    };
    this.storage = settings.extPaths.length > 0
      ? new Storage(this.items, this.mover, settings, (level, message) => this.log(level, message))
      : null;
  }

  /** Connections in `watch` mode (memcached's log_watchers). */
  get watchers(): number {
    return this.logger.watcherCount;
  }

  /** `stats reset`: the store's counters (the server's are reset by ServerStats). */
  resetStats(): void {
    for (const arr of Object.values(this.items.counters)) (arr as Float64Array).fill(0);
    this.items.lruHits.fill(0);
    this.detail.clear();
    this.logger.resetCounters();
    this.storage?.counters.reset();
  }

  /** Visit every live item (stats sizes, dumps). */
  walkItems(visit: (ref: number, cls: number) => void, classes: Uint8Array | null = null): void {
    forEachItem(this.items, classes, visit);
  }

  /** Start the clock and the LRU maintainer. */
  start(): void {
    this.clock.start();
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

  /** `slabs automove window <n>`: the automover averages over n samples from now on. */
  setAutomoveWindow(samples: number): void {
    // movePages() starts a new window when it sees the setting change.
    this.settings.slabAutomoveWindowSamples = samples;
  }

  /** One pass of the LRU maintainer over every class (bounded work). */
  maintain(): void {
    // The clock has its own timer (Clock.start): the maintainer reads it as it is.
    this.maintainerJuggles++;
    for (let cls = 1; cls <= this.slabs.largestClass; cls++) this.items.juggle(cls, 500);
    this.storage?.maintain();
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

  // ---------------------------------------------------------------- retrieval

  /**
   * memcached's do_item_get: find a live item (expired or flushed ones are unlinked on the
   * way and counted in get_expired / get_flushed, whatever the command), logged for `watch
   * fetchers`.
   */
  private lookup(key: Uint8Array, start: number, len: number, hash: number): number {
    const items = this.items;
    const ref = items.find(key, start, len, hash);
    if ((this.logger.flags & LOG_FETCHERS) !== 0) this.logFetch(ref, key, start, len);
    if (ref === 0) {
      if (items.lastMissFlushed) this.stats.get_flushed++;
      else if (items.lastMissExpired) this.stats.get_expired++;
    }
    return ref;
  }

  /** Find a live item for a read (get/gets), counting and bumping as memcached does. */
  get(key: Uint8Array, start: number, len: number): number {
    const items = this.items;
    const ref = this.lookup(key, start, len, hashKey(key, start, len));
    this.stats.cmd_get++;
    if (ref === 0) {
      this.stats.get_misses++;
      return 0;
    }
    this.stats.get_hits++;
    const cls = items.classOf(ref);
    items.counters.get_hits[cls]++;
    items.lruHits[(cls << 2) | items.segment(ref)]++;
    items.bump(ref);
    return ref;
  }

  /** Look up without counting hits or bumping (meta commands count and bump themselves). */
  peek(key: Uint8Array, start: number, len: number): number {
    return this.lookup(key, start, len, hashKey(key, start, len));
  }

  /** gat/gats: fetch and set a new exptime (memcached 1.6 counts these as touches only). */
  getAndTouch(key: Uint8Array, start: number, len: number, exptime: number): number {
    return this.touchItem(key, start, len, exptime);
  }

  touch(key: Uint8Array, start: number, len: number, exptime: number): boolean {
    return this.touchItem(key, start, len, exptime) !== 0;
  }

  private touchItem(key: Uint8Array, start: number, len: number, exptime: number): number {
    const items = this.items;
    const ref = this.lookup(key, start, len, hashKey(key, start, len));
    this.stats.cmd_touch++;
    if (ref === 0) {
      this.stats.touch_misses++;
      return 0;
    }
    this.stats.touch_hits++;
    items.counters.touch_hits[items.classOf(ref)]++;
    items.setExptime(ref, exptime);
    items.bump(ref);
    return ref;
  }


  // ---------------------------------------------------------------- storage

  /**
   * Allocate the item a storage command will fill. Returns 0 on failure with
   * `items.allocError` saying why; for `set`, a failure also removes the old value (memcached
   * does this so a failed set never leaves stale data).
   */
  allocForStore(mode: StoreMode, key: Uint8Array, start: number, len: number,
    flags: number, exptime: number, nbytes: number): number {
    const items = this.items;
    items.allocError = AllocError.None;
    const ref = items.alloc(key, start, len, flags, exptime, nbytes);
    if (ref !== 0) return ref;
    const tooLarge = (items.allocError as AllocError) === AllocError.TooLarge;
    if (tooLarge) this.stats.store_too_large++;
    else this.stats.store_no_memory++;
    if ((this.logger.flags & LOG_MUTATIONS) !== 0) {
      this.logger.itemStore(tooLarge ? 'too_large' : 'no_memory', STORE_COMMANDS[mode], uriEncodeKey(key, start, len), 0, 0, 0);
    }
    if (mode === StoreMode.Set) {
      const hash = hashKey(key, start, len);
      const old = this.lookup(key, start, len, hash);
      if (old !== 0) items.unlink(old, hash);
    }
    return 0;
  }

  /** Abandon an allocated item (bad data chunk, connection closed mid-value). */
  abortStore(ref: number): void {
    this.items.free(ref);
  }

  /**
   * Complete a storage command whose item is fully written, as memcached's do_store_item.
   * `casIn` is the CAS the client supplied (0 = none). `setStale` (meta ms I) lets a CAS
   * lower than the item's replace it, marked stale. `casIdIn` (meta E) is the CAS the
   * stored item gets (-1: the next one). Frees `ref` unless it was linked.
   */
  commitStore(mode: StoreMode, ref: number, casIn: number, setStale = false, casIdIn = -1): StoreResult {
    this.casIdIn = casIdIn;
    this.lastMergedBytes = -1;
    if ((this.logger.flags & LOG_MUTATIONS) === 0) return this.storeItem(mode, ref, casIn, setStale);
    // memcached's line names the item linked, else the one refused: freed by then, so read first.
    const items = this.items;
    const keyText = uriEncodeKey(items.page(ref), items.keyOffset(ref), items.nkey(ref));
    let cls = items.classOf(ref);
    let nbytes = items.nbytes(ref);
    let exptime = items.exptime(ref);
    const result = this.storeItem(mode, ref, casIn, setStale);
    if (result === StoreResult.Stored) {
      const linked = this.storedRef;
      cls = items.classOf(linked);
      nbytes = items.nbytes(linked);
      exptime = items.exptime(linked);
    }
    const ttl = exptime === 0 ? 0 : exptime - this.clock.now;
    this.logger.itemStore(STORE_STATUSES[result], STORE_COMMANDS[mode], keyText, ttl, cls, nbytes);
    return result;
  }

  private storeItem(mode: StoreMode, ref: number, casIn: number, setStale: boolean): StoreResult {
    const items = this.items;
    const page = items.page(ref);
    const ko = items.keyOffset(ref);
    const nkey = items.nkey(ref);
    const hash = hashKey(page, ko, nkey);
    const old = this.lookup(page, ko, nkey, hash);
    this.stats.cmd_set++;
    items.counters.cmd_set[items.classOf(ref)]++;
    this.lastCas = 0;
    if (old === 0) return this.storeNew(mode, ref, hash);

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
          return this.linkStored(ref, hash, old);
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
        return this.concat(mode, ref, hash, old);
      default:
        return this.linkStored(ref, hash, old);
    }
    items.free(ref);
    return StoreResult.NotStored;
  }

  private storeNew(mode: StoreMode, ref: number, hash: number): StoreResult {
    switch (mode) {
      case StoreMode.Add:
      case StoreMode.Set:
      case StoreMode.AppendVivify:
      case StoreMode.PrependVivify:
        return this.linkStored(ref, hash, 0);
      case StoreMode.Cas:
        this.stats.cas_misses++;
        this.items.free(ref);
        return StoreResult.NotFound;
      default:
        this.items.free(ref);
        return StoreResult.NotStored;
    }
  }

  private linkStored(ref: number, hash: number, old: number): StoreResult {
    this.items.link(ref, hash, old);
    if (this.casIdIn >= 0) this.items.setCas(ref, this.casIdIn);
    this.storedRef = ref;
    this.lastCas = this.items.cas(ref);
    return StoreResult.Stored;
  }

  /** append/prepend: a new item holding both values, with the old item's flags and exptime. */
  private concat(mode: StoreMode, ref: number, hash: number, old: number): StoreResult {
    const items = this.items;
    const oldBytes = items.nbytes(old);
    const addBytes = items.nbytes(ref);
    items.pinned = old;
    items.allocError = AllocError.None;
    const page = items.page(ref);
    const merged = items.alloc(page, items.keyOffset(ref), items.nkey(ref), items.flags(old), items.exptime(old),
      oldBytes + addBytes);
    items.pinned = 0;
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
    this.lastMergedBytes = oldBytes + addBytes;
    return this.linkStored(merged, hash, old);
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

  delete(key: Uint8Array, start: number, len: number, casIn = 0): DeleteResult {
    const items = this.items;
    const hash = hashKey(key, start, len);
    const ref = this.lookup(key, start, len, hash);
    if (ref === 0) {
      this.stats.delete_misses++;
      return DeleteResult.NotFound;
    }
    if (casIn !== 0 && items.cas(ref) !== casIn) return DeleteResult.Exists;
    this.stats.delete_hits++;
    items.counters.delete_hits[items.classOf(ref)]++;
    if ((this.logger.flags & LOG_DELETIONS) !== 0) this.logDeletion('delete', ref);
    items.unlink(ref, hash);
    return DeleteResult.Deleted;
  }

  /**
   * incr/decr by `delta` (64-bit unsigned). On Ok, `deltaValue` holds the new value and
   * `lastCas` the item's CAS. memcached rewrites the value in place when the new digits fit,
   * padding with spaces; otherwise it stores a new item.
   */
  incrDecr(key: Uint8Array, start: number, len: number, incr: boolean, delta: bigint, casIn = 0,
    held: HeldItems | null = null, countMiss = true): DeltaResult {
    const items = this.items;
    const hash = hashKey(key, start, len);
    const ref = this.lookup(key, start, len, hash);
    this.lastDeltaCopied = false;
    if (ref === 0) {
      // meta ma with N creates the item instead, and memcached counts no miss then.
      if (countMiss && incr) this.stats.incr_misses++;
      else if (countMiss) this.stats.decr_misses++;
      return DeltaResult.NotFound;
    }
    const n = items.nbytes(ref);
    if (n === 0 || items.isChunked(ref) || items.isHdr(ref)) return DeltaResult.NonNumeric;
    if (casIn !== 0 && items.cas(ref) !== casIn) return DeltaResult.CasMismatch;
    const value = this.parseStoredNumber(ref, n);
    if (value < 0n) return DeltaResult.NonNumeric;
    const cls = items.classOf(ref);
    let next: bigint;
    if (incr) {
      next = (value + delta) % TWO_64;
      this.stats.incr_hits++;
      items.counters.incr_hits[cls]++;
    } else {
      next = delta > value ? 0n : value - delta;
      this.stats.decr_hits++;
      items.counters.decr_hits[cls]++;
    }
    this.deltaValue = next;
    const digits = next.toString();
    // memcached rewrites in place only when nothing else references the item; an unsent reply
    // does (`held`), and then it stores a copy, which starts without the item's flags.
    if (digits.length <= n && (held === null || !held.isHeld(ref, items.cas(ref)))) {
      const s = this.scratch;
      s.fill(0x20, 0, n);
      s.write(digits, 0, 'latin1');
      items.writeValue(ref, 0, s, 0, n);
      items.setCas(ref, this.settings.casEnabled ? items.nextCas() : 0);
      this.lastCas = items.cas(ref);
      this.lastRef = ref;
      return DeltaResult.Ok;
    }
    items.pinned = ref;
    items.allocError = AllocError.None;
    const fresh = items.alloc(key, start, len, items.flags(ref), items.exptime(ref), digits.length);
    items.pinned = 0;
    if (fresh === 0) return DeltaResult.NoMemory;
    this.scratch.write(digits, 0, 'latin1');
    items.writeValue(fresh, 0, this.scratch, 0, digits.length);
    // As in memcached, the new item starts unfetched (mg h answers h0 after such an incr).
    items.link(fresh, hash, ref);
    this.lastCas = items.cas(fresh);
    this.lastRef = fresh;
    this.lastDeltaCopied = true;
    return DeltaResult.Ok;
  }

  /**
   * The value as memcached's safe_strtoull reads it: optional leading spaces, decimal digits,
   * then end or whitespace. Returns -1n when it is not a number.
   */
  private parseStoredNumber(ref: number, n: number): bigint {
    const len = Math.min(n, DELTA_VALUE_BYTES_MAX + 8);
    const s = this.scratch;
    this.items.copyValueRange(ref, 0, len, s, 0);
    return parseUnsigned64(s, 0, len, true);
  }

  // ---------------------------------------------------------------- meta protocol support

  /** Count a meta get as memcached does: as a touch when it set a TTL, else as a get. */
  countMetaFetch(ref: number, ttlSet: boolean): void {
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
    if (ref === 0) {
      this.stats.get_misses++;
      return;
    }
    const cls = items.classOf(ref);
    this.stats.get_hits++;
    items.counters.get_hits[cls]++;
    items.lruHits[(cls << 2) | items.segment(ref)]++;
  }

  /**
   * mg N: create an empty placeholder item after a miss, with CAS `casIdIn` (meta E) or the
   * next one. Returns 0 if memory is short.
   */
  vivify(key: Uint8Array, start: number, len: number, keyBinary: boolean, casIdIn = -1): number {
    const items = this.items;
    items.allocError = AllocError.None;
    const ref = items.alloc(key, start, len, 0, 0, 0);
    if (ref === 0) return 0;
    if (keyBinary) items.setKeyBinary(ref);
    items.link(ref, hashKey(key, start, len), 0);
    if (casIdIn >= 0) items.setCas(ref, casIdIn);
    return ref;
  }

  /** ma N: store the initial value after a miss, as an add. Returns 0 if not stored. */
  createNumber(key: Uint8Array, start: number, len: number, digits: string, keyBinary: boolean, casIdIn = -1): number {
    const items = this.items;
    items.allocError = AllocError.None;
    const ref = items.alloc(key, start, len, 0, 0, digits.length);
    if (ref === 0) return 0;
    if (keyBinary) items.setKeyBinary(ref);
    this.scratch.write(digits, 0, 'latin1');
    items.writeValue(ref, 0, this.scratch, 0, digits.length);
    const hash = hashKey(key, start, len);
    if (this.lookup(key, start, len, hash) !== 0) {
      items.free(ref);
      return 0;
    }
    items.link(ref, hash, 0);
    if (casIdIn >= 0) items.setCas(ref, casIdIn);
    return ref;
  }

  /**
   * md I: keep the item but mark it stale with a new CAS (`casIdIn`, meta E, or the next
   * one), so the next reader may win.
   */
  invalidate(ref: number, exptime: number | null, casIdIn = -1): void {
    const items = this.items;
    if (exptime !== null) items.setExptime(ref, exptime);
    items.setIflags(ref, (items.iflags(ref) | IF_STALE) & ~IF_TOKEN_SENT);
    items.setCas(ref, casIdIn >= 0 ? casIdIn : this.settings.casEnabled ? items.nextCas() : 0);
  }

  /**
   * md x: replace a found item by one with an empty value, `flags`, `exptime` and CAS `cas`.
   * Returns the new item, or -1 when memory is short.
   */
  replaceWithEmpty(old: number, flags: number, exptime: number, cas: number): number {
    const items = this.items;
    items.allocError = AllocError.None;
    items.pinned = old;
    const ref = items.alloc(items.page(old), items.keyOffset(old), items.nkey(old), flags, exptime, 0);
    items.pinned = 0;
    if (ref === 0) return -1;
    if (items.keyBinary(old)) items.setKeyBinary(ref);
    items.link(ref, items.hashOf(old), old);
    items.setCas(ref, cas);
    return ref;
  }

  /** md: count a found item as deleted and (unless `unlink` is false) remove it. */
  deleteFound(ref: number, unlink = true): void {
    const items = this.items;
    this.stats.delete_hits++;
    items.counters.delete_hits[items.classOf(ref)]++;
    if ((this.logger.flags & LOG_DELETIONS) !== 0) this.logDeletion('md', ref);
    if (unlink) items.unlink(ref, items.hashOf(ref));
  }

  // ---------------------------------------------------------------- watch streams

  /** `watch fetchers`: memcached logs every lookup (do_item_get), stores and deletes included. */
  private logFetch(ref: number, key: Uint8Array, start: number, len: number): void {
    const items = this.items;
    if (ref !== 0) {
      this.logger.itemGet(FetchStatus.Found, key, start, len, items.classOf(ref), items.nbytes(ref));
      return;
    }
    const status = items.lastMissFlushed ? FetchStatus.Flushed : items.lastMissExpired ? FetchStatus.Expired : FetchStatus.NotFound;
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
    forEachItem(items, null, (ref) => {
      if (items.atime(ref) >= oldest) items.unlink(ref, items.hashOf(ref));
    });
  }
}

function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/**
 * Parse an unsigned 64-bit decimal as memcached's safe_strtoull: leading whitespace allowed,
 * digits, then the end of the range or (when `trailingSpaceOk`) whitespace. A leading '-' is
 * refused. Returns -1n if invalid or above 2^64-1.
 */
export function parseUnsigned64(b: Uint8Array, start: number, end: number, trailingSpaceOk: boolean): bigint {
  let i = start;
  while (i < end && isSpace(b[i])) i++;
  if (i < end && b[i] === 0x2b) i++;
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
  if (i < end && !(trailingSpaceOk && isSpace(b[i]))) return -1n;
  return v;
}
