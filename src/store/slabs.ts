/**
 * Slab allocator: fixed-size chunks carved from 1 MiB pages, one chunk class per size, as
 * memcached's slabs.c does.
 *
 * Goals: memory bounded exactly by -m (a page is only taken while pagesUsed < pagesMax);
 * pages allocated lazily and carved lazily so untouched memory is never resident; no
 * JavaScript object per chunk; pages backed by SharedArrayBuffer so worker threads can later
 * share them. Non-goals: knowing what an item is (src/store/items.ts does).
 *
 * Chunk classes are computed with memcached's formula (base = 48-byte item header + -n,
 * times -f, 8-byte aligned, until slab_chunk_max / f; the last class is slab_chunk_max), so
 * class numbers match memcached's `stats slabs` for the same flags.
 *
 * References: an item or chunk is named by a 32-bit reference
 *
 *   ref = (pageIndex + 1) << 17 | (byteOffset >> 3)        0 = null
 *
 * which needs byte offsets 8-aligned and pages of at most 1 MiB, and allows 32766 pages.
 *
 * Every chunk starts with one 32-bit word whose low byte says what it is:
 *
 *   byte 0: kind (FREE=0, ITEM=1, DATA=2)   byte 1: lru segment   byte 2: class id   byte 3: nkey
 *
 * so walkers (crawler, dump, page moves) can read any chunk in a page.
 */

export const PAGE_OFFSET_BITS = 17;
export const PAGES_MAX = (1 << (32 - PAGE_OFFSET_BITS)) - 2;
/** memcached's sizeof(item) on 64-bit; only used so class sizes match memcached's. */
export const MEMCACHED_ITEM_HEADER_BYTES = 48;
export const CHUNK_ALIGN_BYTES = 8;
export const CLASSES_MAX = 63;

export const KIND_FREE = 0;
export const KIND_ITEM = 1;
export const KIND_DATA = 2;

export interface SlabOptions {
  memoryLimitBytes: number;
  pageBytes: number;
  chunkSizeBytes: number;
  growthFactor: number;
  slabChunkMaxBytes: number;
}

export class SlabAllocator {
  readonly pageBytes: number;
  /** Chunk size per class; index 0 unused. */
  readonly classSize: number[] = [0];
  readonly perPage: number[] = [0];
  readonly largestClass: number;

  pages: Buffer[] = [];
  pageU32: Uint32Array[] = [];
  /** Called with each new page before it is used (-k locks it in RAM: src/platform/startup.ts). */
  onNewPage: ((page: Buffer) => void) | null = null;
  /** Class id of each page. */
  pageClass: Uint8Array;
  pagesMax: number;

  /** Free list head per class (chunks linked through word 1). */
  readonly freeHead: Uint32Array;
  readonly freeCount: Float64Array;
  /** Page being carved per class (-1 none) and the next offset to carve in it. */
  readonly carvePage: Int32Array;
  readonly carveOffset: Int32Array;
  readonly pagesPerClass: Float64Array;
  readonly usedChunks: Float64Array;

  constructor(opts: SlabOptions) {
    if (opts.pageBytes > 1 << (PAGE_OFFSET_BITS + 3)) throw new Error('slab page larger than 1 MiB');
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

    this.pagesMax = this.pagesFor(opts.memoryLimitBytes);
    const n = cls + 1;
    this.freeHead = new Uint32Array(n);
    this.freeCount = new Float64Array(n);
    this.carvePage = new Int32Array(n).fill(-1);
    this.carveOffset = new Int32Array(n);
    this.pagesPerClass = new Float64Array(n);
    this.usedChunks = new Float64Array(n);
    this.pageClass = new Uint8Array(Math.min(PAGES_MAX, this.pagesMax) + 1);
  }

  pagesFor(memoryBytes: number): number {
    return Math.min(PAGES_MAX, Math.floor(memoryBytes / this.pageBytes));
  }

  /** Change the memory limit (cache_memlimit). Pages already taken are kept. */
  setMemoryLimit(memoryBytes: number): void {
    this.pagesMax = this.pagesFor(memoryBytes);
    if (this.pageClass.length < this.pagesMax + 1) {
      const next = new Uint8Array(this.pagesMax + 1);
      next.set(this.pageClass);
      this.pageClass = next;
    }
  }

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

  /** A chunk of class `cls`, or 0 when the class has no free chunk and no page can be had. */
  alloc(cls: number): number {
    let ref = this.freeHead[cls];
    if (ref !== 0) {
      const page = (ref >>> PAGE_OFFSET_BITS) - 1;
      const w = (ref & 0x1ffff) << 1;
      this.freeHead[cls] = this.pageU32[page][w + 1];
      this.freeCount[cls]--;
    } else {
      ref = this.carve(cls);
      if (ref === 0) return 0;
    }
    this.usedChunks[cls]++;
    return ref;
  }

  private carve(cls: number): number {
    let page = this.carvePage[cls];
    if (page < 0 && this.resumeSpareCarve(cls)) page = this.carvePage[cls];
    if (page < 0) {
      if (!this.newPage(cls)) return 0;
      page = this.carvePage[cls];
    }
    const off = this.carveOffset[cls];
    const size = this.classSize[cls];
    const next = off + size;
    if (next + size > this.pageBytes) this.carvePage[cls] = -1;
    else this.carveOffset[cls] = next;
    return (((page + 1) << PAGE_OFFSET_BITS) | (off >>> 3)) >>> 0;
  }

  private resumeSpareCarve(cls: number): boolean {
    const spare = this.spareCarve;
    for (let i = 0; i < spare.length; i += 3) {
      if (spare[i + 2] === cls && this.pageClass[spare[i]] === cls) {
        this.carvePage[cls] = spare[i];
        this.carveOffset[cls] = spare[i + 1];
        spare.splice(i, 3);
        return true;
      }
    }
    return false;
  }

  private newPage(cls: number): boolean {
    if (this.pages.length >= this.pagesMax) return false;
    const page = this.pages.length;
    const buf = Buffer.from(new SharedArrayBuffer(this.pageBytes));
    this.onNewPage?.(buf);
    this.pages.push(buf);
    this.pageU32.push(new Uint32Array(buf.buffer, buf.byteOffset, this.pageBytes >>> 2));
    this.pageClass[page] = cls;
    this.pagesPerClass[cls]++;
    this.carvePage[cls] = page;
    this.carveOffset[cls] = 0;
    return true;
  }

  /** Is there a chunk of `cls` available without evicting? */
  hasFree(cls: number): boolean {
    return this.freeHead[cls] !== 0 || this.carvePage[cls] >= 0 || this.pages.length < this.pagesMax;
  }

  free(ref: number, cls: number): void {
    const page = (ref >>> PAGE_OFFSET_BITS) - 1;
    const w = (ref & 0x1ffff) << 1;
    const u32 = this.pageU32[page];
    u32[w] = KIND_FREE | (cls << 16);
    u32[w + 1] = this.freeHead[cls];
    this.freeHead[cls] = ref;
    this.freeCount[cls]++;
    this.usedChunks[cls]--;
  }

  /**
   * Move an evacuated page (every chunk free) to class `to`: drop its chunks from the old
   * class's free list, zero it so no stale chunk header survives, and carve it afresh.
   */
  movePage(page: number, to: number): void {
    const from = this.pageClass[page];
    const pageRef = page + 1;
    let prev = 0;
    let ref = this.freeHead[from];
    while (ref !== 0) {
      const next = this.pageU32[(ref >>> PAGE_OFFSET_BITS) - 1][((ref & 0x1ffff) << 1) + 1];
      if (ref >>> PAGE_OFFSET_BITS === pageRef) {
        if (prev === 0) this.freeHead[from] = next;
        else this.pageU32[(prev >>> PAGE_OFFSET_BITS) - 1][((prev & 0x1ffff) << 1) + 1] = next;
        this.freeCount[from]--;
      } else {
        prev = ref;
      }
      ref = next;
    }
    if (this.carvePage[from] === page) this.carvePage[from] = -1;
    this.pagesPerClass[from]--;
    this.pages[page].fill(0);
    this.pageClass[page] = to;
    this.pagesPerClass[to]++;
    // The class's current carve page (if any) keeps its place; this page is carved next.
    if (this.carvePage[to] >= 0) this.spareCarve.push(this.carvePage[to], this.carveOffset[to], to);
    this.carvePage[to] = page;
    this.carveOffset[to] = 0;
  }

  /** Partly carved pages set aside by movePage, as (page, offset, class) triples. */
  private readonly spareCarve: number[] = [];

  /** Chunks never carved in the class's current page (memcached's free_chunks_end). */
  uncarvedChunks(cls: number): number {
    const page = this.carvePage[cls];
    if (page < 0) return 0;
    return Math.floor((this.pageBytes - this.carveOffset[cls]) / this.classSize[cls]);
  }

  totalChunks(cls: number): number {
    return this.pagesPerClass[cls] * this.perPage[cls];
  }

  get bytesMalloced(): number {
    return this.pages.length * this.pageBytes;
  }
}

export function refPage(ref: number): number {
  return (ref >>> PAGE_OFFSET_BITS) - 1;
}

/** Byte offset of `ref` within its page. */
export function refOffset(ref: number): number {
  return (ref & 0x1ffff) << 3;
}

export function makeRef(page: number, offset: number): number {
  return (((page + 1) << PAGE_OFFSET_BITS) | (offset >>> 3)) >>> 0;
}
