/**
 * Slab automover: memcached 1.6's `slab_automove=1` balancer (slab_automove.c), deciding
 * which page the page mover (src/store/mover.ts) moves next.
 *
 * Once a second it samples, per chunk class, whether the class evicted (and its share of all
 * evictions), ran out of memory or grew, and the age of its oldest COLD item, into a window
 * of `slab_automove_window` samples. Then:
 *   - a class holding more than 2.5 pages of free chunks, while all memory is allocated and
 *     nothing happened to it in the whole window, gives a page back to the global pool;
 *   - else, once the window has filled, the youngest class that evicted in more than half
 *     the samples (or took more than a quarter of the evictions) and evicted in the latest
 *     one takes a page from the class whose items are oldest on average (it must hold more
 *     than 2 pages), when the young age is below `slab_automove_ratio` times the old one.
 * So memory follows the item sizes in use instead of staying with whichever class filled
 * first, and memory freed by deletes, expiry and flush_all goes back where it is needed.
 *
 * Not for: moving pages (the mover), slab_automove=2 (the mover reacts to each eviction).
 */
import { COLD_LRU, type Items } from './items';
import { GLOBAL_POOL } from './slabs';

/** memcached's MIN_PAGES_FOR_SOURCE: a class giving a page keeps more than this many. */
const MIN_PAGES_FOR_SOURCE = 2;
/** memcached's MIN_PAGES_FOR_RECLAIM: free chunks, in pages, above which a class gives one back. */
const MIN_PAGES_FOR_RECLAIM = 2.5;

export interface AutomoveDecision {
  src: number;
  /** GLOBAL_POOL (0): the page goes back to the global pool. */
  dst: number;
}

export class SlabAutomover {
  private readonly classes: number;
  private readonly windowSize: number;
  /** Per class × window slot. */
  private readonly age: Float64Array;
  private readonly dirty: Uint8Array;
  private readonly evictedRatio: Float64Array;
  private readonly evictedSeen: Uint8Array;
  private readonly evictedBefore: Float64Array;
  private readonly oomBefore: Float64Array;
  private readonly pagesBefore: Float64Array;
  private windowCur = 0;

  constructor(private readonly items: Items, windowSize: number, private readonly ratio: () => number) {
    this.classes = items.slabs.largestClass + 1;
    this.windowSize = windowSize;
    const cells = this.classes * windowSize;
    this.age = new Float64Array(cells);
    this.dirty = new Uint8Array(cells);
    this.evictedRatio = new Float64Array(cells);
    this.evictedSeen = new Uint8Array(cells);
    this.evictedBefore = new Float64Array(this.classes);
    this.oomBefore = new Float64Array(this.classes);
    this.pagesBefore = new Float64Array(this.classes);
    this.snapshot();
  }

  /** The counters the next sample compares with (memcached's "before" structs). */
  private snapshot(): void {
    const items = this.items;
    const pages = this.items.slabs.pagesPerClass;
    for (let cls = 1; cls < this.classes; cls++) {
      this.evictedBefore[cls] = items.classTotal('evicted', cls);
      this.oomBefore[cls] = items.classTotal('outofmemory', cls);
      this.pagesBefore[cls] = pages[cls];
    }
  }

  /** One sample and decision. */
  run(): AutomoveDecision | null {
    const items = this.items;
    const slabs = items.slabs;
    const now = items.clock.now;
    const w = this.windowSize;
    const memoryFull = slabs.memoryFull;
    let evictedTotal = 0;
    for (let cls = 1; cls < this.classes; cls++) evictedTotal += items.classTotal('evicted', cls) - this.evictedBefore[cls];
    this.windowCur++;
    const slot = this.windowCur % w;

    let decision: AutomoveDecision | null = null;
    let oldest = -1;
    let oldestAge = 0;
    let youngest = -1;
    let youngestAge = Infinity;
    let youngestEvicting = false;
    for (let cls = 1; cls < this.classes; cls++) {
      const base = cls * w;
      const cell = base + slot;
      const evictedDelta = items.classTotal('evicted', cls) - this.evictedBefore[cls];
      this.evictedRatio[cell] = evictedDelta > 0 ? evictedDelta / evictedTotal : 0;
      this.evictedSeen[cell] = evictedDelta > 0 ? 1 : 0;
      this.dirty[cell] = evictedDelta > 0 || items.classTotal('outofmemory', cls) > this.oomBefore[cls] ||
        slabs.pagesPerClass[cls] > this.pagesBefore[cls] ? 1 : 0;
      const tail = items.lruTail[(cls << 2) | COLD_LRU];
      this.age[cell] = tail !== 0 ? now - items.atime(tail) : 0;

      let ageSum = 0;
      let dirtySum = 0;
      let ratioSum = 0;
      let seenSum = 0;
      for (let i = 0; i < w; i++) {
        ageSum += this.age[base + i];
        dirtySum += this.dirty[base + i];
        ratioSum += this.evictedRatio[base + i];
        seenSum += this.evictedSeen[base + i];
      }
      const age = ageSum / w;
      const pages = slabs.pagesPerClass[cls];
      const freeChunks = slabs.totalChunks(cls) - slabs.usedChunks[cls];
      if (freeChunks > slabs.perPage[cls] * MIN_PAGES_FOR_RECLAIM && memoryFull && dirtySum === 0) {
        decision = { src: cls, dst: GLOBAL_POOL };
        break;
      }
      if (age > oldestAge && pages > MIN_PAGES_FOR_SOURCE) {
        oldest = cls;
        oldestAge = age;
      }
      if (age < youngestAge && (seenSum > w / 2 || ratioSum / w > 0.25)) {
        youngest = cls;
        youngestAge = age;
        youngestEvicting = this.evictedSeen[cell] === 1;
      }
    }
    this.snapshot();
    if (decision !== null) return decision;
    if (youngest < 0 || oldest < 0 || this.windowCur <= w) return null;
    if (youngestAge < oldestAge * this.ratio() && youngestEvicting) return { src: oldest, dst: youngest };
    return null;
  }
}
