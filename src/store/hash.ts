/**
 * Hash index: key → item reference, over typed arrays (no JavaScript object per item).
 *
 * Open addressing with linear probing. Each slot holds the item reference (0 = empty) and
 * the key's full 32-bit hash, so most probes never touch item memory. Growth is incremental,
 * as memcached's assoc expansion is: when the table passes half full a table twice the size
 * is made, new inserts go there, and the old table is migrated a bounded number of slots at
 * a time (on each insert, and from an idle task), so no single call stalls the event loop.
 *
 * ┌──────── refs: Uint32Array(capacity) ────────┐  ┌──── hashes: Uint32Array(capacity) ────┐
 * │ ref │  0  │ ref │ TOMB │ ...                │  │ h(k) │  -  │ h(k) │  -  │ ...         │
 * └─────────────────────────────────────────────┘  └───────────────────────────────────────┘
 * TOMB only appears in the table being migrated away from (deletes there cannot shift).
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

const TOMB = 0xffffffff;
/** Slots migrated per insert while growing, and per idle task. */
const MIGRATE_PER_INSERT = 32;
const MIGRATE_PER_TASK = 16384;

/** Does the item at `ref` have this key? Supplied by the item layer. */
export type KeyEquals = (ref: number, key: Uint8Array, start: number, len: number) => boolean;

export class HashIndex {
  private refs: Uint32Array;
  private hashes: Uint32Array;
  private mask: number;
  private oldRefs: Uint32Array | null = null;
  private oldHashes: Uint32Array | null = null;
  private oldMask = 0;
  private migrateCursor = 0;
  private migrateTask: NodeJS.Immediate | null = null;
  /** Live entries in the current table (the old one's are counted in `oldCount`). */
  private count = 0;
  private oldCount = 0;
  /** Expansions done (memcached's `hash_power_level` grows with these). */
  hashPower: number;
  expanding = false;
  /** Called when a growth has finished and the old table is garbage. */
  onGrowthDone: (() => void) | null = null;

  constructor(hashPower: number, private readonly keyEquals: KeyEquals) {
    this.hashPower = hashPower;
    const capacity = 2 ** hashPower;
    this.refs = new Uint32Array(capacity);
    this.hashes = new Uint32Array(capacity);
    this.mask = capacity - 1;
  }

  get size(): number {
    return this.count + this.oldCount;
  }

  /** Bytes used by the tables (memcached's `hash_bytes`). */
  get bytes(): number {
    return this.refs.byteLength * 2 + (this.oldRefs ? this.oldRefs.byteLength * 2 : 0);
  }

  find(hash: number, key: Uint8Array, start: number, len: number): number {
    const refs = this.refs;
    const hashes = this.hashes;
    const mask = this.mask;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const ref = refs[i];
      if (ref === 0) break;
      if (hashes[i] === hash && this.keyEquals(ref, key, start, len)) return ref;
    }
    if (this.oldRefs !== null) return this.findOld(hash, key, start, len);
    return 0;
  }

  private findOld(hash: number, key: Uint8Array, start: number, len: number): number {
    const refs = this.oldRefs!;
    const hashes = this.oldHashes!;
    const mask = this.oldMask;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const ref = refs[i];
      if (ref === 0) return 0;
      if (ref !== TOMB && hashes[i] === hash && this.keyEquals(ref, key, start, len)) return ref;
    }
  }

  /** Add an entry whose key is not present. */
  insert(hash: number, ref: number): void {
    if (this.oldRefs !== null) this.migrate(MIGRATE_PER_INSERT);
    else if (this.count * 2 >= this.refs.length) this.startGrowth();
    this.put(this.refs, this.hashes, this.mask, hash, ref);
    this.count++;
  }

  private put(refs: Uint32Array, hashes: Uint32Array, mask: number, hash: number, ref: number): void {
    let i = hash & mask;
    while (refs[i] !== 0) i = (i + 1) & mask;
    refs[i] = ref;
    hashes[i] = hash;
  }

  /** Point the entry holding `oldRef` at `newRef` (same key). */
  replace(hash: number, oldRef: number, newRef: number): void {
    let i = this.slotOf(this.refs, this.mask, hash, oldRef);
    if (i >= 0) {
      this.refs[i] = newRef;
      return;
    }
    i = this.oldRefs ? this.slotOf(this.oldRefs, this.oldMask, hash, oldRef) : -1;
    if (i < 0) throw new Error('hash index: replace of a missing entry');
    this.oldRefs![i] = newRef;
  }

  remove(hash: number, ref: number): void {
    const i = this.slotOf(this.refs, this.mask, hash, ref);
    if (i >= 0) {
      this.shiftDelete(i);
      this.count--;
      return;
    }
    const j = this.oldRefs ? this.slotOf(this.oldRefs, this.oldMask, hash, ref) : -1;
    if (j < 0) throw new Error('hash index: remove of a missing entry');
    this.oldRefs![j] = TOMB;
    this.oldCount--;
  }

  private slotOf(refs: Uint32Array, mask: number, hash: number, ref: number): number {
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const r = refs[i];
      if (r === ref) return i;
      if (r === 0) return -1;
    }
  }

  /** Linear-probing delete without tombstones: pull later entries of the run back. */
  private shiftDelete(hole: number): void {
    const refs = this.refs;
    const hashes = this.hashes;
    const mask = this.mask;
    let i = hole;
    for (;;) {
      i = (i + 1) & mask;
      const r = refs[i];
      if (r === 0) break;
      const home = hashes[i] & mask;
      // Move entry i into the hole if its home is not cyclically within (hole, i].
      const distHole = (hole - home) & mask;
      const distI = (i - home) & mask;
      if (distHole < distI) {
        refs[hole] = r;
        hashes[hole] = hashes[i];
        hole = i;
      }
    }
    refs[hole] = 0;
  }

  private startGrowth(): void {
    this.oldRefs = this.refs;
    this.oldHashes = this.hashes;
    this.oldMask = this.mask;
    this.oldCount = this.count;
    this.count = 0;
    this.migrateCursor = 0;
    this.hashPower++;
    const capacity = 2 ** this.hashPower;
    this.refs = new Uint32Array(capacity);
    this.hashes = new Uint32Array(capacity);
    this.mask = capacity - 1;
    this.expanding = true;
    this.scheduleMigration();
  }

  private scheduleMigration(): void {
    if (this.migrateTask !== null) return;
    this.migrateTask = setImmediate(() => {
      this.migrateTask = null;
      if (this.oldRefs === null) return;
      this.migrate(MIGRATE_PER_TASK);
      if (this.oldRefs !== null) this.scheduleMigration();
    });
    this.migrateTask.unref();
  }

  /** Move up to `slots` old slots into the new table. */
  migrate(slots: number): void {
    const oldRefs = this.oldRefs;
    if (oldRefs === null) return;
    const oldHashes = this.oldHashes!;
    const end = Math.min(oldRefs.length, this.migrateCursor + slots);
    for (let i = this.migrateCursor; i < end; i++) {
      const ref = oldRefs[i];
      if (ref !== 0 && ref !== TOMB) {
        this.put(this.refs, this.hashes, this.mask, oldHashes[i], ref);
        this.count++;
        this.oldCount--;
      }
      // Migrated entries become tombstones so lookups keep probing past them.
      if (ref !== 0) oldRefs[i] = TOMB;
    }
    this.migrateCursor = end;
    if (end === oldRefs.length) {
      this.oldRefs = null;
      this.oldHashes = null;
      this.expanding = false;
      this.onGrowthDone?.();
    }
  }

  /** Finish any growth now (tests, shutdown). */
  finishGrowth(): void {
    while (this.oldRefs !== null) this.migrate(MIGRATE_PER_TASK);
  }

  dispose(): void {
    if (this.migrateTask) clearImmediate(this.migrateTask);
    this.migrateTask = null;
  }
}
