/**
 * Slab automover: memcached's `slab_automove=1` balancer. Once a second it samples, per chunk
 * class, whether the class evicted (or ran out of memory) and the age of its oldest COLD item.
 * Over a window of `slab_automove_window` samples, the youngest class that evicted in more than
 * half the samples (and evicted in the latest one) takes a page from the class whose items are
 * oldest on average (it must hold at least MIN_PAGES_FOR_SOURCE pages), when the young age is
 * below `slab_automove_ratio` times the old one. So memory follows the item sizes in use,
 * instead of staying with whichever class filled first.
 *
 * Not for: moving the page itself (Items.movePageBetween) or the inline move a class with no
 * memory at all gets on allocation (Items.reassignPageTo).
 */
import { COLD_LRU, type Items } from './items';

/** memcached keeps at least this many pages in a class it takes pages from. */
const MIN_PAGES_FOR_SOURCE = 2;

export class SlabAutomover {
  private readonly classes: number;
  /** Per class × window slot: evicted in that sample (0/1) and the COLD age then. */
  private readonly evicted: Uint8Array;
  private readonly age: Float64Array;
  private readonly evictedBefore: Float64Array;
  private readonly oomBefore: Float64Array;
  private readonly pagesBefore: Float64Array;
  private samples = 0;
  moves = 0;

  constructor(private readonly items: Items, private readonly windowSize: number, private readonly ratio: () => number) {
    this.classes = items.slabs.largestClass + 1;
    this.evicted = new Uint8Array(this.classes * windowSize);
    this.age = new Float64Array(this.classes * windowSize);
    this.evictedBefore = new Float64Array(this.classes);
    this.oomBefore = new Float64Array(this.classes);
    this.pagesBefore = new Float64Array(this.classes);
  }

  /** One sample (call once a second). Returns true when it moved a page. */
  sample(): boolean {
    const items = this.items;
    const slabs = items.slabs;
    const now = items.clock.now;
    const w = this.windowSize;
    const slot = this.samples % w;
    this.samples++;
    let youngest = -1;
    let youngestAge = Infinity;
    let youngestEvicting = false;
    let oldest = -1;
    let oldestAge = 0;
    for (let cls = 1; cls < this.classes; cls++) {
      const evicted = items.counters.evicted[cls];
      const oom = items.counters.outofmemory[cls];
      const evictedNow = evicted > this.evictedBefore[cls] || oom > this.oomBefore[cls] ? 1 : 0;
      this.evictedBefore[cls] = evicted;
      this.oomBefore[cls] = oom;
      this.pagesBefore[cls] = slabs.pagesPerClass[cls];
      const tail = items.lruTail[(cls << 2) | COLD_LRU];
      const base = cls * w;
      this.evicted[base + slot] = evictedNow;
      this.age[base + slot] = tail !== 0 ? now - items.atime(tail) : 0;
      let evictedSamples = 0;
      let ageSum = 0;
      for (let i = 0; i < w; i++) {
        evictedSamples += this.evicted[base + i];
        ageSum += this.age[base + i];
      }
      const age = ageSum / w;
      if (age > oldestAge && slabs.pagesPerClass[cls] > MIN_PAGES_FOR_SOURCE) {
        oldest = cls;
        oldestAge = age;
      }
      if (age < youngestAge && evictedSamples > w / 2) {
        youngest = cls;
        youngestAge = age;
        youngestEvicting = evictedNow === 1;
      }
    }
    if (this.samples < w) return false; // decide only once the window has filled
    if (youngest < 0 || oldest < 0 || youngest === oldest || !youngestEvicting) return false;
    if (!(youngestAge < oldestAge * this.ratio())) return false;
    if (!items.movePageBetween(oldest, youngest)) return false;
    this.moves++;
    return true;
  }
}
