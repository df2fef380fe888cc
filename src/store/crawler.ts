/**
 * LRU crawler: finds expired and flushed items in the background and reclaims them, as
 * memcached's crawler thread does, and walks items for `lru_crawler metadump`.
 *
 * It walks slab pages rather than LRU lists: a (page, offset) cursor stays valid while items
 * come and go, so a crawl can pause between batches without pinning anything. Every chunk
 * says what it is in its first byte (see slabs.ts).
 */
import { IF_LINKED, Items } from './items';
import { GLOBAL_POOL, KIND_ITEM, makeRef } from './slabs';

/** Chunks examined per batch before yielding to the event loop. */
const CHUNKS_PER_BATCH = 4096;

export class Crawler {
  enabled: boolean;
  running = false;
  starts = 0;
  sleepMicros: number;
  toCrawl: number;
  private classes: Uint8Array | null = null;
  private page = 0;
  private offset = 0;
  private checkedThisRun: Float64Array;
  private timer: NodeJS.Timeout | null = null;
  private autoTimer: NodeJS.Timeout | null = null;

  constructor(private readonly items: Items, enabled: boolean, sleepMicros: number, toCrawl: number) {
    this.enabled = enabled;
    this.sleepMicros = sleepMicros;
    this.toCrawl = toCrawl;
    this.checkedThisRun = new Float64Array(items.slabs.largestClass + 1);
  }

  /** Periodic crawl of every class (memcached's autocrawler, simplified to a fixed period). */
  startAuto(periodSeconds: number): void {
    if (this.autoTimer) return;
    this.autoTimer = setInterval(() => {
      if (this.enabled && !this.running) this.crawl(null);
    }, periodSeconds * 1000);
    this.autoTimer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.autoTimer) clearInterval(this.autoTimer);
    this.timer = null;
    this.autoTimer = null;
    this.running = false;
  }

  /**
   * Parse memcached's class list argument: "all" or comma-separated ids.
   * Returns null for all, a mask of classes, or 'bad' for an invalid id.
   */
  parseClasses(arg: string): Uint8Array | null | 'bad' {
    if (arg === 'all') return null;
    const mask = new Uint8Array(this.items.slabs.largestClass + 1);
    for (const part of arg.split(',')) {
      const id = Number(part);
      if (!/^\d+$/.test(part) || id < 1 || id > this.items.slabs.largestClass) return 'bad';
      mask[id] = 1;
    }
    return mask;
  }

  /** Start a reclaiming crawl. Returns false if one is already running. */
  crawl(classes: Uint8Array | null): boolean {
    if (this.running) return false;
    this.running = true;
    this.starts++;
    this.classes = classes;
    this.page = 1;
    this.offset = 0;
    this.checkedThisRun.fill(0);
    this.schedule();
    return true;
  }

  private schedule(): void {
    this.timer = setTimeout(() => this.batch(), Math.max(0, Math.floor(this.sleepMicros / 1000)));
    this.timer.unref();
  }

  private batch(): void {
    this.timer = null;
    if (!this.running) return;
    const items = this.items;
    items.clock.tick();
    let budget = CHUNKS_PER_BATCH;
    const slabs = items.slabs;
    while (budget > 0 && this.page <= slabs.highestPage) {
      const cls = slabs.pageClass[this.page];
      if (cls === GLOBAL_POOL || (this.classes !== null && this.classes[cls] === 0)) {
        this.nextPage();
        continue;
      }
      const size = slabs.classSize[cls];
      const u32 = slabs.pageWords(this.page);
      const base = slabs.pageWordBase(this.page);
      const end = slabs.carvedBytes(this.page);
      while (budget > 0 && this.offset < end) {
        const word = u32[base + (this.offset >>> 2)];
        // Counted on the item's own class: a large item's header sits in a small class's page.
        const itemCls = (word >>> 16) & 0xff;
        if ((word & 3) === KIND_ITEM && (word & IF_LINKED) !== 0 && this.underQuota(itemCls)) {
          this.check(makeRef(this.page, this.offset), itemCls);
        }
        this.offset += size;
        budget--;
      }
      if (this.offset >= end) this.nextPage();
    }
    if (this.page > slabs.highestPage) {
      this.running = false;
      return;
    }
    this.schedule();
  }

  private underQuota(cls: number): boolean {
    return this.toCrawl === 0 || this.checkedThisRun[cls] < this.toCrawl;
  }

  private nextPage(): void {
    this.page++;
    this.offset = 0;
  }

  private check(ref: number, cls: number): void {
    const items = this.items;
    this.checkedThisRun[cls]++;
    items.counters.crawler_items_checked[cls]++;
    // Another thread may be using the item: take its lock as memcached's crawler does (trylock;
    // a busy item is left for the next pass), then make sure it is still the linked item whose
    // hash chose that lock.
    const hash = items.hashOf(ref);
    const stripe = items.stripeOf(hash);
    if (!items.itemLocks.tryLock(stripe)) return;
    try {
      if (!items.isLinkedWithHash(ref, hash) || !items.isDead(ref)) return;
      items.counters.crawler_reclaimed[cls]++;
      items.counters.reclaimed[cls]++;
      items.unlink(ref, hash);
    } finally {
      items.itemLocks.unlock(stripe);
    }
  }
}

/** Visit every linked item (optionally of some classes). Synchronous; for dumps and stats. */
export function forEachItem(items: Items, classes: Uint8Array | null, visit: (ref: number, cls: number) => void): void {
  const slabs = items.slabs;
  for (let page = 1; page <= slabs.highestPage; page++) {
    const cls = slabs.pageClass[page];
    if (cls === GLOBAL_POOL || (classes !== null && classes[cls] === 0)) continue;
    const size = slabs.classSize[cls];
    const u32 = slabs.pageWords(page);
    const base = slabs.pageWordBase(page);
    const end = slabs.carvedBytes(page);
    for (let off = 0; off < end; off += size) {
      const word = u32[base + (off >>> 2)];
      if ((word & 3) === KIND_ITEM && (word & IF_LINKED) !== 0) visit(makeRef(page, off), (word >>> 16) & 0xff);
    }
  }
}
