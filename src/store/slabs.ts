/**
 * Slab allocator: fixed-size chunks carved from 1 MiB pages, one chunk class per size, and a
 * global pool of free pages, as memcached 1.6's slabs.c.
 *
 * Goals: memory bounded by -m as memcached bounds it (a page is taken from the arena only
 * while the bytes handed out stay within the limit, except that a class holding no page at
 * all may take its first one beyond it, as memcached's do_slabs_newslab allows, so every item
 * size can be stored: at most one page per class over -m); pages carved lazily so untouched memory is never
 * resident; no JavaScript object per page or chunk; every piece of state in typed arrays, so
 * it can later live in memory shared by threads. Non-goals: knowing what an item is
 * (src/store/items.ts does), deciding which page moves where (src/store/mover.ts).
 *
 * Chunk classes are computed with memcached's formula (base = 48-byte item header + -n,
 * times -f, 8-byte aligned, until slab_chunk_max / f; the last class is slab_chunk_max), so
 * class numbers match memcached's `stats slabs` for the same flags. Class 0 is the global
 * page pool: pages no class holds, which any class takes before new memory.
 *
 * The arena: physical pages PAGE_STRIDE_BYTES apart, backed by SharedArrayBuffer segments of
 * SEGMENT_PAGES pages, all created at startup (the kernel commits a page of memory only when
 * it is first written). Physical page 0 is never used, so a reference of 0 means null:
 *
 *   ref = page << 17 | byteOffsetInPage >> 3                 page 1..PAGES_MAX
 *   segment = ref >>> 27     word in segment = (ref & 0x7ffffff) << 1
 *                            byte in segment = (ref & 0x7ffffff) << 3
 *
 * Every chunk starts with one 32-bit word whose low bits say what it is:
 *
 *   byte 0: kind (FREE=0, ITEM=1, DATA=2) in bits 0-1   byte 2: class id   byte 3: nkey
 *
 * so walkers (crawler, dumps, the page mover) can read any chunk of a page. A free chunk is
 * [FREE | class << 16][next free][prev free]: each class's free list is doubly linked, so the
 * page mover takes a chunk out of it in O(1).
 *
 * Threads: every array and counter lives in shared memory (src/store/shared.ts). Chunk and
 * page bookkeeping changes only under the slab lock, memcached's slabs_lock, taken by
 * alloc(), free() and the page operations; it is the innermost lock (doc/threads.md).
 */
import type { Mutexes } from './locks';
import type { SharedMemory } from './shared';

export const PAGE_OFFSET_BITS = 17;
/** Address space per physical page: pages are never larger (the offset has 17 bits of 8 bytes). */
export const PAGE_STRIDE_BYTES = 1 << (PAGE_OFFSET_BITS + 3);
/** Largest physical page number a 32-bit reference can hold (about 32 GiB of item memory). */
export const PAGES_MAX = (1 << (32 - PAGE_OFFSET_BITS)) - 1;
const SEGMENT_SHIFT = 27;
const SEGMENT_MASK = (1 << SEGMENT_SHIFT) - 1;
/** Pages per arena segment (1 GiB): a typed array never needs an index above 2^31. */
export const SEGMENT_PAGES = 1 << (SEGMENT_SHIFT + 3 - 20);
/** memcached's sizeof(item) on 64-bit; only used so class sizes match memcached's. */
export const MEMCACHED_ITEM_HEADER_BYTES = 48;
export const CHUNK_ALIGN_BYTES = 8;
export const CLASSES_MAX = 63;
/** memcached's SLAB_GLOBAL_PAGE_POOL. */
export const GLOBAL_POOL = 0;

// Shared scalars.
const S_RELEASED = 0;
const S_TOUCHED = 1;
const S_MALLOCED = 2;
const S_LIMIT = 3;
const S_LIMIT_REACHED = 4;
const S_COUNT = 5;

export const KIND_FREE = 0;
export const KIND_ITEM = 1;
export const KIND_DATA = 2;

export interface SlabOptions {
  memoryLimitBytes: number;
  pageBytes: number;
  chunkSizeBytes: number;
  growthFactor: number;
  slabChunkMaxBytes: number;
  /** Bytes counted as already allocated at start (memcached's T_MEMD_INITIAL_MALLOC test hook). */
  initialMallocBytes?: number;
  /**
   * Arena capacity in bytes: the most -m can become at runtime (cache_memlimit), plus one
   * page per class. Default: the larger of -m and 1 GiB, capped by PAGES_MAX pages.
   * Reserving costs address space only.
   */
  arenaBytes?: number;
}

export class SlabAllocator {
  readonly pageBytes: number;
  /** Chunk size per class; index 0 (the global pool) unused. */
  readonly classSize: number[] = [0];
  readonly perPage: number[] = [0];
  readonly largestClass: number;

  /** Arena segments: bytes and 32-bit words over the same memory. */
  readonly segU8: Buffer[] = [];
  readonly segU32: Uint32Array[] = [];
  /** A DataView over each segment, for word copies of values (src/bytes.ts). */
  readonly segView: DataView<ArrayBufferLike>[] = [];
  /** Physical pages the arena can hold (1..arenaPages). */
  readonly arenaPages: number;
  /** Called with each page before it is first used (-k locks it in RAM: src/platform/startup.ts). */
  onNewPage: ((page: Buffer) => void) | null = null;
  /** Called with a page given back to the system (cache_memlimit lowered): the addon may release it. */
  onReleasePage: ((page: Buffer) => void) | null = null;

  /** Class of each physical page (0: in the global pool or never used). */
  readonly pageClass: Uint8Array;
  /** Per-class page lists (class 0: the global pool), oldest first: memcached's slab_list. */
  private readonly pageNext: Int32Array;
  private readonly pagePrev: Int32Array;
  private readonly firstPage: Int32Array;
  private readonly lastPage: Int32Array;
  readonly pagesPerClass: Float64Array;
  /** Pages given back by a lowered limit, reused before fresh ones (a stack). */
  private readonly releasedPages: Int32Array;
  /** Shared scalars, indexed by S_*. */
  private readonly scalars: Float64Array;
  /** memcached's slabs_lock. */
  readonly lock: Mutexes;

  private get releasedCount(): number {
    return this.scalars[S_RELEASED];
  }
  private set releasedCount(v: number) {
    this.scalars[S_RELEASED] = v;
  }
  /** Highest physical page ever taken from the arena. */
  private get pagesTouched(): number {
    return this.scalars[S_TOUCHED];
  }
  private set pagesTouched(v: number) {
    this.scalars[S_TOUCHED] = v;
  }
  /** Bytes of pages handed out (memcached's mem_malloced). */
  get mallocedBytes(): number {
    return this.scalars[S_MALLOCED];
  }
  private set mallocedBytes(v: number) {
    this.scalars[S_MALLOCED] = v;
  }
  /** The limit (memcached's mem_limit). */
  get limitBytes(): number {
    return this.scalars[S_LIMIT];
  }
  private set limitBytes(v: number) {
    this.scalars[S_LIMIT] = v;
  }
  /** memcached's mem_limit_reached: a page was refused because of the limit. */
  get limitReached(): boolean {
    return this.scalars[S_LIMIT_REACHED] !== 0;
  }
  private set limitReached(v: boolean) {
    this.scalars[S_LIMIT_REACHED] = v ? 1 : 0;
  }

  /** Free list head per class, and the free chunks on it. */
  readonly freeHead: Uint32Array;
  readonly freeCount: Float64Array;
  /** The fresh page being carved per class (0 none) and the next offset to carve in it. */
  readonly carvePage: Int32Array;
  readonly carveOffset: Int32Array;
  readonly usedChunks: Float64Array;

  constructor(opts: SlabOptions, mem: SharedMemory) {
    if (opts.pageBytes > PAGE_STRIDE_BYTES) throw new Error('slab page larger than 1 MiB');
    this.pageBytes = opts.pageBytes;
    let size = MEMCACHED_ITEM_HEADER_BYTES + opts.chunkSizeBytes;
    let cls = 0;
    while (++cls < CLASSES_MAX) {
      if (size >= opts.slabChunkMaxBytes / opts.growthFactor) break;
      if (size % CHUNK_ALIGN_BYTES) size += CHUNK_ALIGN_BYTES - (size % CHUNK_ALIGN_BYTES);
      this.classSize[cls] = size;
      this.perPage[cls] = Math.floor(opts.pageBytes / size);
      size = Math.floor(size * opts.growthFactor);
    }
    this.largestClass = cls;
    this.classSize[cls] = opts.slabChunkMaxBytes;
    this.perPage[cls] = Math.floor(opts.pageBytes / opts.slabChunkMaxBytes);

    this.scalars = mem.float64(S_COUNT);
    this.lock = mem.mutexes(1);
    if (!mem.attaching) {
      this.mallocedBytes = opts.initialMallocBytes ?? 0;
      this.limitBytes = opts.memoryLimitBytes;
    }
    const arenaBytes = opts.arenaBytes ?? Math.max(opts.memoryLimitBytes, 1024 * 1024 * 1024);
    this.arenaPages = Math.max(1, Math.min(PAGES_MAX, Math.floor(arenaBytes / this.pageBytes) + CLASSES_MAX));
    for (let first = 0; first <= this.arenaPages; first += SEGMENT_PAGES) {
      const pages = Math.min(SEGMENT_PAGES, this.arenaPages + 1 - first);
      // In use: the pages up to the highest ever taken (a warm restart saves no more).
      const used = (): number => Math.max(0, Math.min(pages, this.pagesTouched + 1 - first)) * PAGE_STRIDE_BYTES;
      const sab = mem.buffer(pages * PAGE_STRIDE_BYTES, { used });
      this.segU8.push(Buffer.from(sab));
      this.segU32.push(new Uint32Array(sab));
      this.segView.push(new DataView(sab));
    }
    const n = cls + 1;
    const pageSlots = this.arenaPages + 1;
    this.pageClass = mem.uint8(pageSlots);
    this.pageNext = mem.int32(pageSlots);
    this.pagePrev = mem.int32(pageSlots);
    this.releasedPages = mem.int32(pageSlots);
    this.firstPage = mem.int32(n);
    this.lastPage = mem.int32(n);
    this.pagesPerClass = mem.float64(n);
    this.freeHead = mem.uint32(n);
    this.freeCount = mem.float64(n);
    this.carvePage = mem.int32(n);
    this.carveOffset = mem.int32(n);
    this.usedChunks = mem.float64(n);
  }

  // ---------------------------------------------------------------- addressing

  /** The segment bytes holding `ref` (use with byteOf). */
  u8Of(ref: number): Buffer {
    return this.segU8[ref >>> SEGMENT_SHIFT];
  }
  u32Of(ref: number): Uint32Array {
    return this.segU32[ref >>> SEGMENT_SHIFT];
  }
  /** A page of memory as its own Buffer (for -k locking and tests; never on the request path). */
  pageBuffer(page: number): Buffer {
    const seg = this.segU8[Math.floor(page / SEGMENT_PAGES)];
    const start = (page % SEGMENT_PAGES) * PAGE_STRIDE_BYTES;
    return seg.subarray(start, start + this.pageBytes);
  }
  /** The 32-bit words of a page and the index of its first word. */
  pageWords(page: number): Uint32Array {
    return this.segU32[Math.floor(page / SEGMENT_PAGES)];
  }
  pageWordBase(page: number): number {
    return (page % SEGMENT_PAGES) * (PAGE_STRIDE_BYTES >>> 2);
  }

  // ---------------------------------------------------------------- classes

  /** Smallest class whose chunks hold `bytes`, or 0 if none does. */
  classFor(bytes: number): number {
    const sizes = this.classSize;
    if (bytes > sizes[this.largestClass]) return 0;
    let lo = 1;
    let hi = this.largestClass;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sizes[mid] >= bytes) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  // ---------------------------------------------------------------- chunks

  /**
   * A chunk of class `cls`, or 0 when the class has no free chunk and no page can be had
   * (`newPage` false: only chunks already in the class, memcached's SLABS_ALLOC_NO_NEWPAGE).
   */
  alloc(cls: number, newPage = true): number {
    this.lock.lock(0);
    const ref = this.allocLocked(cls, newPage);
    this.lock.unlock(0);
    return ref;
  }

  private allocLocked(cls: number, newPage: boolean): number {
    let ref = this.freeHead[cls];
    if (ref !== 0) {
      this.unlinkFree(cls, ref);
    } else {
      ref = this.carve(cls, newPage);
      if (ref === 0) return 0;
    }
    this.usedChunks[cls]++;
    return ref;
  }

  private carve(cls: number, newPage: boolean): number {
    let page = this.carvePage[cls];
    if (page === 0) {
      if (!newPage || !this.grow(cls)) return 0;
      if (this.freeHead[cls] !== 0) {
        // The class got a used page (from the global pool): its chunks are on the free list.
        const ref = this.freeHead[cls];
        this.unlinkFree(cls, ref);
        return ref;
      }
      page = this.carvePage[cls];
    }
    const off = this.carveOffset[cls];
    const size = this.classSize[cls];
    const next = off + size;
    if (next + size > this.pageBytes) this.carvePage[cls] = 0;
    else this.carveOffset[cls] = next;
    return ((page << PAGE_OFFSET_BITS) | (off >>> 3)) >>> 0;
  }

  /**
   * memcached's slabs_preallocate (-L): a page of new memory for every class that has none,
   * within the limit (memcached takes them from its one -m sized chunk, so an -m below one
   * page per class cannot start). Returns false, having taken what fitted, when the limit is
   * too small.
   */
  preallocate(): boolean {
    this.lock.lock(0);
    try {
      for (let cls = 1; cls <= this.largestClass; cls++) {
        if (this.pagesPerClass[cls] !== 0) continue;
        if (this.mallocedBytes + this.pageBytes > this.limitBytes) return false;
        if (!this.grow(cls)) return false;
      }
      return true;
    } finally {
      this.lock.unlock(0);
    }
  }

  /**
   * memcached's slabs_prefill_global, done when extstore is on (its page balancing wants the
   * memory in the global pool): every page up to the limit goes to the pool now. Only the
   * books change: a page's memory is touched when a class takes it (unless `onNewPage`, -k,
   * locks it now, as memcached's malloc of all of -m does). The limit counts as reached.
   */
  prefillGlobal(): void {
    this.lock.lock(0);
    while (this.mallocedBytes + this.pageBytes <= this.limitBytes) {
      const page = this.freshPage(false);
      if (page === 0) break;
      this.pageClass[page] = GLOBAL_POOL;
      this.listAppend(GLOBAL_POOL, page);
    }
    this.limitReached = true;
    this.lock.unlock(0);
  }

  /** Pages a class could still be given: the global pool's, and new ones under the limit. */
  get pagesAvailable(): number {
    const fresh = this.limitReached ? 0 : Math.max(0, Math.floor((this.limitBytes - this.mallocedBytes) / this.pageBytes));
    return this.pagesPerClass[GLOBAL_POOL] + fresh;
  }

  /**
   * Give class `cls` one more page: from the global pool, else new memory within the limit
   * (or beyond it for the class's first page, as memcached).
   */
  private grow(cls: number): boolean {
    const pooled = this.firstPage[GLOBAL_POOL];
    if (pooled !== 0) {
      this.listRemove(GLOBAL_POOL, pooled);
      this.assignPage(pooled, cls);
      this.splitIntoFreeList(pooled, cls);
      return true;
    }
    const page = this.freshPage(this.pagesPerClass[cls] === 0);
    if (page === 0) return false;
    this.assignPage(page, cls);
    this.carvePage[cls] = page;
    this.carveOffset[cls] = 0;
    return true;
  }

  /** A page of memory not held by anyone, within the limit (unless `firstOfClass`), or 0. */
  private freshPage(firstOfClass: boolean): number {
    if (this.mallocedBytes + this.pageBytes > this.limitBytes && !firstOfClass) {
      this.limitReached = true;
      return 0;
    }
    let page: number;
    if (this.releasedCount > 0) {
      page = this.releasedPages[--this.releasedCount];
    } else {
      if (this.pagesTouched >= this.arenaPages) {
        this.limitReached = true;
        return 0;
      }
      page = ++this.pagesTouched;
    }
    this.mallocedBytes += this.pageBytes;
    this.onNewPage?.(this.pageBuffer(page));
    return page;
  }

  private assignPage(page: number, cls: number): void {
    this.pageClass[page] = cls;
    this.listAppend(cls, page);
  }

  /** Put every chunk of `page` on class `cls`'s free list (a used page changing hands). */
  private splitIntoFreeList(page: number, cls: number): void {
    const size = this.classSize[cls];
    const end = this.perPage[cls] * size;
    // Highest offset first, so the free list hands chunks out in address order.
    for (let off = end - size; off >= 0; off -= size) {
      this.linkFree(cls, ((page << PAGE_OFFSET_BITS) | (off >>> 3)) >>> 0);
    }
  }

  /** Is there a chunk of `cls` available without evicting? */
  hasFree(cls: number): boolean {
    return this.freeHead[cls] !== 0 || this.carvePage[cls] !== 0 || this.firstPage[GLOBAL_POOL] !== 0 ||
      this.mallocedBytes + this.pageBytes <= this.limitBytes || this.pagesPerClass[cls] === 0;
  }

  free(ref: number, cls: number): void {
    this.lock.lock(0);
    this.linkFree(cls, ref);
    this.usedChunks[cls]--;
    this.lock.unlock(0);
  }

  /** A chunk taken with alloc() that the caller gives up on without using (page mover). */
  forgetChunk(cls: number): void {
    this.lock.lock(0);
    this.usedChunks[cls]--;
    this.lock.unlock(0);
  }

  private linkFree(cls: number, ref: number): void {
    const u = this.segU32[ref >>> SEGMENT_SHIFT];
    const w = (ref & SEGMENT_MASK) << 1;
    const head = this.freeHead[cls];
    u[w] = KIND_FREE | (cls << 16);
    u[w + 1] = head;
    u[w + 2] = 0;
    if (head !== 0) this.segU32[head >>> SEGMENT_SHIFT][((head & SEGMENT_MASK) << 1) + 2] = ref;
    this.freeHead[cls] = ref;
    this.freeCount[cls]++;
  }

  /**
   * Take a free chunk of a page being moved out of its class's free list for good, marking
   * it `mark`; false (nothing done) when the chunk is not free (any more).
   */
  takeFreeChunk(cls: number, ref: number, mark: number): boolean {
    this.lock.lock(0);
    const u = this.segU32[ref >>> SEGMENT_SHIFT];
    const w = (ref & SEGMENT_MASK) << 1;
    const free = u[w] === (KIND_FREE | (cls << 16));
    if (free) {
      this.unlinkFree(cls, ref);
      u[w] = mark;
    }
    this.lock.unlock(0);
    return free;
  }

  /** Take a free chunk out of its class's free list (it stays marked free until written). */
  private unlinkFree(cls: number, ref: number): void {
    const u = this.segU32[ref >>> SEGMENT_SHIFT];
    const w = (ref & SEGMENT_MASK) << 1;
    const next = u[w + 1];
    const prev = u[w + 2];
    if (prev !== 0) this.segU32[prev >>> SEGMENT_SHIFT][((prev & SEGMENT_MASK) << 1) + 1] = next;
    else this.freeHead[cls] = next;
    if (next !== 0) this.segU32[next >>> SEGMENT_SHIFT][((next & SEGMENT_MASK) << 1) + 2] = prev;
    u[w + 1] = 0;
    u[w + 2] = 0;
    this.freeCount[cls]--;
  }

  // ---------------------------------------------------------------- pages

  /** The oldest page of a class (memcached moves slab_list[0]), or 0. */
  oldestPage(cls: number): number {
    return this.firstPage[cls];
  }

  /** Pages of `cls` in list order (stats, tests, walkers that need a snapshot). */
  pagesOf(cls: number): number[] {
    const out: number[] = [];
    for (let p = this.firstPage[cls]; p !== 0; p = this.pageNext[p]) out.push(p);
    return out;
  }

  /** Physical pages that have ever held chunks (walkers visit 1..highestPage). */
  get highestPage(): number {
    return this.pagesTouched;
  }

  /** Bytes of `page` that hold chunks of its class (a fresh page being carved holds fewer). */
  carvedBytes(page: number): number {
    const cls = this.pageClass[page];
    if (cls === GLOBAL_POOL) return 0;
    if (this.carvePage[cls] === page) return this.carveOffset[cls];
    return this.perPage[cls] * this.classSize[cls];
  }

  /**
   * Finish moving `page` (every chunk of it already taken out of the free list or otherwise
   * accounted for by the mover) from its class to class `to` (GLOBAL_POOL: the global pool).
   */
  finishPageMove(page: number, to: number): void {
    this.lock.lock(0);
    this.finishPageMoveLocked(page, to);
    this.lock.unlock(0);
  }

  private finishPageMoveLocked(page: number, to: number): void {
    const from = this.pageClass[page];
    this.listRemove(from, page);
    if (this.carvePage[from] === page) this.carvePage[from] = 0;
    if (to === GLOBAL_POOL) {
      // Only the first chunk header is cleared: a page in the pool is never walked.
      this.pageWords(page)[this.pageWordBase(page)] = 0;
      this.pageClass[page] = GLOBAL_POOL;
      this.listAppend(GLOBAL_POOL, page);
      this.limitReached = false;
      this.releaseOverLimit();
      return;
    }
    this.assignPage(page, to);
    this.splitIntoFreeList(page, to);
  }

  /**
   * Change the memory limit (cache_memlimit): pooled pages above a lowered limit go back.
   * False, with nothing changed, when the arena reserved at startup cannot hold that much.
   */
  setMemoryLimit(memoryBytes: number): boolean {
    if (Math.floor(memoryBytes / this.pageBytes) + CLASSES_MAX > this.arenaPages) return false;
    this.lock.lock(0);
    this.limitBytes = memoryBytes;
    this.limitReached = false;
    this.releaseOverLimit();
    this.lock.unlock(0);
    return true;
  }

  /** Stop carving `page` if it is its class's carve page (a page about to move). */
  stopCarving(page: number): void {
    this.lock.lock(0);
    const cls = this.pageClass[page];
    if (cls !== GLOBAL_POOL && this.carvePage[cls] === page) this.carvePage[cls] = 0;
    this.lock.unlock(0);
  }

  /** memcached's memory_release: free pooled pages while more is allocated than the limit. */
  private releaseOverLimit(): void {
    while (this.mallocedBytes > this.limitBytes) {
      const page = this.lastPage[GLOBAL_POOL];
      if (page === 0) return;
      this.listRemove(GLOBAL_POOL, page);
      this.releasedPages[this.releasedCount++] = page;
      this.mallocedBytes -= this.pageBytes;
      this.onReleasePage?.(this.pageBuffer(page));
    }
  }

  private listAppend(cls: number, page: number): void {
    const last = this.lastPage[cls];
    this.pagePrev[page] = last;
    this.pageNext[page] = 0;
    if (last !== 0) this.pageNext[last] = page;
    else this.firstPage[cls] = page;
    this.lastPage[cls] = page;
    this.pagesPerClass[cls]++;
  }

  private listRemove(cls: number, page: number): void {
    const prev = this.pagePrev[page];
    const next = this.pageNext[page];
    if (prev !== 0) this.pageNext[prev] = next;
    else this.firstPage[cls] = next;
    if (next !== 0) this.pagePrev[next] = prev;
    else this.lastPage[cls] = prev;
    this.pageNext[page] = 0;
    this.pagePrev[page] = 0;
    this.pagesPerClass[cls]--;
  }

  // ---------------------------------------------------------------- stats

  totalChunks(cls: number): number {
    return this.pagesPerClass[cls] * this.perPage[cls];
  }

  /** Pages in the global pool (memcached's slab_global_page_pool). */
  get globalPoolPages(): number {
    return this.pagesPerClass[GLOBAL_POOL];
  }

  /** Did the allocator hand out all the memory the limit allows? (memcached: mem_malloced >= mem_limit) */
  get memoryFull(): boolean {
    return this.mallocedBytes + this.pageBytes > this.limitBytes;
  }
}

export function refPage(ref: number): number {
  return ref >>> PAGE_OFFSET_BITS;
}

/** Byte offset of `ref` within its page. */
export function refOffset(ref: number): number {
  return (ref & 0x1ffff) << 3;
}

export function makeRef(page: number, offset: number): number {
  return ((page << PAGE_OFFSET_BITS) | (offset >>> 3)) >>> 0;
}

/** Byte offset of `ref` within its arena segment (with SlabAllocator.u8Of). */
export function byteOf(ref: number): number {
  return (ref & SEGMENT_MASK) << 3;
}

/** 32-bit word index of `ref` within its arena segment (with SlabAllocator.u32Of). */
export function wordOf(ref: number): number {
  return (ref & SEGMENT_MASK) << 1;
}
