/**
 * Page mover: takes a slab page away from one class and gives it to another class or to the
 * global page pool, as memcached 1.6's slab rebalancer (slabs_mover.c).
 *
 * Goals: a page changes hands without losing what lives in it. Each chunk of the page is
 * dealt with in place: a free chunk leaves its free list; an expired or flushed item is
 * unlinked; a live item (or a data chunk of a large item) is copied into a free chunk of the
 * same class elsewhere and everything that pointed at it is pointed at the copy ("rescue",
 * keeping its CAS and LRU place). When the class has no free chunk outside the page, the
 * class's LRU tail is evicted to make one, if evictions are allowed for this move (memory
 * full and the global pool empty, or a manual `slabs reassign`). A chunk in use by a
 * connection (a value being uploaded, an item pinned by a command) makes the page busy: the
 * move is retried later, from where it stopped.
 *
 * Not for: deciding what moves where (src/store/automove.ts, the `slabs reassign` command),
 * or page and free-list bookkeeping (src/store/slabs.ts).
 *
 * A chunk the mover has dealt with is marked MOVED (a free-kind word with bit 2 set), so a
 * retry skips it and walkers never mistake it for an item.
 */
import { type Items, type PageMover } from './items';
import { COLD_LRU, HOT_LRU } from './items';
import { GLOBAL_POOL, KIND_DATA, KIND_FREE, KIND_ITEM, makeRef, refPage, wordOf, type SlabAllocator } from './slabs';

/** Marks a chunk the mover is done with. */
const MOVED = KIND_FREE | 0x4;
/** Evictions tried per chunk that needs a home, as memcached's slab_rebalance_prep. */
const EVICT_TRIES = 10;
/** After this many busy passes over a page, a move started before memory was full may evict. */
const BUSY_LOOPS_BEFORE_EVICTING = 50;

/** memcached's reassign_result_type; the `slabs reassign` replies are the protocol's. */
export const enum ReassignResult {
  Ok = 0,
  Running = 1,
  BadClass = 2,
  NoSpare = 3,
  SrcDstSame = 4,
}

/** Why the last busy chunk was busy (memcached's slab_reassign_last_busy_status). */
const enum Busy {
  None = 0,
  /** An item allocated but not linked: a value being uploaded. */
  Floating = 1,
  /** A linked item a command holds (pinned). */
  Active = 2,
  /** No free chunk to rescue into and evictions not allowed. */
  NoMemory = 3,
  /** Another thread holds the item's lock. */
  Locked = 4,
}
/** As memcached names them; a chunk waiting for memory keeps the status of a live item ("from_lru"). */
const BUSY_TEXT = ['none', 'busy_floating', 'busy_active', 'from_lru', 'locked'];

export class SlabMover implements PageMover {
  // memcached's counters (stats: slabs_moved, slab_reassign_*)
  slabsMoved = 0;
  rescues = 0;
  chunkRescues = 0;
  inlineReclaim = 0;
  busyItems = 0;
  busyDeletes = 0;
  busyNomem = 0;
  private lastBusy = Busy.None;

  // the move in progress (page 0: none)
  private src = 0;
  private dst = 0;
  private page = 0;
  private carvedEnd = 0;
  private allowEvictions = false;
  private busyLoops = 0;
  /** slab_automove=2: a class that evicted and wants a page, moved on the next step. */
  private wantedBy = 0;

  private readonly slabs: SlabAllocator;

  constructor(
    private readonly items: Items,
    /** slab_reassign: pages may move at all. */
    private readonly enabled: () => boolean,
    /** The slab_automove mode (0, 1 or 2). */
    private readonly automoveMode: () => number,
  ) {
    this.slabs = items.slabs;
    items.mover = this;
  }

  /** memcached's slab_reassign_running. */
  get running(): boolean {
    return this.page !== 0;
  }

  get lastBusyStatus(): string {
    return BUSY_TEXT[this.lastBusy];
  }

  /**
   * memcached's slabs_reassign: move the oldest page of `src` (-1: any class with a page to
   * spare) to `dst` (0: the global pool). The move runs at once; if a chunk is busy it
   * finishes in later step() calls.
   */
  reassign(src: number, dst: number, allowEvictions: boolean): ReassignResult {
    if (this.running) return ReassignResult.Running;
    if (src === dst) return ReassignResult.SrcDstSame;
    if (src === -1) src = this.pickAny(dst);
    const largest = this.slabs.largestClass;
    if (src < GLOBAL_POOL || src > largest || dst < GLOBAL_POOL || dst > largest) return ReassignResult.BadClass;
    if (this.slabs.pagesPerClass[src] < 2) return ReassignResult.NoSpare;
    this.start(src, dst, allowEvictions);
    this.run();
    return ReassignResult.Ok;
  }

  /** memcached's slabs_pick_any_for_reassign: the next class after the last pick with pages to spare. */
  private pickCursor = 0;
  private pickAny(dst: number): number {
    const largest = this.slabs.largestClass;
    for (let tries = largest; tries > 0; tries--) {
      this.pickCursor = this.pickCursor >= largest ? 1 : this.pickCursor + 1;
      if (this.pickCursor !== dst && this.slabs.pagesPerClass[this.pickCursor] > 1) return this.pickCursor;
    }
    return -1;
  }

  private start(src: number, dst: number, allowEvictions: boolean): void {
    const slabs = this.slabs;
    this.src = src;
    this.dst = dst;
    this.page = slabs.oldestPage(src);
    this.busyLoops = 0;
    this.allowEvictions = allowEvictions || (slabs.memoryFull && slabs.globalPoolPages === 0);
    this.carvedEnd = slabs.carvedBytes(this.page);
    // A page being carved stops being carved: what was never carved holds nothing.
    slabs.stopCarving(this.page);
  }

  /** Work on the move in progress, if any (the LRU maintainer calls this). */
  step(): void {
    if (this.running) {
      this.run();
      return;
    }
    const cls = this.wantedBy;
    this.wantedBy = 0;
    if (cls !== 0 && this.automoveMode() === 2 && this.enabled()) this.reassign(-1, cls, true);
  }

  /**
   * Go over the page until it is clear or a pass makes no progress (memcached's mover thread
   * loops over a busy page the same way, with a pause between passes). Returns the chunks
   * still busy: 0 when the page has moved.
   */
  private run(): number {
    let busy = 0;
    for (let previous = Infinity; this.src !== GLOBAL_POOL; previous = busy) {
      busy = this.clearPage();
      this.busyItems += busy;
      if (busy === 0 || busy >= previous) break;
      this.busyLoops++;
    }
    if (busy > 0) {
      this.busyLoops++;
      if (!this.allowEvictions && this.busyLoops > BUSY_LOOPS_BEFORE_EVICTING && this.slabs.memoryFull) {
        this.allowEvictions = true;
      }
      return busy;
    }
    if (this.spare !== 0) this.slabs.free(this.spare, this.src);
    this.spare = 0;
    this.slabs.finishPageMove(this.page, this.dst);
    this.slabsMoved++;
    this.page = 0;
    this.src = 0;
    this.dst = 0;
    return 0;
  }

  /**
   * Deal with every chunk of the page; returns how many are busy. As memcached's mover loop:
   * before each chunk a spare chunk to rescue into is made ready if there is none (prep),
   * then the chunk is dealt with, using the spare if it holds a live item.
   */
  private clearPage(): number {
    const slabs = this.slabs;
    const items = this.items;
    const cls = this.src;
    const page = this.page;
    const size = slabs.classSize[cls];
    const u = slabs.pageWords(page);
    const base = slabs.pageWordBase(page);
    let busy = 0;
    for (let off = 0; off < this.carvedEnd; off += size) {
      const w = base + (off >>> 2);
      const word = u[w];
      if (word === MOVED) continue;
      if (this.spare === 0) this.spare = this.prepare(cls, page);
      const ref = makeRef(page, off);
      // Re-read: making a spare may have evicted (and freed) this very chunk.
      const now = u[w];
      const kind = now & 3;
      if (kind === KIND_FREE) {
        if (now !== MOVED && !this.takeFree(cls, ref)) busy++;
        continue;
      }
      if (kind !== KIND_ITEM && kind !== KIND_DATA) continue;
      const owner = kind === KIND_DATA ? u[w + 1] : ref;
      if (items.isBusy(owner)) {
        this.lastBusy = items.isLinked(owner) ? Busy.Active : Busy.Floating;
        busy++;
        continue;
      }
      // As memcached's mover: the item's lock by trylock; a thread working on it makes it busy.
      const hash = items.hashOf(owner);
      const stripe = items.stripeOf(hash);
      if (!items.itemLocks.tryLock(stripe)) {
        this.lastBusy = Busy.Locked;
        busy++;
        continue;
      }
      // Another thread may have freed the item (and the chunk been taken again) between the
      // reads above and the lock: go on only if it is still the linked item whose hash chose
      // the lock; otherwise look at the chunk again on the next pass.
      if (u[w] !== now || (kind === KIND_DATA && u[w + 1] !== owner) || !items.isLinked(owner) ||
        items.hashOf(owner) !== hash) {
        items.itemLocks.unlock(stripe);
        this.lastBusy = Busy.Locked;
        busy++;
        continue;
      }
      if (items.isDead(owner)) {
        items.unlink(owner, hash);
        items.itemLocks.unlock(stripe);
        if (!this.takeFree(cls, ref)) busy++;
        continue;
      }
      if (this.spare === 0) {
        items.itemLocks.unlock(stripe);
        this.busyNomem++;
        this.lastBusy = Busy.NoMemory;
        busy++;
        continue;
      }
      items.relocate(ref, this.spare, size);
      items.itemLocks.unlock(stripe);
      this.spare = 0;
      slabs.forgetChunk(cls);
      u[w] = MOVED;
      if (kind === KIND_DATA) this.chunkRescues++;
      else this.rescues++;
    }
    return busy;
  }

  /** A chunk taken to rescue an item into, not used yet (memcached's new_it). */
  private spare = 0;

  /** A free chunk of the page leaves the free list for good. */
  /** False: another thread took the chunk meanwhile (look at it again on the next pass). */
  private takeFree(cls: number, ref: number): boolean {
    return this.slabs.takeFreeChunk(cls, ref, MOVED);
  }

  /**
   * A free chunk of `cls` outside `page` to rescue into (memcached's slab_rebalance_prep):
   * free chunks of the page itself met on the way are taken out for good ("inline
   * reclaim"). When there is none and evictions are allowed, the class's LRU tail makes
   * room; after many busy passes while memory is not yet full, a new page may be taken.
   */
  private prepare(cls: number, page: number): number {
    const slabs = this.slabs;
    const stuck = this.busyLoops > BUSY_LOOPS_BEFORE_EVICTING;
    let ref = this.popOutside(cls, page, stuck && !slabs.memoryFull);
    if (ref !== 0 || !this.allowEvictions) return ref;
    for (let attempt = 0; attempt < EVICT_TRIES && ref === 0; attempt++) {
      if (this.items.pullTail(cls, COLD_LRU, 0, true) <= 0 && this.items.opts.lruSegmented) {
        this.items.pullTail(cls, HOT_LRU, 0, false);
      }
      ref = this.popOutside(cls, page, false);
    }
    return ref;
  }

  private popOutside(cls: number, page: number, newPage: boolean): number {
    const slabs = this.slabs;
    for (;;) {
      const ref = slabs.alloc(cls, newPage);
      if (ref === 0) return 0;
      if (refPage(ref) !== page) {
        // Held until used: marked as an item being filled, which walkers leave alone.
        slabs.u32Of(ref)[wordOf(ref)] = KIND_ITEM | (cls << 16);
        return ref;
      }
      slabs.forgetChunk(cls);
      slabs.pageWords(page)[slabs.pageWordBase(page) + ((ref & 0x1ffff) << 1)] = MOVED;
      this.inlineReclaim++;
    }
  }

  // ---------------------------------------------------------------- PageMover (items' side)

  evicted(cls: number): void {
    if (this.automoveMode() === 2 && !this.running) this.wantedBy = cls;
  }

  /**
   * Move `page` to class `to` by emptying it: each live item is offered to `keep` first
   * (the extstore tier writes it to disk and relinks a header later; true means it kept a
   * copy), else evicted. For the extstore tier's header classes, which grow by taking value
   * pages. False, with nothing changed, when something in the page is busy.
   */
  evacuate(page: number, to: number, keep: (ref: number) => boolean, onEvict: (ref: number) => void): boolean {
    if (this.running) return false;
    const slabs = this.slabs;
    const items = this.items;
    const cls = slabs.pageClass[page];
    const size = slabs.classSize[cls];
    const end = slabs.carvedBytes(page);
    const u = slabs.pageWords(page);
    const base = slabs.pageWordBase(page);
    for (let off = 0; off < end; off += size) {
      const word = u[base + (off >>> 2)];
      if ((word & 3) === KIND_ITEM && items.isBusy(makeRef(page, off))) return false;
      if ((word & 3) === KIND_DATA && items.isBusy(u[base + (off >>> 2) + 1])) return false;
    }
    slabs.stopCarving(page);
    for (let off = 0; off < end; off += size) {
      const w = base + (off >>> 2);
      const ref = makeRef(page, off);
      let word = u[w];
      if ((word & 3) === KIND_ITEM || (word & 3) === KIND_DATA) {
        const owner = (word & 3) === KIND_DATA ? u[w + 1] : ref;
        if (!items.isDead(owner) && !keep(owner)) onEvict(owner);
        items.unlink(owner, items.hashOf(owner));
        word = u[w];
      }
      if (word !== MOVED) this.takeFree(cls, ref);
    }
    slabs.finishPageMove(page, to);
    this.slabsMoved++;
    return true;
  }
}
