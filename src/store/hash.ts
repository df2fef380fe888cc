/**
 * Hash index: key → item reference, as memcached's assoc.c: a power-of-two array of bucket
 * heads, each the first item of a chain linked through the items themselves (their h_next
 * word, see src/store/items.ts). No JavaScript object per item; 4 bytes per bucket.
 *
 *   buckets: Uint32Array(2^hashPower)       item            item
 *   ┌─────┬─────┬─────┬───┐               ┌──────────┐     ┌──────────┐
 *   │  0  │ ref │  0  │...│ ─── bucket ──►│ h_next ──┼───► │ h_next=0 │
 *   └─────┴─────┴─────┴───┘               └──────────┘     └──────────┘
 *
 * Threads: the tables live in shared memory, in two areas reserved at startup for the
 * largest table the arena can need (address space only; a page of it becomes resident when
 * first written). A bucket is read and written only under the item lock of its low hash
 * bits (ItemLocks stripe = hash & stripeMask, stripeMask < bucket count), which the caller
 * holds. Growth is memcached's: when the items outnumber the buckets by half again, the
 * thread that runs background work (growIfNeeded, then migrate in steps) starts a table
 * twice the size in the other area and moves the old buckets over, each under its stripe's
 * lock. Old bucket i splits into new buckets i and i + oldSize, covered by the same stripe,
 * so a lookup holding its key's lock reads a stable answer to "has my bucket moved yet".
 *
 * The shape of the table (power, area, growing or not) is one 32-bit word, changed
 * atomically, so no reader sees half of a change. Starting a growth needs no lock: until
 * its bucket moves, the old table stays the one for every key.
 */

/**
 * 32-bit murmur3 of key bytes, as a signed 32-bit integer (V8 keeps an int32 as a small
 * integer; a uint32 above 2^31 returned from a call that is not inlined is a heap number,
 * allocated per call). Users mask the low bits or compare for equality, so the sign does not
 * matter. Keys are compared as bytes, never decoded.
 */
export function hashKey(b: Uint8Array, start: number, len: number): number {
  let h = 0x5bd1e995 ^ len;
  let i = start;
  const end4 = start + (len & ~3);
  for (; i < end4; i += 4) {
    let k = b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const rest = len & 3;
  if (rest !== 0) {
    let k = b[i];
    if (rest > 1) k |= b[i + 1] << 8;
    if (rest > 2) k |= b[i + 2] << 16;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
  }
  h ^= len;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

import type { Mutexes } from './locks';
import type { SharedMemory } from './shared';

/** Old buckets moved per migration step (each under its stripe's lock). */
const MIGRATE_PER_STEP = 4096;

// The shape word: bits 0-5 hash power, bit 6 the area of the current table, bit 7 growing.
const POWER_MASK = 0x3f;
const AREA_BIT = 0x40;
const GROWING_BIT = 0x80;
// Shared words.
const W_SHAPE = 0;
/** Old buckets below this have moved to the new table. */
const W_MIGRATED = 1;
const W_COUNT = 2;
/** The bucket part of a slot (see slotOf). */
const SLOT_MASK = (1 << 30) - 1;
/** Largest hash power: a bucket index must fit below bit 30 of a slot. */
export const HASH_POWER_LIMIT = 30;

/** What the index needs of the items it chains (src/store/items.ts supplies it). */
export interface ChainLinks {
  /** The next item in `ref`'s chain (0: none). */
  chainNext(ref: number): number;
  setChainNext(ref: number, next: number): void;
  /** Does the item at `ref` have this key? */
  keyEquals(ref: number, key: Uint8Array, start: number, len: number): boolean;
  /** The hash of the item's key (to split a chain when the table grows). */
  hashOf(ref: number): number;
}

export class HashIndex {
  private readonly areas: [Uint32Array, Uint32Array];
  private readonly state: Int32Array;
  /** Largest hash power the reserved areas hold. */
  readonly powerMax: number;
  /** Called when a growth has finished. */
  onGrowthDone: (() => void) | null = null;
  /**
   * No other thread attaches (SharedMemory.oneThread): lookups read the shape words with plain
   * loads, which V8 compiles inline, instead of Atomics.load, a builtin call (three or four per
   * request, in find, firstOf and insert); growth is then this thread's own work.
   */
  private readonly plainLoads: boolean;

  constructor(hashPowerInit: number, hashPowerMax: number, private readonly links: ChainLinks, mem: SharedMemory) {
    this.powerMax = Math.min(HASH_POWER_LIMIT, Math.max(hashPowerInit, hashPowerMax));
    const buckets = 2 ** this.powerMax;
    // In use (what a warm restart saves): the current table, and the old one while growing.
    const used = (area: number) => (): number => {
      const shape = Atomics.load(this.state, W_SHAPE);
      const power = shape & POWER_MASK;
      if (((shape & AREA_BIT) >>> 6) === area) return 4 * 2 ** power;
      return (shape & GROWING_BIT) !== 0 ? 4 * 2 ** (power - 1) : 0;
    };
    this.areas = [mem.uint32(buckets, { used: used(0) }), mem.uint32(buckets, { used: used(1) })];
    this.state = mem.int32(W_COUNT);
    this.plainLoads = mem.oneThread;
    if (!mem.attaching) Atomics.store(this.state, W_SHAPE, hashPowerInit);
  }

  /** memcached's `hash_power_level`. */
  get hashPower(): number {
    return Atomics.load(this.state, W_SHAPE) & POWER_MASK;
  }

  /** memcached's `hash_is_expanding`. */
  get expanding(): boolean {
    return (Atomics.load(this.state, W_SHAPE) & GROWING_BIT) !== 0;
  }

  /** Bytes used by the tables (memcached's `hash_bytes`). */
  get bytes(): number {
    const shape = Atomics.load(this.state, W_SHAPE);
    const size = 4 * 2 ** (shape & POWER_MASK);
    return (shape & GROWING_BIT) !== 0 ? size + size / 2 : size;
  }

  /**
   * Where `hash`'s chain starts: the area of its table in bit 30, the bucket below (the
   * caller holds the item lock of the hash, so the answer stays true while it works).
   */
  private slotOf(hash: number, plain = this.plainLoads): number {
    const state = this.state;
    const shape = plain ? state[W_SHAPE] : Atomics.load(state, W_SHAPE);
    const power = shape & POWER_MASK;
    const area = (shape & AREA_BIT) >>> 6;
    if ((shape & GROWING_BIT) !== 0) {
      const oldBucket = hash & ((1 << (power - 1)) - 1);
      const migrated = plain ? state[W_MIGRATED] : Atomics.load(state, W_MIGRATED);
      if (oldBucket >= migrated) return ((area ^ 1) << 30) | oldBucket;
    }
    return (area << 30) | (hash & ((1 << power) - 1));
  }

  find(hash: number, key: Uint8Array, start: number, len: number): number {
    const slot = this.slotOf(hash);
    const links = this.links;
    let ref = this.areas[slot >>> 30][slot & SLOT_MASK];
    while (ref !== 0) {
      if (links.keyEquals(ref, key, start, len)) return ref;
      ref = links.chainNext(ref);
    }
    return 0;
  }

  /**
   * The first entry of `hash`'s chain, read without the item lock: a prefetch's guess (the
   * chain may change before the caller looks again), never an answer. Always 0 or a real
   * item reference, since bucket words are written whole.
   */
  firstOf(hash: number): number {
    // Plain loads even with threads: a stale shape gives a wrong guess, which costs one
    // useless prefetch; Atomics.load is a builtin call.
    const slot = this.slotOf(hash, true);
    return this.areas[slot >>> 30][slot & SLOT_MASK];
  }

  /** Add an entry whose key is not present. */
  insert(hash: number, ref: number): void {
    const slot = this.slotOf(hash);
    const table = this.areas[slot >>> 30];
    const b = slot & SLOT_MASK;
    this.links.setChainNext(ref, table[b]);
    table[b] = ref;
  }

  /** Point the entry holding `oldRef` at `newRef` (same key), keeping its place in the chain. */
  replace(hash: number, oldRef: number, newRef: number): void {
    const slot = this.slotOf(hash);
    const table = this.areas[slot >>> 30];
    const b = slot & SLOT_MASK;
    const links = this.links;
    links.setChainNext(newRef, links.chainNext(oldRef));
    if (table[b] === oldRef) {
      table[b] = newRef;
      return;
    }
    for (let ref = table[b]; ref !== 0; ref = links.chainNext(ref)) {
      if (links.chainNext(ref) === oldRef) {
        links.setChainNext(ref, newRef);
        return;
      }
    }
    throw new Error('hash index: replace of a missing entry');
  }

  remove(hash: number, ref: number): void {
    const slot = this.slotOf(hash);
    const table = this.areas[slot >>> 30];
    const b = slot & SLOT_MASK;
    const links = this.links;
    const next = links.chainNext(ref);
    if (table[b] === ref) {
      table[b] = next;
      return;
    }
    for (let r = table[b]; r !== 0; r = links.chainNext(r)) {
      if (links.chainNext(r) === ref) {
        links.setChainNext(r, next);
        return;
      }
    }
    throw new Error('hash index: remove of a missing entry');
  }

  // ---------------------------------------------------------------- growth (one thread)

  /** Start growing when `items` outnumber the buckets by half again (memcached's rule). */
  growIfNeeded(items: number): boolean {
    const shape = Atomics.load(this.state, W_SHAPE);
    const power = shape & POWER_MASK;
    if ((shape & GROWING_BIT) !== 0 || power >= this.powerMax || items <= (2 ** power * 3) / 2) return false;
    const area = (shape & AREA_BIT) !== 0 ? 1 : 0;
    // The other area may still hold the table of two growths ago: clear what the new one uses.
    this.areas[area ^ 1].fill(0, 0, 2 ** (power + 1));
    Atomics.store(this.state, W_MIGRATED, 0);
    Atomics.store(this.state, W_SHAPE, (power + 1) | (area === 0 ? AREA_BIT : 0) | GROWING_BIT);
    return true;
  }

  /**
   * Move up to `count` old buckets to the new table, each under its stripe's lock (memcached's
   * assoc maintenance thread). Returns true while buckets are left to move.
   */
  migrate(locks: Mutexes, stripeMask: number, count = MIGRATE_PER_STEP): boolean {
    const shape = Atomics.load(this.state, W_SHAPE);
    if ((shape & GROWING_BIT) === 0) return false;
    const power = shape & POWER_MASK;
    const area = (shape & AREA_BIT) !== 0 ? 1 : 0;
    const table = this.areas[area];
    const old = this.areas[area ^ 1];
    const oldSize = 2 ** (power - 1);
    const links = this.links;
    let i = Atomics.load(this.state, W_MIGRATED);
    const end = Math.min(oldSize, i + count);
    for (; i < end; i++) {
      const stripe = i & stripeMask;
      locks.lock(stripe);
      let ref = old[i];
      old[i] = 0;
      // Rebuild the two new chains in order: walk the old chain, append at each tail.
      let lowTail = 0;
      let highTail = 0;
      while (ref !== 0) {
        const next = links.chainNext(ref);
        links.setChainNext(ref, 0);
        const high = (links.hashOf(ref) & oldSize) !== 0;
        const tail = high ? highTail : lowTail;
        if (tail === 0) table[high ? i + oldSize : i] = ref;
        else links.setChainNext(tail, ref);
        if (high) highTail = ref;
        else lowTail = ref;
        ref = next;
      }
      Atomics.store(this.state, W_MIGRATED, i + 1);
      locks.unlock(stripe);
    }
    if (end < oldSize) return true;
    Atomics.store(this.state, W_SHAPE, power | (area === 1 ? AREA_BIT : 0));
    this.onGrowthDone?.();
    return false;
  }
}

/** The hash power a table needs to hold `items` at memcached's load (1.5 per bucket). */
export function hashPowerFor(items: number): number {
  return Math.max(1, Math.ceil(Math.log2(Math.max(2, items / 1.5))));
}
