/**
 * Hash index: key → item reference, as memcached's assoc.c: a power-of-two array of bucket
 * heads, each the first item of a chain linked through the items themselves (their h_next
 * word, see src/store/items.ts). No JavaScript object per item; 4 bytes per bucket.
 *
 * Growth is memcached's: when the items outnumber the buckets by half again, a table twice
 * the size is made and the old buckets are moved over a bounded number at a time (on each
 * insert, and from an idle task), never in one stall. A bucket below `migrated` has moved;
 * lookups read the new table for those and the old one for the rest. An old bucket i splits
 * into new buckets i and i + oldSize, so whatever locks a key's old bucket (its hash's low
 * bits) also covers both new ones: the item locks of the threaded store stay valid during a
 * growth.
 *
 *   buckets: Uint32Array(2^hashPower)       item            item
 *   ┌─────┬─────┬─────┬───┐               ┌──────────┐     ┌──────────┐
 *   │  0  │ ref │  0  │...│ ─── bucket ──►│ h_next ──┼───► │ h_next=0 │
 *   └─────┴─────┴─────┴───┘               └──────────┘     └──────────┘
 */

/** 32-bit murmur3 of key bytes; keys are compared as bytes, never decoded. */
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
  h ^= h >>> 16;
  return h >>> 0;
}

/** Old buckets moved per insert while growing, and per idle task. */
const MIGRATE_PER_INSERT = 8;
const MIGRATE_PER_TASK = 16384;

/** What the index needs of the items it chains (src/store/items.ts supplies it). */
export interface ChainLinks {
  /** The next item in `ref`'s chain (0: none). */
  chainNext(ref: number): number;
  setChainNext(ref: number, next: number): void;
  /** Does the item at `ref` have this key? */
  keyEquals(ref: number, key: Uint8Array, start: number, len: number): boolean;
}

export class HashIndex {
  private buckets: Uint32Array;
  private mask: number;
  /** The table being migrated away from, while growing. */
  private oldBuckets: Uint32Array | null = null;
  private oldMask = 0;
  /** Old buckets below this have moved to the new table. */
  private migrated = 0;
  private migrateTask: NodeJS.Immediate | null = null;
  private count = 0;
  /** memcached's `hash_power_level`. */
  hashPower: number;
  expanding = false;
  /** Called when a growth has finished and the old table is garbage. */
  onGrowthDone: (() => void) | null = null;

  constructor(hashPower: number, private readonly links: ChainLinks) {
    this.hashPower = hashPower;
    this.buckets = new Uint32Array(2 ** hashPower);
    this.mask = this.buckets.length - 1;
  }

  get size(): number {
    return this.count;
  }

  /** Bytes used by the tables (memcached's `hash_bytes`). */
  get bytes(): number {
    return this.buckets.byteLength + (this.oldBuckets !== null ? this.oldBuckets.byteLength : 0);
  }

  /** The table and bucket holding `hash`'s chain. */
  private tableFor(hash: number): Uint32Array {
    const old = this.oldBuckets;
    if (old !== null && (hash & this.oldMask) >= this.migrated) return old;
    return this.buckets;
  }

  private bucketIn(table: Uint32Array, hash: number): number {
    return hash & (table === this.buckets ? this.mask : this.oldMask);
  }

  find(hash: number, key: Uint8Array, start: number, len: number): number {
    const table = this.tableFor(hash);
    const links = this.links;
    let ref = table[this.bucketIn(table, hash)];
    while (ref !== 0) {
      if (links.keyEquals(ref, key, start, len)) return ref;
      ref = links.chainNext(ref);
    }
    return 0;
  }

  /** Add an entry whose key is not present. */
  insert(hash: number, ref: number): void {
    if (this.oldBuckets !== null) this.migrate(MIGRATE_PER_INSERT);
    else if (this.count >= (this.buckets.length * 3) >>> 1) this.startGrowth();
    const table = this.tableFor(hash);
    const b = this.bucketIn(table, hash);
    this.links.setChainNext(ref, table[b]);
    table[b] = ref;
    this.count++;
  }

  /** Point the entry holding `oldRef` at `newRef` (same key), keeping its place in the chain. */
  replace(hash: number, oldRef: number, newRef: number): void {
    const table = this.tableFor(hash);
    const b = this.bucketIn(table, hash);
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
    const table = this.tableFor(hash);
    const b = this.bucketIn(table, hash);
    const links = this.links;
    const next = links.chainNext(ref);
    this.count--;
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
    this.count++;
    throw new Error('hash index: remove of a missing entry');
  }

  private startGrowth(): void {
    this.oldBuckets = this.buckets;
    this.oldMask = this.mask;
    this.migrated = 0;
    this.hashPower++;
    this.buckets = new Uint32Array(2 ** this.hashPower);
    this.mask = this.buckets.length - 1;
    this.expanding = true;
    this.scheduleMigration();
  }

  private scheduleMigration(): void {
    if (this.migrateTask !== null) return;
    this.migrateTask = setImmediate(() => {
      this.migrateTask = null;
      if (this.oldBuckets === null) return;
      this.migrate(MIGRATE_PER_TASK);
      if (this.oldBuckets !== null) this.scheduleMigration();
    });
    this.migrateTask.unref();
  }

  /**
   * Move up to `count` old buckets into the new table. Each old chain splits by one more
   * bit of the hash; entries keep their relative order.
   */
  migrate(count: number): void {
    const old = this.oldBuckets;
    if (old === null) return;
    const links = this.links;
    const table = this.buckets;
    const oldSize = old.length;
    const end = Math.min(oldSize, this.migrated + count);
    for (let i = this.migrated; i < end; i++) {
      let ref = old[i];
      old[i] = 0;
      // Rebuild the two new chains in order: walk the old chain, append at each tail.
      let lowTail = 0;
      let highTail = 0;
      table[i] = 0;
      table[i + oldSize] = 0;
      while (ref !== 0) {
        const next = links.chainNext(ref);
        links.setChainNext(ref, 0);
        const high = (this.hashOf(ref) & oldSize) !== 0;
        const tail = high ? highTail : lowTail;
        if (tail === 0) table[high ? i + oldSize : i] = ref;
        else links.setChainNext(tail, ref);
        if (high) highTail = ref;
        else lowTail = ref;
        ref = next;
      }
    }
    this.migrated = end;
    if (end === oldSize) {
      this.oldBuckets = null;
      this.expanding = false;
      this.onGrowthDone?.();
    }
  }

  /** The hash of an item's key, to split a chain (set by the item layer). */
  hashOf: (ref: number) => number = () => {
    throw new Error('hash index: hashOf not set');
  };

  /** Finish any growth now (tests, shutdown). */
  finishGrowth(): void {
    while (this.oldBuckets !== null) this.migrate(MIGRATE_PER_TASK);
  }

  dispose(): void {
    if (this.migrateTask) clearImmediate(this.migrateTask);
    this.migrateTask = null;
  }
}
