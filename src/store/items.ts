/**
 * Items: the cached entries, laid out in slab chunks, indexed by the hash table, kept in a
 * segmented LRU per chunk class (HOT / WARM / COLD / TEMP) as memcached 1.6 does.
 *
 * Goals: no JavaScript object per item; one copy to serve a hit; eviction and expiry with
 * memcached's counters. Non-goals: protocol replies (src/protocol/), command semantics such
 * as add/replace/cas rules (src/engine/).
 *
 * Item layout, version 2 (little-endian 32-bit words from the chunk start):
 *
 *   word  byte
 *   ┌────┬──────────────────────────────────────────────────────────────────────┐
 *   │ 0  │  0: kind|iflags   1: lru segment + bits   2: class id   3: key length │
 *   │ 1  │  4: LRU prev (ref)                                                   │
 *   │ 2  │  8: LRU next (ref)                                                   │
 *   │ 3  │ 12: next item in the hash chain (ref, see src/store/hash.ts)         │
 *   │ 4  │ 16: exptime (server-relative seconds, 0 = never)                     │
 *   │ 5  │ 20: time of last access (server-relative seconds)                    │
 *   │ 6  │ 24: CAS low 32 bits                                                  │
 *   │ 7  │ 28: CAS high 32 bits                                                 │
 *   │ 8  │ 32: value length in bytes (no trailing CRLF is stored)               │
 *   │ 9  │ 36: client flags, only when the CFLAGS bit is set (as memcached)     │
 *   │    │ 36 or 40: key bytes, then the value bytes                            │
 *   └────┴──────────────────────────────────────────────────────────────────────┘
 *
 * Byte 1 of word 0: bits 8-9 the LRU segment, then CFLAGS_BIT (client flags stored),
 * HDR_BIT (a header item: the value lives in extstore) and KEY_BINARY_BIT.
 *
 * Byte 2 of word 0 is the item's class as memcached's slabs_clsid: the LRU it lives in and
 * the class its counters belong to. For an ordinary item that is also the class of its chunk.
 *
 * A value that does not fit the largest chunk class is "chunked", as memcached's large items:
 * the item lives in the LRU of the largest class (so evicting there frees the chunks a large
 * value needs), while its header chunk comes from the small class that fits
 * headerChunkBytes(nkey, chunks). After the key (rounded up to 4 bytes) comes a table of
 * data-chunk references; each data chunk is [kind=DATA|its own class][owner ref][payload...],
 * of the largest class except the last, which takes the class that fits what is left (or the
 * largest when that class has nothing to give). The CRLF after a value is written by the
 * protocol.
 *
 * A "header" item (HDR bit set, see src/engine/storage.ts) keeps only the key and metadata in
 * memory; its value lives in extstore. Word 8 still holds the value's length; after the key
 * (rounded up to 4 bytes) comes a pointer of HDR_POINTER_BYTES:
 *
 *   +0 page id   +4 page version   +8 offset in page   +12 record bytes   +16 record CRC-32
 */
import { copyBulk, copyPlain, copySmall, copyWords } from '../bytes';
import { Clock } from './clock';
import type { Mutexes } from './locks';
import { FRESH, type SharedMemory } from './shared';
import { HashIndex, hashKey, hashPowerFor } from './hash';
import {
  KIND_DATA, KIND_ITEM, MEMCACHED_ITEM_HEADER_BYTES, SlabAllocator, byteOf, wordOf,
} from './slabs';

/** The header fields Items.readHeader fills (the engine's ItemView has them). */
export interface ItemHeaderFields {
  flags: number;
  cas: number;
  nbytes: number;
  exptime: number;
  lastAccess: number;
  fetched: boolean;
  stale: boolean;
  tokenSent: boolean;
  keyBinary: boolean;
  cls: number;
  onDisk: boolean;
  keyBuf: Uint8Array;
  keyStart: number;
  keyLen: number;
  memcachedSize: number;
}

/** Bytes before the key (without client flags; 4 more with them). */
export const ITEM_HEADER_BYTES = 36;
const CLIENT_FLAGS_BYTES = 4;
export const KEY_BYTES_MAX = 250;
/** Most keys one Items.prefetch call touches (the largest -o prefetch_keys). */
export const PREFETCH_KEYS_MAX = 64;
/**
 * A cache line in 32-bit words. Items.prefetch touches an item's first word and the words one
 * and two lines after it: chunks are 8-byte aligned, not line aligned, so a 100-byte value's
 * 152-byte chunk has its key cross into a second line in 6 of its 8 possible positions, and
 * the key compare and the value copy then missed again after the prefetch.
 */
const PREFETCH_LINE_WORDS = 16;
const DATA_CHUNK_HEADER_BYTES = 8;
/**
 * memcached's sizeof(item_chunk) on 64-bit. Data chunks are sized as memcached sizes them
 * (each holds a chunk minus this, the last one takes the class that fits what is left plus
 * this and the value's CRLF), so large values spread over classes exactly as in memcached
 * and page balancing behaves the same; the bytes past our 8-byte chunk header are unused.
 */
const MEMCACHED_CHUNK_HEADER_BYTES = 48;
const MEMCACHED_VALUE_CRLF_BYTES = 2;

// byte 0 of word 0: bits 0-1 kind, the rest item flags
export const IF_LINKED = 0x04;
export const IF_ACTIVE = 0x08;
export const IF_FETCHED = 0x10;
export const IF_CHUNKED = 0x20;
/** Meta protocol: a recache/win token was handed out for this item. */
export const IF_TOKEN_SENT = 0x40;
/** Meta protocol: item was invalidated (stale). */
export const IF_STALE = 0x80;
/**
 * What a value keeps of its item flags when it moves to or from extstore: it is the same
 * value, so mg's h, X and W answer as before the move (memcached's header item keeps them).
 */
export const IF_MOVE_KEPT = IF_FETCHED | IF_STALE | IF_TOKEN_SENT;

/** Bit 15 of word 0 (byte 1, above the 2-bit segment): the key is binary. */
const KEY_BINARY_BIT = 0x8000;
/** Bit 14 of word 0: a header item; the value lives in extstore (memcached's ITEM_HDR). */
export const HDR_BIT = 0x4000;
/** Bit 13 of word 0: word 9 holds client flags (memcached's ITEM_CFLAGS); without it they are 0. */
const CFLAGS_BIT = 0x2000;
/** Size of the extstore pointer a header item holds instead of its value. */
export const HDR_POINTER_BYTES = 20;

export const HOT_LRU = 0;
export const WARM_LRU = 1;
export const COLD_LRU = 2;
export const TEMP_LRU = 3;
export const LRU_NAMES = ['hot', 'warm', 'cold', 'temp'];

/** Item lock stripes: 2^13, fewer when the hash table starts smaller (see hash.ts). */
const ITEM_LOCK_POWER = 13;

/** Items examined from a tail per pull (memcached: 5). */
const PULL_TRIES = 5;
/** memcached bumps an item's access time on fetch at most this often, in seconds. */
export const ITEM_UPDATE_INTERVAL_SECONDS = 60;

/**
 * The flash tier as the item store sees it (implemented by src/engine/storage.ts). The store
 * calls it when a COLD item is about to be evicted and when a header item goes away; it never
 * knows about pages or files.
 */
export interface ColdTier {
  /**
   * The COLD tail item `ref` of class `cls` is about to be evicted to make room: write its
   * value out and replace it with a header item. True when that happened (its memory is free).
   */
  flushForEviction(ref: number, cls: number): boolean;
  /** Header item `ref` is leaving the cache (deleted, replaced, expired, evicted). */
  released(ref: number): void;
  /** Does header item `ref` still point at data on disk? */
  valid(ref: number): boolean;
  /** Copy header item `ref`'s value into dst now (for readers that cannot wait). */
  readValueSync(ref: number, dst: Uint8Array, dstOffset: number): number;
}

/** What the item store tells the page mover (src/store/mover.ts). */
export interface PageMover {
  /** memcached's slab_automove=2: `cls` just evicted; move a page to it from any class. */
  evicted(cls: number): void;
}

/** What find() answers for a miss: not there, or there but expired or flushed (unlinked now). */
export const FIND_MISS = 0;
export const FIND_EXPIRED = -1;
export const FIND_FLUSHED = -2;

/** The settings the item store reads (live: src/engine/tuning.ts changes them at runtime). */
export interface ItemOptions {
  readonly casEnabled: boolean;
  readonly itemSizeMaxBytes: number;
  readonly evictToFree: boolean;
  readonly lruSegmented: boolean;
  readonly hotLruPct: number;
  readonly warmLruPct: number;
  readonly hotMaxFactor: number;
  readonly warmMaxFactor: number;
  readonly tempLru: boolean;
  readonly temporaryTtlSeconds: number;
  readonly hashPowerInit: number;
}

/**
 * Per-class counters for `stats items` and `stats slabs`, in shared Float64Arrays (no objects):
 * one row of `n` classes per serving thread (memcached's per-thread slab stats), so a thread
 * adds to its own row without a lock; readers sum the rows. evicted_time is a gauge (the age
 * of the last item evicted), one row for all.
 */
function classCounters(n: number, rows: number, mem: SharedMemory): ClassCounterTables {
  return counterRecord((k) => mem.float64(k === 'evicted_time' ? n : n * rows, FRESH));
}

/** Thread `thread`'s row of each table (evicted_time: the one row). */
function counterRow(tables: ClassCounterTables, n: number, thread: number): ClassCounterTables {
  return counterRecord((k) => k === 'evicted_time' ? tables[k] : tables[k].subarray(thread * n, thread * n + n));
}

/**
 * One table per counter, as an object literal that names every field. Built by assigning the
 * 25 names in a loop instead, the object went over V8's limit for properties added by keyed
 * stores and became a dictionary, so each `counters.get_hits[cls]++` of the request path was
 * a hash lookup through the generic load stub (test/architecture/fast-objects.test.ts).
 */
function counterRecord(make: (name: ClassCounterName) => Float64Array): ClassCounterTables {
  return {
    evicted: make('evicted'), evicted_nonzero: make('evicted_nonzero'), evicted_time: make('evicted_time'),
    evicted_unfetched: make('evicted_unfetched'), evicted_active: make('evicted_active'),
    outofmemory: make('outofmemory'), tailrepairs: make('tailrepairs'), reclaimed: make('reclaimed'),
    expired_unfetched: make('expired_unfetched'), crawler_reclaimed: make('crawler_reclaimed'),
    crawler_items_checked: make('crawler_items_checked'), lrutail_reflocked: make('lrutail_reflocked'),
    moves_to_cold: make('moves_to_cold'), moves_to_warm: make('moves_to_warm'),
    moves_within_lru: make('moves_within_lru'), direct_reclaims: make('direct_reclaims'),
    get_hits: make('get_hits'), cmd_set: make('cmd_set'), delete_hits: make('delete_hits'),
    incr_hits: make('incr_hits'), decr_hits: make('decr_hits'), cas_hits: make('cas_hits'),
    cas_badval: make('cas_badval'), touch_hits: make('touch_hits'), total_items: make('total_items'),
  };
}
export const CLASS_COUNTER_NAMES = [
  'evicted', 'evicted_nonzero', 'evicted_time', 'evicted_unfetched', 'evicted_active', 'outofmemory',
  'tailrepairs', 'reclaimed', 'expired_unfetched', 'crawler_reclaimed', 'crawler_items_checked',
  'lrutail_reflocked', 'moves_to_cold', 'moves_to_warm', 'moves_within_lru', 'direct_reclaims',
  'get_hits', 'cmd_set', 'delete_hits', 'incr_hits', 'decr_hits', 'cas_hits', 'cas_badval', 'touch_hits',
  'total_items',
] as const;
export type ClassCounterName = (typeof CLASS_COUNTER_NAMES)[number];
export type ClassCounterTables = { [K in ClassCounterName]: Float64Array };

export class Items {
  readonly slabs: SlabAllocator;
  readonly index: HashIndex;
  readonly clock: Clock;
  readonly opts: ItemOptions;
  /** This thread's row of the per-class counters (add to these; read totals with classTotal). */
  readonly counters: ClassCounterTables;
  /** Every thread's rows. */
  private readonly counterTables: ClassCounterTables;
  /** Serving threads with a row of counters. */
  private readonly rows: number;
  /** Classes per row (largestClass + 1); LRU rows are 4 times as wide. */
  private readonly classesPerRow: number;
  /** Fetch hits per (class, segment), every thread's rows. */
  private readonly lruHitTables: Float64Array;

  // LRU lists, indexed by (class << 2) | segment
  readonly lruHead: Uint32Array;
  readonly lruTail: Uint32Array;
  readonly lruCount: Float64Array;
  readonly lruBytes: Float64Array;
  /** Fetch hits per (class, segment), this thread's row: memcached's hits_to_hot/warm/cold/temp (read lruHitsTotal). */
  readonly lruHits: Float64Array;
  /** Bytes of the items in each LRU as `stats` counts them (itemBytes). */
  private readonly lruItemTotal: Float64Array;
  /** One mutex per LRU list (memcached's lru_locks). */
  readonly lruLocks: Mutexes;
  /** Item locks, striped by the key's hash (memcached's item_locks). */
  readonly itemLocks: Mutexes;
  /** Item lock stripe of a hash: its low bits, no more than the hash table's (see hash.ts). */
  readonly stripeMask: number;
  /**
   * The last CAS handed out, shared: every thread takes the next one under casLock (a
   * float64, exact to 2^53; a 64-bit Atomics.add made a bigint per store).
   */
  private readonly casCounter: Float64Array;
  private readonly casLock: Mutexes;
  /** oldest_live and oldest_cas (flush_all), shared. */
  private readonly flushState: Float64Array;
  /** An item being written to extstore while its header item is allocated: never evicted. */
  flushPinned = 0;
  /** The flash tier, when extstore is configured. */
  coldTier: ColdTier | null = null;
  /** Set while the cold tier allocates a header item: evictions then never write to disk. */
  coldTierBusy = false;

  /** Largest value that fits one chunk for a key of length 0. */
  private readonly singleChunkBytesMax: number;
  private readonly dataChunkPayloadBytes: number;

  /**
   * `thread`: the thread this view of the store counts for (its row of the counters), of
   * `rows` (every thread that counts: the stats table's rows, src/cli/threads.ts threadRows).
   */
  constructor(slabs: SlabAllocator, clock: Clock, opts: ItemOptions, mem: SharedMemory, thread = 0, rows = 1) {
    this.slabs = slabs;
    this.clock = clock;
    this.opts = opts;
    const n = (slabs.largestClass + 1) * 4;
    this.lruHead = mem.uint32(n);
    this.lruTail = mem.uint32(n);
    this.lruCount = mem.float64(n);
    this.lruBytes = mem.float64(n);
    this.rows = Math.max(1, rows);
    if (!(thread >= 0 && thread < this.rows)) throw new Error(`counter row ${thread} of ${this.rows}`);
    // Statistics restart at zero (-e), as memcached's do.
    this.lruHitTables = mem.float64(n * this.rows, FRESH);
    this.lruHits = this.lruHitTables.subarray(thread * n, thread * n + n);
    this.lruItemTotal = mem.float64(n);
    this.lruLocks = mem.mutexes(n);
    const stripes = 2 ** Math.min(ITEM_LOCK_POWER, opts.hashPowerInit);
    this.stripeMask = stripes - 1;
    this.itemLocks = mem.mutexes(stripes);
    this.casCounter = mem.float64(1);
    this.casLock = mem.mutexes(1);
    this.flushState = mem.float64(2);
    this.classesPerRow = slabs.largestClass + 1;
    this.counterTables = classCounters(this.classesPerRow, this.rows, mem);
    this.counters = counterRow(this.counterTables, this.classesPerRow, thread);
    // Room for as many items as the arena's smallest chunks could ever hold.
    this.index = new HashIndex(opts.hashPowerInit, hashPowerFor(slabs.arenaPages * slabs.perPage[1]), this, mem);
    this.singleChunkBytesMax = slabs.classSize[slabs.largestClass];
    this.dataChunkPayloadBytes = this.singleChunkBytesMax - MEMCACHED_CHUNK_HEADER_BYTES;
  }

  // ---------------------------------------------------------------- field access

  /** The arena segment holding `ref`, as bytes; offsets below (off, keyOffset, ...) index it. */
  page(ref: number): Buffer {
    return this.slabs.segU8[ref >>> 27];
  }
  /** The arena segment holding `ref`, as 32-bit words; w(ref) indexes it. */
  u32(ref: number): Uint32Array {
    return this.slabs.segU32[ref >>> 27];
  }
  /** The arena segment holding `ref`, as a DataView (word copies of values: src/bytes.ts). */
  view(ref: number): DataView<ArrayBufferLike> {
    return this.slabs.segView[ref >>> 27];
  }
  /** Word index of the item within its segment's Uint32Array. */
  w(ref: number): number {
    return wordOf(ref);
  }
  /** Byte offset of the item within its segment. */
  off(ref: number): number {
    return byteOf(ref);
  }

  iflags(ref: number): number {
    return this.u32(ref)[this.w(ref)] & 0xff;
  }
  setIflags(ref: number, f: number): void {
    const u = this.u32(ref);
    const w = this.w(ref);
    u[w] = (u[w] & 0xffffff00) | f;
  }
  segment(ref: number): number {
    return (this.u32(ref)[this.w(ref)] >>> 8) & 3;
  }
  /** The key was given base64-encoded (meta `b`) and is binary. */
  keyBinary(ref: number): boolean {
    return (this.u32(ref)[this.w(ref)] & KEY_BINARY_BIT) !== 0;
  }
  setKeyBinary(ref: number): void {
    this.u32(ref)[this.w(ref)] |= KEY_BINARY_BIT;
  }
  /** memcached's slabs_clsid: the class whose LRU and counters the item belongs to. */
  classOf(ref: number): number {
    return (this.u32(ref)[this.w(ref)] >>> 16) & 0xff;
  }
  /** The class of the chunk at `ref` itself (differs from classOf for a chunked item's header). */
  chunkClassOf(ref: number): number {
    const word = this.u32(ref)[this.w(ref)];
    if ((word & (IF_CHUNKED | 3)) !== (IF_CHUNKED | KIND_ITEM)) return (word >>> 16) & 0xff;
    return this.slabs.classFor(headerChunkBytes(word >>> 24, this.chunkCount(ref), this.flags(ref)));
  }
  /** Data chunks of a chunked item. */
  chunkCount(ref: number): number {
    return Math.ceil(this.nbytes(ref) / this.dataChunkPayloadBytes);
  }
  nkey(ref: number): number {
    return this.u32(ref)[this.w(ref)] >>> 24;
  }
  prev(ref: number): number {
    return this.u32(ref)[this.w(ref) + 1];
  }
  next(ref: number): number {
    return this.u32(ref)[this.w(ref) + 2];
  }
  /** The next item in the hash chain (src/store/hash.ts). */
  chainNext(ref: number): number {
    return this.u32(ref)[this.w(ref) + 3];
  }
  setChainNext(ref: number, next: number): void {
    this.u32(ref)[this.w(ref) + 3] = next;
  }
  exptime(ref: number): number {
    return this.u32(ref)[this.w(ref) + 4];
  }
  setExptime(ref: number, t: number): void {
    this.u32(ref)[this.w(ref) + 4] = t;
  }
  atime(ref: number): number {
    return this.u32(ref)[this.w(ref) + 5];
  }
  setAtime(ref: number, t: number): void {
    this.u32(ref)[this.w(ref) + 5] = t;
  }
  flags(ref: number): number {
    const u = this.u32(ref);
    const w = this.w(ref);
    return (u[w] & CFLAGS_BIT) !== 0 ? u[w + 9] : 0;
  }
  cas(ref: number): number {
    const u = this.u32(ref);
    const w = this.w(ref);
    return u[w + 7] * 4294967296 + u[w + 6];
  }
  setCas(ref: number, cas: number): void {
    const u = this.u32(ref);
    const w = this.w(ref);
    u[w + 6] = cas >>> 0;
    u[w + 7] = Math.floor(cas / 4294967296);
  }
  nbytes(ref: number): number {
    return this.u32(ref)[this.w(ref) + 8];
  }
  keyOffset(ref: number): number {
    return this.off(ref) + headerBytes(this.u32(ref)[this.w(ref)]);
  }
  /** Byte offset of the value of a non-chunked item within its page. */
  valueOffset(ref: number): number {
    return this.keyOffset(ref) + this.nkey(ref);
  }
  isChunked(ref: number): boolean {
    return (this.iflags(ref) & IF_CHUNKED) !== 0;
  }
  /** A header item: the value lives in extstore (see src/engine/storage.ts). */
  isHdr(ref: number): boolean {
    return (this.u32(ref)[this.w(ref)] & HDR_BIT) !== 0;
  }
  /**
   * Every header field a reply needs, in one pass over the item's words (the accessors above
   * each find the segment and word again, and are too many to be inlined together on the get
   * path). The key is `keyBuf[keyStart, keyStart + keyLen)`.
   */
  readHeader(ref: number, h: ItemHeaderFields): void {
    const u = this.slabs.segU32[ref >>> 27];
    const w = wordOf(ref);
    const word = u[w];
    const flags = (word & CFLAGS_BIT) !== 0 ? u[w + 9] : 0;
    const nkey = word >>> 24;
    const nbytes = u[w + 8];
    h.flags = flags;
    h.cas = u[w + 7] * 4294967296 + u[w + 6];
    h.nbytes = nbytes;
    h.exptime = u[w + 4];
    h.lastAccess = u[w + 5];
    h.fetched = (word & IF_FETCHED) !== 0;
    h.stale = (word & IF_STALE) !== 0;
    h.tokenSent = (word & IF_TOKEN_SENT) !== 0;
    h.keyBinary = (word & KEY_BINARY_BIT) !== 0;
    h.cls = (word >>> 16) & 0xff;
    h.onDisk = (word & HDR_BIT) !== 0;
    h.keyBuf = this.slabs.segU8[ref >>> 27];
    h.keyStart = byteOf(ref) + headerBytes(word);
    h.keyLen = nkey;
    h.memcachedSize = this.memcachedItemTotal(nkey, nbytes, flags);
  }

  /** Total bytes an item stands for (header, key, value), as memcached's `bytes` counts them. */
  itemBytes(ref: number): number {
    return headerBytes(this.u32(ref)[this.w(ref)]) + this.nkey(ref) + this.nbytes(ref);
  }
  /** Bytes an item holds in memory, for its LRU's share: a header item holds no value. */
  private lruItemBytes(ref: number): number {
    const word = this.u32(ref)[this.w(ref)];
    if ((word & HDR_BIT) === 0) return headerBytes(word) + this.nkey(ref) + this.nbytes(ref);
    return hdrItemBytes(this.nkey(ref), this.flags(ref));
  }
  /** Word index (in the segment's Uint32Array) of a header item's extstore pointer. */
  private diskWord(ref: number): number {
    return this.chunkTableOffset(ref) >>> 2;
  }

  // A header item's extstore pointer (see the layout above), by name.
  diskPage(ref: number): number {
    return this.u32(ref)[this.diskWord(ref)];
  }
  diskVersion(ref: number): number {
    return this.u32(ref)[this.diskWord(ref) + 1];
  }
  diskOffset(ref: number): number {
    return this.u32(ref)[this.diskWord(ref) + 2];
  }
  diskLength(ref: number): number {
    return this.u32(ref)[this.diskWord(ref) + 3];
  }
  diskCrc(ref: number): number {
    return this.u32(ref)[this.diskWord(ref) + 4];
  }
  /** Point a header item at its record: page id and version, offset, record bytes, CRC. */
  setDiskPointer(ref: number, page: number, version: number, offset: number, length: number, crc: number): void {
    const u = this.u32(ref);
    const pw = this.diskWord(ref);
    u[pw] = page;
    u[pw + 1] = version;
    u[pw + 2] = offset;
    u[pw + 3] = length;
    u[pw + 4] = crc;
  }
  /** The record moved (compaction): same length and CRC, new place. */
  moveDiskPointer(ref: number, page: number, version: number, offset: number): void {
    const u = this.u32(ref);
    const pw = this.diskWord(ref);
    u[pw] = page;
    u[pw + 1] = version;
    u[pw + 2] = offset;
  }
  /** Does header item `ref` point at (page, version, offset)? */
  diskPointerIs(ref: number, page: number, version: number, offset: number): boolean {
    const u = this.u32(ref);
    const pw = this.diskWord(ref);
    return u[pw] === page && u[pw + 1] === version && u[pw + 2] === offset;
  }

  /** Run `fn` with `pinned` safe from eviction and page moves (the cold tier stays as it is). */
  withPinned<T>(pinned: number, fn: () => T): T {
    const pin = this.flushPinned;
    this.flushPinned = pinned;
    try {
      return fn();
    } finally {
      this.flushPinned = pin;
    }
  }

  /**
   * Run `fn` with the cold tier kept out of evictions (they evict plainly instead of writing
   * to disk, so a disk write never nests in another) and with `pinned` (an item being
   * written to disk, or 0) safe from eviction and page moves.
   */
  withoutColdTier<T>(pinned: number, fn: () => T): T {
    const pin = this.flushPinned;
    const busy = this.coldTierBusy;
    this.flushPinned = pinned !== 0 ? pinned : pin;
    this.coldTierBusy = true;
    try {
      return fn();
    } finally {
      this.coldTierBusy = busy;
      this.flushPinned = pin;
    }
  }


  keyEquals(ref: number, key: Uint8Array, start: number, len: number): boolean {
    const u = this.u32(ref);
    const w = this.w(ref);
    const word = u[w];
    if (word >>> 24 !== len) return false;
    const page = this.page(ref);
    let p = (w << 2) + headerBytes(word);
    for (let i = start, end = start + len; i < end; i++, p++) {
      if (page[p] !== key[i]) return false;
    }
    return true;
  }

  /** The item's key as a string (dumps and logs only; never on the request path). */
  keyString(ref: number): string {
    const o = this.keyOffset(ref);
    return this.page(ref).toString('latin1', o, o + this.nkey(ref));
  }

  // ---------------------------------------------------------------- value bytes

  /**
   * Copy the value into dst at dstOffset; `dstView`, a DataView over dst's bytes, lets a
   * short value go by words (src/bytes.ts). Returns the byte count.
   */
  copyValue(ref: number, dst: Uint8Array, dstOffset: number, dstView: DataView<ArrayBufferLike> | null = null): number {
    const n = this.nbytes(ref);
    const word = this.u32(ref)[this.w(ref)];
    if ((word & (IF_CHUNKED | HDR_BIT)) === 0) {
      if (dstView !== null) copyWords(dst, dstView, dstOffset, this.page(ref), this.view(ref), this.valueOffset(ref), n);
      else copyPlain(dst, dstOffset, this.page(ref), this.valueOffset(ref), n);
      return n;
    }
    // Protocols read header items asynchronously (src/protocol/disk-value.ts); this is the
    // fallback for a caller that does not.
    if ((word & HDR_BIT) !== 0) return this.readHdrValueSync(ref, dst, dstOffset);
    return this.copyChunkedRange(ref, 0, n, dst, dstOffset);
  }

  private readHdrValueSync(ref: number, dst: Uint8Array, dstOffset: number): number {
    const n = this.nbytes(ref);
    if (this.coldTier !== null) return this.coldTier.readValueSync(ref, dst, dstOffset);
    dst.fill(0, dstOffset, dstOffset + n);
    return n;
  }

  /** Copy value bytes [from, to) of any item into dst. */
  copyValueRange(ref: number, from: number, to: number, dst: Uint8Array, dstOffset: number): void {
    if (this.isHdr(ref)) {
      const whole = Buffer.allocUnsafe(this.nbytes(ref));
      this.readHdrValueSync(ref, whole, 0);
      dst.set(whole.subarray(from, to), dstOffset);
      return;
    }
    if (!this.isChunked(ref)) {
      copyBulk(dst, dstOffset, this.page(ref), this.valueOffset(ref) + from, to - from);
      return;
    }
    this.copyChunkedRange(ref, from, to, dst, dstOffset);
  }

  chunkTableOffset(ref: number): number {
    return (this.keyOffset(ref) + this.nkey(ref) + 3) & ~3;
  }

  private copyChunkedRange(ref: number, from: number, to: number, dst: Uint8Array, dstOffset: number): number {
    const per = this.dataChunkPayloadBytes;
    const table = this.chunkTableOffset(ref) >>> 2;
    const u = this.u32(ref);
    let pos = from;
    while (pos < to) {
      const i = Math.floor(pos / per);
      const within = pos - i * per;
      const take = Math.min(per - within, to - pos);
      const c = u[table + i];
      copyBulk(dst, dstOffset, this.page(c), this.off(c) + DATA_CHUNK_HEADER_BYTES + within, take);
      dstOffset += take;
      pos += take;
    }
    return to - from;
  }

  /**
   * Write src[srcStart, srcEnd) into the value at valueOffset (filling an allocated item);
   * `srcView`, a DataView over src's bytes, lets a short run go by words (src/bytes.ts).
   */
  writeValue(ref: number, valueOffset: number, src: Uint8Array, srcStart: number, srcEnd: number, srcView: DataView<ArrayBufferLike> | null = null): void {
    if (!this.isChunked(ref)) {
      const at = this.valueOffset(ref) + valueOffset;
      if (srcView !== null) copyWords(this.page(ref), this.view(ref), at, src, srcView, srcStart, srcEnd - srcStart);
      else copyPlain(this.page(ref), at, src, srcStart, srcEnd - srcStart);
      return;
    }
    const per = this.dataChunkPayloadBytes;
    const table = this.chunkTableOffset(ref) >>> 2;
    const u = this.u32(ref);
    let pos = valueOffset;
    while (srcStart < srcEnd) {
      const i = Math.floor(pos / per);
      const within = pos - i * per;
      const take = Math.min(per - within, srcEnd - srcStart);
      const c = u[table + i];
      copyBulk(this.page(c), this.off(c) + DATA_CHUNK_HEADER_BYTES + within, src, srcStart, take);
      srcStart += take;
      pos += take;
    }
  }

  // ---------------------------------------------------------------- allocation

  /** memcached's item size check (its header, CAS, key NUL, CRLF) so limits match exactly. */
  memcachedItemTotal(nkey: number, nbytes: number, flags: number): number {
    return MEMCACHED_ITEM_HEADER_BYTES + (this.opts.casEnabled ? 8 : 0) + nkey + 1 + (flags !== 0 ? 4 : 0) + nbytes + 2;
  }

  sizeOk(nkey: number, nbytes: number, flags: number): boolean {
    return this.memcachedItemTotal(nkey, nbytes, flags) <= this.opts.itemSizeMaxBytes;
  }

  /**
   * Allocate an unlinked item with its key and header set; the value is written afterwards
   * with writeValue(). Returns 0 when it cannot (too large when !sizeOk(), else out of memory).
   */
  alloc(key: Uint8Array, kStart: number, nkey: number, flags: number, exptime: number, nbytes: number): number {
    if (!this.sizeOk(nkey, nbytes, flags)) {
      return 0;
    }
    const total = ITEM_HEADER_BYTES + (flags !== 0 ? CLIENT_FLAGS_BYTES : 0) + nkey + nbytes;
    let ref: number;
    if (total <= this.singleChunkBytesMax) {
      const cls = this.slabs.classFor(total);
      ref = this.allocChunk(cls);
      if (ref === 0) return this.outOfMemory(cls);
      this.initHeader(ref, 0, cls, nkey, flags, exptime, nbytes);
    } else {
      ref = this.allocChunked(nkey, nbytes, flags, exptime);
      if (ref === 0) return this.outOfMemory(this.slabs.largestClass);
    }
    copySmall(this.page(ref), this.keyOffset(ref), key, kStart, nkey);
    return ref;
  }

  /**
   * Could an item of this size get its chunks at all: does each class it would use hold enough
   * chunks, counting the pages it could still be given, if everything else in it were
   * evicted? memcached reads a value from extstore into such an item; when its classes lost
   * their pages (slabs reassign) the read is refused (get_oom_extstore). Here the read goes to
   * the reply, but the answer is memcached's (src/engine/storage.ts, roomToRead).
   */
  couldHold(nkey: number, nbytes: number, flags: number): boolean {
    const slabs = this.slabs;
    const pages = slabs.pagesAvailable;
    const total = ITEM_HEADER_BYTES + (flags !== 0 ? CLIENT_FLAGS_BYTES : 0) + nkey + nbytes;
    if (total <= this.singleChunkBytesMax) return this.classCouldGive(slabs.classFor(total), 1, pages);
    // As allocChunked: a header chunk, full chunks of the largest class, and a last one of the
    // class that fits what is left (or the largest).
    const largest = slabs.largestClass;
    const per = this.dataChunkPayloadBytes;
    const nchunks = Math.ceil(nbytes / per);
    if (!this.classCouldGive(slabs.classFor(headerChunkBytes(nkey, nchunks, flags)), 1, pages)) return false;
    const lastPayload = nbytes - (nchunks - 1) * per;
    const lastCls = slabs.classFor(Math.min(this.singleChunkBytesMax,
      lastPayload + MEMCACHED_VALUE_CRLF_BYTES + MEMCACHED_CHUNK_HEADER_BYTES));
    const lastElsewhere = lastCls !== largest && this.classCouldGive(lastCls, 1, pages);
    return this.classCouldGive(largest, lastElsewhere ? nchunks - 1 : nchunks, pages);
  }

  /** Does class `cls` hold `chunks` chunks, counting `pages` more pages? */
  private classCouldGive(cls: number, chunks: number, pages: number): boolean {
    const slabs = this.slabs;
    return cls !== 0 && slabs.totalChunks(cls) + pages * slabs.perPage[cls] >= chunks;
  }

  /** memcached counts a failed item allocation once, on the item's class. */
  private outOfMemory(cls: number): number {
    this.counters.outofmemory[cls]++;
    return 0;
  }

  /**
   * A header item (HDR bit set, word 8 = the value's length `nbytes`), not linked, its
   * extstore pointer left for the caller. May evict (never `flushPinned`). Returns 0 and
   * returns 0 when no memory can be had.
   */
  allocHdr(key: Uint8Array, kStart: number, nkey: number, flags: number, exptime: number, nbytes: number): number {
    const cls = this.slabs.classFor(hdrItemBytes(nkey, flags));
    const ref = this.allocChunk(cls);
    if (ref === 0) return this.outOfMemory(cls);
    this.initHeader(ref, HDR_BIT, cls, nkey, flags, exptime, nbytes);
    copySmall(this.page(ref), this.keyOffset(ref), key, kStart, nkey);
    return ref;
  }

  private initHeader(ref: number, extraFlags: number, cls: number, nkey: number, flags: number, exptime: number,
    nbytes: number): void {
    const u = this.u32(ref);
    const w = this.w(ref);
    const seg = this.opts.tempLru && exptime !== 0 && exptime - this.clock.now <= this.opts.temporaryTtlSeconds
      ? TEMP_LRU
      : this.opts.lruSegmented ? HOT_LRU : COLD_LRU;
    u[w] = KIND_ITEM | extraFlags | (flags !== 0 ? CFLAGS_BIT : 0) | (seg << 8) | (cls << 16) | (nkey << 24);
    u[w + 1] = 0;
    u[w + 2] = 0;
    u[w + 3] = 0;
    u[w + 4] = exptime;
    u[w + 5] = this.clock.now;
    u[w + 6] = 0;
    u[w + 7] = 0;
    u[w + 8] = nbytes;
    if (flags !== 0) u[w + 9] = flags;
  }

  /**
   * A chunked item, as memcached's large items: a header chunk from the class that fits it,
   * data chunks of the largest class, the last one of the class memcached would pick for what
   * is left (or the largest when that class has nothing free and nothing to evict). The item
   * belongs to the largest class's LRU.
   */
  private allocChunked(nkey: number, nbytes: number, flags: number, exptime: number): number {
    const slabs = this.slabs;
    const largest = slabs.largestClass;
    const per = this.dataChunkPayloadBytes;
    const nchunks = Math.ceil(nbytes / per);
    const head = this.allocChunk(slabs.classFor(headerChunkBytes(nkey, nchunks, flags)));
    if (head === 0) return 0;
    this.initHeader(head, IF_CHUNKED, largest, nkey, flags, exptime, nbytes);
    const table = this.chunkTableOffset(head) >>> 2;
    const hu = this.u32(head);
    for (let i = 0; i < nchunks; i++) hu[table + i] = 0;
    // The header is not linked, so evictions and page moves leave it (and its chunks) alone.
    let ok = true;
    for (let i = 0; i < nchunks; i++) {
      const payload = Math.min(per, nbytes - i * per);
      const tail = i === nchunks - 1 ? MEMCACHED_VALUE_CRLF_BYTES : 0;
      const cls = slabs.classFor(Math.min(this.singleChunkBytesMax, payload + tail + MEMCACHED_CHUNK_HEADER_BYTES));
      let c = this.allocChunk(cls);
      if (c === 0 && cls !== largest) c = this.allocChunk(largest);
      if (c === 0) {
        ok = false;
        break;
      }
      const cu = this.u32(c);
      const cw = this.w(c);
      cu[cw] = KIND_DATA | (cu[cw] & 0x00ff0000);
      cu[cw + 1] = head;
      hu[table + i] = c;
    }
    if (ok) return head;
    // Give back what was taken; the whole item fails.
    this.free(head);
    return 0;
  }

  /**
   * A chunk of class `cls`, evicting from that class's LRU when memory is full (memcached's
   * do_item_alloc_pull). The chunk comes back marked as an unlinked item, which walkers and
   * the page mover leave alone.
   */
  private allocChunk(cls: number): number {
    let ref = 0;
    let tries = 0;
    for (; tries < 10; tries++) {
      if (!this.opts.lruSegmented) this.pullTail(cls, COLD_LRU, 0, false);
      ref = this.slabs.alloc(cls);
      if (ref !== 0) break;
      if (this.pullTail(cls, COLD_LRU, 0, true) <= 0) {
        if (!this.opts.lruSegmented) break;
        if (this.pullTail(cls, HOT_LRU, 0, false) <= 0 && this.pullTail(cls, WARM_LRU, 0, false) <= 0) {
          // Nothing left to move or evict in this class.
          if (this.lruCount[(cls << 2) | COLD_LRU] === 0) break;
        }
      }
    }
    if (tries > 0) this.counters.direct_reclaims[cls] += tries;
    if (ref === 0) return 0;
    this.u32(ref)[this.w(ref)] = KIND_ITEM | (cls << 16);
    return ref;
  }

  /** Moves pages between classes (src/store/mover.ts); set by its constructor. */
  mover: PageMover | null = null;

  /** Return an item's memory. It must be unlinked. */
  free(ref: number): void {
    const slabs = this.slabs;
    if (this.isChunked(ref)) {
      const n = this.chunkCount(ref);
      const table = this.chunkTableOffset(ref) >>> 2;
      const u = this.u32(ref);
      for (let i = 0; i < n; i++) {
        const c = u[table + i];
        if (c !== 0) slabs.free(c, (this.u32(c)[this.w(c)] >>> 16) & 0xff);
      }
    }
    slabs.free(ref, this.chunkClassOf(ref));
  }

  // ---------------------------------------------------------------- page moves

  /**
   * The chunk at `from` (a linked item, or a data chunk of one) now lives at `to`, a chunk
   * of the same class taken by the page mover: copy it and point everything that referred
   * to it (hash index, LRU neighbours, a chunked item's data chunks or its chunk table) at
   * the copy. `from` is left for the mover to wipe. The item keeps its CAS and LRU place.
   */
  relocate(from: number, to: number, chunkBytes: number): void {
    const src = this.page(from);
    const so = this.off(from);
    copyBulk(this.page(to), this.off(to), src, so, chunkBytes);
    const u = this.u32(to);
    const w = this.w(to);
    const word = u[w];
    if ((word & 3) === KIND_DATA) {
      const owner = u[w + 1];
      const table = this.chunkTableOffset(owner) >>> 2;
      const ou = this.u32(owner);
      for (let i = 0, n = this.chunkCount(owner); i < n; i++) {
        if (ou[table + i] === from) {
          ou[table + i] = to;
          break;
        }
      }
      return;
    }
    this.index.replace(this.hashOf(to), from, to);
    this.lruRepoint(from, to);
    if ((word & IF_CHUNKED) !== 0) {
      const table = this.chunkTableOffset(to) >>> 2;
      for (let i = 0, n = this.chunkCount(to); i < n; i++) {
        const c = u[table + i];
        this.u32(c)[this.w(c) + 1] = to;
      }
    }
  }

  /**
   * Is the chunk at `ref` still a linked item whose key hashes to `hash`? For walkers that
   * found it without a lock: after taking the stripe lock of `hash`, this says the lock is the
   * item's and the item is still there.
   */
  isLinkedWithHash(ref: number, hash: number): boolean {
    const word = this.u32(ref)[this.w(ref)];
    return (word & 3) === KIND_ITEM && (word & IF_LINKED) !== 0 && this.hashOf(ref) === hash;
  }

  isLinked(ref: number): boolean {
    return (this.u32(ref)[this.w(ref)] & IF_LINKED) !== 0;
  }

  /** Is the item at `ref` (an item chunk) in use outside the store: being filled, or pinned? */
  isBusy(ref: number): boolean {
    return (this.u32(ref)[this.w(ref)] & IF_LINKED) === 0 || ref === this.flushPinned || this.debugReferenced(ref);
  }

  // ---------------------------------------------------------------- debug references

  /**
   * memcached-debug's leaked references (`debugitem ref`, src/engine/debug-refs.ts): item →
   * count. A referenced item is busy (page moves wait) and, once unlinked, keeps its memory
   * until the last reference goes (`debugDeferred`). Null until the first reference.
   */
  private debugRefs: Map<number, number> | null = null;
  private readonly debugDeferred = new Set<number>();

  debugRef(ref: number): void {
    this.debugRefs ??= new Map();
    this.debugRefs.set(ref, (this.debugRefs.get(ref) ?? 0) + 1);
  }

  debugUnref(ref: number): void {
    const n = this.debugRefs?.get(ref);
    if (n === undefined) return;
    if (n > 1) {
      this.debugRefs!.set(ref, n - 1);
      return;
    }
    this.debugRefs!.delete(ref);
    if (this.debugDeferred.delete(ref)) this.free(ref);
  }

  /** Does a debug reference hold the item at `ref`? */
  debugReferenced(ref: number): boolean {
    return this.debugRefs !== null && this.debugRefs.has(ref);
  }

  // ---------------------------------------------------------------- index + LRU

  hashOf(ref: number): number {
    return hashKey(this.page(ref), this.keyOffset(ref), this.nkey(ref));
  }

  /** Curr items, bytes and total items, summed over the LRUs (each kept under its LRU lock). */
  get currItems(): number {
    let n = 0;
    for (let i = 0; i < this.lruCount.length; i++) n += this.lruCount[i];
    return n;
  }
  get currBytes(): number {
    let n = 0;
    for (let i = 0; i < this.lruItemTotal.length; i++) n += this.lruItemTotal[i];
    return n;
  }
  get totalItems(): number {
    return this.classSum('total_items');
  }

  /** A per-class counter of class `cls`, every thread's row summed. */
  classTotal(name: ClassCounterName, cls: number): number {
    const t = this.counterTables[name];
    if (name === 'evicted_time') return t[cls];
    let v = 0;
    for (let r = 0, i = cls; r < this.rows; r++, i += this.classesPerRow) v += t[i];
    return v;
  }

  /** A per-class counter over every class and thread. */
  classSum(name: ClassCounterName): number {
    const t = this.counterTables[name];
    let v = 0;
    for (let i = 0; i < t.length; i++) v += t[i];
    return v;
  }

  /** Fetch hits of LRU `lru` ((class << 2) | segment), every thread's row summed. */
  lruHitsTotal(lru: number): number {
    const width = this.classesPerRow * 4;
    let v = 0;
    for (let r = 0, i = lru; r < this.rows; r++, i += width) v += this.lruHitTables[i];
    return v;
  }

  /** `stats reset`: every thread's per-class counters and LRU hits. */
  resetCounters(): void {
    for (const k of CLASS_COUNTER_NAMES) this.counterTables[k].fill(0);
    this.lruHitTables.fill(0);
  }

  /** The next CAS value, unique across threads (memcached's get_cas_id). */
  nextCas(): number {
    this.casLock.lock(0);
    const cas = this.casCounter[0] + 1;
    this.casCounter[0] = cas;
    this.casLock.unlock(0);
    return cas;
  }

  /** memcached's settings.oldest_live / oldest_cas, set by flush_all. */
  get oldestLive(): number {
    return this.flushState[0];
  }
  get oldestCas(): number {
    return this.flushState[1];
  }

  /**
   * Background work on the hash index (one thread): start growing when the items outnumber
   * the buckets by half again, and move a step of buckets. True while a growth is under way.
   */
  growIndex(enabled: boolean): boolean {
    if (enabled) this.index.growIfNeeded(this.currItems);
    return this.index.migrate(this.itemLocks, this.stripeMask);
  }

  /** The item lock stripe of a key hash. */
  stripeOf(hash: number): number {
    return hash & this.stripeMask;
  }

  /**
   * Is the item dead: expired, flushed, or a header whose disk page is gone? (The crawler and
   * the page mover drop such headers; the LRU tail does not look at the disk, as memcached's
   * does not, so a get of one is counted as miss_from_extstore.)
   */
  isDead(ref: number): boolean {
    if (this.isExpiredOrFlushed(ref)) return true;
    return this.isHdr(ref) && this.coldTier !== null && !this.coldTier.valid(ref);
  }

  /** Is the item dead by exptime or flush_all? */
  isExpiredOrFlushed(ref: number): boolean {
    const exp = this.u32(ref)[this.w(ref) + 4];
    if (exp !== 0 && exp <= this.clock.now) return true;
    return this.isFlushed(ref);
  }

  isFlushed(ref: number): boolean {
    const oldest = this.oldestLive;
    if (oldest === 0 || oldest > this.clock.now) return false;
    if (this.atime(ref) <= oldest) return true;
    const cas = this.cas(ref);
    const oldestCas = this.oldestCas;
    return oldestCas !== 0 && cas !== 0 && cas < oldestCas;
  }

  /**
   * Touch the hash buckets of `hashes[0, n)` and the first three cache lines of each chain's
   * first item, all before any of them is looked at for real, so that their cache misses
   * overlap instead of coming one per lookup (doc/store.md, "Prefetching a pipeline's keys").
   * No lock is taken and nothing is decided on what is read: a chain that changes meanwhile
   * only makes the touch useless. `n` is at most PREFETCH_KEYS_MAX.
   */
  prefetch(hashes: Int32Array, n: number): void {
    const heads = this.prefetchHeads;
    // First every bucket, then every item: the loads of a pass do not wait on each other.
    for (let i = 0; i < n; i++) heads[i] = this.index.firstOf(hashes[i]);
    const seg = this.slabs.segU32;
    let sink = this.prefetchSink;
    for (let i = 0; i < n; i++) {
      const ref = heads[i];
      if (ref !== 0) {
        const u = seg[ref >>> 27];
        const w = wordOf(ref);
        sink ^= u[w];
        // The next two cache lines too: the key, and the value's first bytes (see PREFETCH_LINE_WORDS).
        if (w + 2 * PREFETCH_LINE_WORDS < u.length) sink ^= u[w + PREFETCH_LINE_WORDS] ^ u[w + 2 * PREFETCH_LINE_WORDS];
      }
    }
    this.prefetchSink = sink;
  }
  /** Chain heads of one prefetch (item references as int32: `>>>` reads them back unsigned). */
  private readonly prefetchHeads = new Int32Array(PREFETCH_KEYS_MAX);
  /** What the touches read, kept so that the compiler cannot drop them as unused. */
  private prefetchSink = 0;

  /**
   * Look a key up (the caller holds its item lock): the item, or a miss that says why
   * (FIND_MISS, FIND_EXPIRED, FIND_FLUSHED; all <= 0). Expired or flushed items are unlinked
   * on the way (memcached's lazy expiry).
   */
  find(key: Uint8Array, start: number, len: number, hash: number): number {
    const ref = this.index.find(hash, key, start, len);
    if (ref === 0) return FIND_MISS;
    const exp = this.exptime(ref);
    if (exp !== 0 && exp <= this.clock.now) {
      this.unlink(ref, hash);
      return FIND_EXPIRED;
    }
    if (this.oldestLive !== 0 && this.isFlushed(ref)) {
      this.unlink(ref, hash);
      return FIND_FLUSHED;
    }
    return ref;
  }

  /** Mark a fetch, as memcached's do_item_bump (the caller holds the item lock). */
  bump(ref: number): void {
    const f = this.iflags(ref);
    if (this.opts.lruSegmented) {
      if ((f & IF_ACTIVE) !== 0) return;
      if ((f & IF_FETCHED) === 0) {
        this.setIflags(ref, f | IF_FETCHED);
        return;
      }
      this.setIflags(ref, f | IF_ACTIVE);
      if (this.segment(ref) !== COLD_LRU) {
        this.setAtime(ref, this.clock.now);
        return;
      }
      // memcached moves an active COLD item to WARM asynchronously; here it is immediate.
      this.setIflags(ref, f & ~IF_ACTIVE);
      this.lruUnlink(ref);
      this.setAtime(ref, this.clock.now);
      const cls = this.classOf(ref);
      const warm = (cls << 2) | WARM_LRU;
      this.lruLocks.lock(warm);
      this.counters.moves_to_warm[cls]++;
      this.lruLinkLocked(ref, WARM_LRU);
      this.lruLocks.unlock(warm);
      return;
    }
    this.setIflags(ref, f | IF_FETCHED);
    if (this.atime(ref) < this.clock.now - ITEM_UPDATE_INTERVAL_SECONDS) {
      this.lruUnlink(ref);
      this.setAtime(ref, this.clock.now);
      this.lruLink(ref, this.segment(ref));
    }
  }

  /** memcached's do_item_update: refresh the access time at most once a minute. */
  refreshTime(ref: number): void {
    const now = this.clock.now;
    if (this.atime(ref) >= now - ITEM_UPDATE_INTERVAL_SECONDS) return;
    this.setAtime(ref, now);
    if (!this.opts.lruSegmented) {
      this.lruUnlink(ref);
      this.lruLink(ref, this.segment(ref));
    }
  }

  /** A stale replacement (meta set I) keeps the old TTL, is marked stale, keeps a sent token. */
  inheritStale(ref: number, old: number): void {
    this.setExptime(ref, this.exptime(old));
    this.setIflags(ref, this.iflags(ref) | IF_STALE | (this.iflags(old) & IF_TOKEN_SENT));
  }

  /**
   * Link a freshly written item, replacing any live item with the same key (the caller
   * holds the key's item lock).
   */
  link(ref: number, hash: number, old: number): void {
    this.linkAs(ref, hash, old, this.storeCas(-1));
  }

  /** link() with a CAS the caller took (memcached takes a store's CAS before it tries it). */
  linkAs(ref: number, hash: number, old: number, cas: number): void {
    this.setCas(ref, cas);
    this.linkWithCas(ref, hash, old);
    this.balance(this.classOf(ref));
  }

  /**
   * The CAS a store attempt takes, as memcached's `get_cas_id()` at store time: `casIdIn`
   * (meta E) when given, else the next one, used up whether or not the store then succeeds.
   */
  storeCas(casIdIn: number): number {
    return casIdIn >= 0 ? casIdIn : this.opts.casEnabled ? this.nextCas() : 0;
  }

  /**
   * Link `fresh` with CAS `cas` instead of a new one, and the IF_MOVE_KEPT flags of
   * `oldIflags`: a value moved to or from extstore is the same value. With `old` (linked,
   * same key) it takes old's place and old is freed.
   */
  linkMoved(fresh: number, hash: number, old: number, cas: number, oldIflags: number): void {
    this.setCas(fresh, cas);
    this.setIflags(fresh, this.iflags(fresh) | (oldIflags & IF_MOVE_KEPT));
    this.linkWithCas(fresh, hash, old);
  }

  private linkWithCas(ref: number, hash: number, old: number): void {
    this.setAtime(ref, this.clock.now);
    if (old !== 0) {
      this.index.replace(hash, old, ref);
      this.unlinkFromLru(old);
    } else {
      this.index.insert(hash, ref);
    }
    this.setIflags(ref, this.iflags(ref) | IF_LINKED);
    const cls = this.classOf(ref);
    const id = (cls << 2) | this.segment(ref);
    this.lruLocks.lock(id);
    this.counters.total_items[cls]++;
    this.lruLinkLocked(ref, this.segment(ref));
    this.lruLocks.unlock(id);
  }

  /** Put `fresh` in the place of the linked item `old`, keeping old's CAS; `old` is freed. */
  replaceKeepingCas(old: number, fresh: number): void {
    this.linkMoved(fresh, this.hashOf(old), old, this.cas(old), this.iflags(old));
  }

  /** Take the item lock of key hash `hash`'s stripe (held for the whole of one operation on a key). */
  lockKey(hash: number): void {
    this.itemLocks.lock(hash & this.stripeMask);
  }

  unlockKey(hash: number): void {
    this.itemLocks.unlock(hash & this.stripeMask);
  }

  /** Take an item out of the index and LRU and free it (the caller holds its item lock). */
  unlink(ref: number, hash: number): void {
    this.index.remove(hash, ref);
    this.unlinkFromLru(ref);
  }

  private unlinkFromLru(ref: number): void {
    this.setIflags(ref, this.iflags(ref) & ~IF_LINKED);
    this.lruUnlink(ref);
    this.released(ref);
  }

  /** An unlinked item's memory goes back (and its extstore record, if it is a header). */
  private released(ref: number): void {
    if ((this.u32(ref)[this.w(ref)] & HDR_BIT) !== 0) this.coldTier?.released(ref);
    if (this.debugReferenced(ref)) {
      this.debugDeferred.add(ref); // freed by the last debugUnref
      return;
    }
    this.free(ref);
  }

  /** The LRU list id of an item: (class << 2) | segment. */
  lruIdOf(ref: number): number {
    const word = this.u32(ref)[this.w(ref)];
    return (((word >>> 16) & 0xff) << 2) | ((word >>> 8) & 3);
  }

  private lruLink(ref: number, seg: number): void {
    const id = (this.classOf(ref) << 2) | seg;
    this.lruLocks.lock(id);
    this.lruLinkLocked(ref, seg);
    this.lruLocks.unlock(id);
  }

  private lruUnlink(ref: number): void {
    const id = this.lruIdOf(ref);
    this.lruLocks.lock(id);
    this.lruUnlinkLocked(ref, id);
    this.lruLocks.unlock(id);
  }

  /** Link at the head of the item's class's `seg` list; the caller holds that list's lock. */
  private lruLinkLocked(ref: number, seg: number): void {
    const u = this.u32(ref);
    const w = this.w(ref);
    const cls = (u[w] >>> 16) & 0xff;
    u[w] = (u[w] & 0xfffffcff) | (seg << 8);
    const id = (cls << 2) | seg;
    const head = this.lruHead[id];
    u[w + 1] = 0;
    u[w + 2] = head;
    if (head !== 0) this.u32(head)[this.w(head) + 1] = ref;
    else this.lruTail[id] = ref;
    this.lruHead[id] = ref;
    this.lruCount[id]++;
    this.lruBytes[id] += this.lruItemBytes(ref);
    this.lruItemTotal[id] += this.itemBytes(ref);
  }

  /** Unlink from list `id`, the item's own; the caller holds that list's lock. */
  private lruUnlinkLocked(ref: number, id: number): void {
    const u = this.u32(ref);
    const w = this.w(ref);
    const prev = u[w + 1];
    const next = u[w + 2];
    if (prev !== 0) this.u32(prev)[this.w(prev) + 2] = next;
    else this.lruHead[id] = next;
    if (next !== 0) this.u32(next)[this.w(next) + 1] = prev;
    else this.lruTail[id] = prev;
    u[w + 1] = 0;
    u[w + 2] = 0;
    this.lruCount[id]--;
    this.lruBytes[id] -= this.lruItemBytes(ref);
    this.lruItemTotal[id] -= this.itemBytes(ref);
  }

  /**
   * Point an item's LRU neighbours at `to`, its copy (page mover); takes the list's lock. The
   * links are read again from `from` under that lock: between the copy and now another thread
   * may have linked an item next to it or unlinked a neighbour, writing into `from`.
   */
  private lruRepoint(from: number, to: number): void {
    const u = this.u32(to);
    const w = this.w(to);
    const uf = this.u32(from);
    const wf = this.w(from);
    const id = this.lruIdOf(to);
    this.lruLocks.lock(id);
    const prev = uf[wf + 1];
    const next = uf[wf + 2];
    u[w + 1] = prev;
    u[w + 2] = next;
    if (prev !== 0) this.u32(prev)[this.w(prev) + 2] = to;
    else this.lruHead[id] = to;
    if (next !== 0) this.u32(next)[this.w(next) + 1] = to;
    else this.lruTail[id] = to;
    this.lruLocks.unlock(id);
  }

  /** Keep HOT and WARM within their share of the class, as memcached's maintainer does. */
  balance(cls: number): void {
    if (!this.opts.lruSegmented) return;
    const base = cls << 2;
    const total = this.lruBytes[base | HOT_LRU] + this.lruBytes[base | WARM_LRU] + this.lruBytes[base | COLD_LRU];
    if (this.lruBytes[base | HOT_LRU] > (total * this.opts.hotLruPct) / 100) this.pullTail(cls, HOT_LRU, total, false);
    if (this.lruBytes[base | WARM_LRU] > (total * this.opts.warmLruPct) / 100) this.pullTail(cls, WARM_LRU, total, false);
  }

  /** Age-based juggling for one class (the periodic maintainer pass). Returns moves made. */
  juggle(cls: number, budget: number): number {
    let moves = 0;
    const base = cls << 2;
    if (this.opts.tempLru) this.pullTail(cls, TEMP_LRU, 0, false);
    for (let i = 0; i < budget; i++) {
      const total = this.lruBytes[base | HOT_LRU] + this.lruBytes[base | WARM_LRU] + this.lruBytes[base | COLD_LRU];
      let did = this.pullTail(cls, HOT_LRU, total, false) + this.pullTail(cls, WARM_LRU, total, false);
      if (this.opts.lruSegmented) did += this.pullTail(cls, COLD_LRU, 0, false);
      if (did === 0) break;
      moves += did;
    }
    return moves;
  }

  /**
   * memcached's lru_pull_tail with LRU_PULL_RETURN_ITEM on COLD: the first live item from the
   * tail of class `cls`'s COLD list (dead ones on the way are reclaimed; one whose item lock
   * is taken, or that is pinned, is passed over), handed to `fn` under its item lock (the
   * list's lock already let go). False when no item was found or `fn` returned false.
   */
  withColdTail(cls: number, fn: (ref: number) => boolean): boolean {
    const id = (cls << 2) | COLD_LRU;
    const counters = this.counters;
    const itemLocks = this.itemLocks;
    let held = 0;
    let heldHash = 0;
    this.lruLocks.lock(id);
    let search = this.lruTail[id];
    for (let tries = PULL_TRIES; tries > 0 && search !== 0; tries--) {
      const nextIt = this.prev(search);
      const hash = this.hashOf(search);
      if (search === this.flushPinned || !itemLocks.tryLock(hash & this.stripeMask)) {
        search = nextIt;
        continue;
      }
      if (this.isExpiredOrFlushed(search)) {
        counters.reclaimed[cls]++;
        if ((this.iflags(search) & IF_FETCHED) === 0) counters.expired_unfetched[cls]++;
        this.unlinkInList(search, hash, id);
        itemLocks.unlock(hash & this.stripeMask);
        search = nextIt;
        continue;
      }
      held = search;
      heldHash = hash;
      break;
    }
    this.lruLocks.unlock(id);
    if (held === 0) return false;
    try {
      return fn(held);
    } finally {
      itemLocks.unlock(heldHash & this.stripeMask);
    }
  }

  /**
   * memcached's lru_pull_tail: look at up to PULL_TRIES items from the tail of one segment;
   * reclaim dead ones; move HOT/WARM overflow to COLD (active ones to WARM); in COLD, evict
   * (when `evict`) or move active items to WARM. Returns how many items were removed/moved.
   *
   * Locks as memcached's: the list's lock for the walk, and each candidate's item lock by
   * trylock (a candidate whose lock is taken, by the caller itself or another thread, is
   * skipped). An item leaving for another list is relinked after the walk's lock is let go,
   * under its item lock, so no thread ever holds two LRU locks.
   */
  pullTail(cls: number, seg: number, totalBytes: number, evict: boolean): number {
    const id = (cls << 2) | seg;
    const now = this.clock.now;
    const counters = this.counters;
    const itemLocks = this.itemLocks;
    let removed = 0;
    /** The item kept locked past the walk, and what happens to it then. */
    let held = 0;
    let heldHash = 0;
    let moveTo = -1;
    let writeOut = false;
    this.lruLocks.lock(id);
    let search = this.lruTail[id];
    for (let tries = PULL_TRIES; tries > 0 && search !== 0; tries--) {
      const nextIt = this.prev(search);
      if (search === this.flushPinned) {
        counters.lrutail_reflocked[cls]++;
        search = nextIt;
        continue;
      }
      const hash = this.hashOf(search);
      const stripe = hash & this.stripeMask;
      if (!itemLocks.tryLock(stripe)) {
        search = nextIt;
        continue;
      }
      if (this.isExpiredOrFlushed(search)) {
        counters.reclaimed[cls]++;
        if ((this.iflags(search) & IF_FETCHED) === 0) counters.expired_unfetched[cls]++;
        this.unlinkInList(search, hash, id);
        itemLocks.unlock(stripe);
        removed++;
        search = nextIt;
        continue;
      }
      const f = this.iflags(search);
      if (seg === HOT_LRU || seg === WARM_LRU) {
        const pct = seg === HOT_LRU ? this.opts.hotLruPct : this.opts.warmLruPct;
        const limit = (totalBytes * pct) / 100;
        const coldTail = this.lruTail[(cls << 2) | COLD_LRU];
        const coldAge = coldTail !== 0 ? now - this.atime(coldTail) : 0;
        const maxAge = coldAge * (seg === HOT_LRU ? this.opts.hotMaxFactor : this.opts.warmMaxFactor);
        if ((f & IF_ACTIVE) !== 0) {
          this.setIflags(search, f & ~IF_ACTIVE);
          if (seg === WARM_LRU) counters.moves_within_lru[cls]++;
          else counters.moves_to_warm[cls]++;
          moveTo = WARM_LRU;
        } else if (this.lruBytes[id] > limit || now - this.atime(search) > maxAge) {
          counters.moves_to_cold[cls]++;
          moveTo = COLD_LRU;
        }
      } else if (seg === COLD_LRU) {
        if (evict) {
          // With extstore, a qualifying value goes to disk instead (memcached's storage
          // writer does this ahead of time; here it happens at the eviction itself).
          const tier = this.coldTier;
          if (tier !== null && !this.coldTierBusy && (this.u32(search)[this.w(search)] & HDR_BIT) === 0) {
            writeOut = true;
          } else if (this.opts.evictToFree) {
            this.countEviction(search);
            this.unlinkInList(search, hash, id);
            removed++;
            this.mover?.evicted(cls);
          }
        } else if ((f & IF_ACTIVE) !== 0 && this.opts.lruSegmented) {
          counters.moves_to_warm[cls]++;
          this.setIflags(search, f & ~IF_ACTIVE);
          moveTo = WARM_LRU;
        }
      }
      if (moveTo >= 0 || writeOut) {
        if (moveTo >= 0) {
          this.lruUnlinkLocked(search, id);
          removed++;
        }
        held = search;
        heldHash = hash;
      } else {
        itemLocks.unlock(stripe);
      }
      break; // only reclaims go on past the first live item
    }
    this.lruLocks.unlock(id);
    if (held === 0) return removed;
    if (moveTo >= 0) {
      this.lruLink(held, moveTo);
    } else if (this.coldTier!.flushForEviction(held, cls)) {
      removed++;
    } else if (this.opts.evictToFree) {
      this.countEviction(held);
      this.unlink(held, heldHash);
      removed++;
      this.mover?.evicted(cls);
    }
    itemLocks.unlock(heldHash & this.stripeMask);
    return removed;
  }

  /** Unlink a linked item while holding the lock of list `id`, its own. */
  private unlinkInList(ref: number, hash: number, id: number): void {
    this.index.remove(hash, ref);
    this.setIflags(ref, this.iflags(ref) & ~IF_LINKED);
    this.lruUnlinkLocked(ref, id);
    this.released(ref);
  }

  /** Observer for evictions (the `watch evictions` stream). */
  onEvict: ((ref: number) => void) | null = null;

  /** Count the eviction of linked item `ref` (about to be unlinked) on its class, as memcached. */
  countEviction(ref: number): void {
    const cls = this.classOf(ref);
    const f = this.iflags(ref);
    const c = this.counters;
    c.evicted[cls]++;
    c.evicted_time[cls] = this.clock.now - this.atime(ref);
    if (this.exptime(ref) !== 0) c.evicted_nonzero[cls]++;
    if ((f & IF_FETCHED) === 0) c.evicted_unfetched[cls]++;
    if ((f & IF_ACTIVE) !== 0) c.evicted_active[cls]++;
    this.onEvict?.(ref);
  }

  /** Set flush_all's state: items last used at or before `oldestLive` (and, with CAS, older than `oldestCas`) are gone. */
  setFlushState(oldestLive: number, oldestCas: number): void {
    this.flushState[0] = oldestLive;
    this.flushState[1] = oldestCas;
  }

  /** The first CAS handed out will be `first` (memcached 1.6.45 starts at 2). */
  startCasAt(first: number): void {
    this.casLock.lock(0);
    this.casCounter[0] = first - 1;
    this.casLock.unlock(0);
  }

}

/** Bytes before the key of an item whose word 0 is `word`. */
function headerBytes(word: number): number {
  return (word & CFLAGS_BIT) !== 0 ? ITEM_HEADER_BYTES + CLIENT_FLAGS_BYTES : ITEM_HEADER_BYTES;
}

/** Bytes of a chunked item's header chunk: header, key rounded up to 4, the chunk table. */
export function headerChunkBytes(nkey: number, chunks: number, flags: number): number {
  return ((ITEM_HEADER_BYTES + (flags !== 0 ? CLIENT_FLAGS_BYTES : 0) + nkey + 3) & ~3) + 4 * chunks;
}

/** Bytes of a header item with an `nkey`-byte key: header, key rounded up to 4, pointer. */
export function hdrItemBytes(nkey: number, flags: number): number {
  return ((ITEM_HEADER_BYTES + (flags !== 0 ? CLIENT_FLAGS_BYTES : 0) + nkey + 3) & ~3) + HDR_POINTER_BYTES;
}
