import { describe, expect, it } from 'vitest';
import { Engine, StoreMode, StoreResult } from '../../src/engine/engine';
import { ServerStats } from '../../src/metrics/stats';
import { ItemView } from '../../src/engine/item-view';

/** The view the engine answers through (as a session's). */
const V = new ItemView();
import { defaultSettings, type Settings } from '../../src/settings';
import { HashIndex, hashKey } from '../../src/store/hash';
import { Mutexes } from '../../src/store/locks';
import { SharedMemory } from '../../src/store/shared';
import { SlabAllocator } from '../../src/store/slabs';

const MIB = 1024 * 1024;

function engine(over: Partial<Settings> = {}): Engine {
  return new Engine({ ...defaultSettings(), ...over }, new ServerStats());
}

function put(e: Engine, key: string, value: Buffer | string, mode = StoreMode.Set): StoreResult | 'fail' {
  const k = Buffer.from(key);
  const v = typeof value === 'string' ? Buffer.from(value) : value;
  const ref = e.allocForStore(V, mode, k, 0, k.length, 0, 0, v.length);
  if (ref === 0) return 'fail';
  e.items.writeValue(ref, 0, v, 0, v.length);
  return e.commitStore(V, mode, ref, 0);
}

function read(e: Engine, key: string): Buffer | null {
  const k = Buffer.from(key);
  let out: Buffer | null = null;
  e.get(V, k, 0, k.length, { item: (v) => { out = Buffer.alloc(v.nbytes); v.copyValue(out, 0); } });
  return out;
}

describe('slab classes', () => {
  it('match memcached 1.6 numbering for default -n 48 -f 1.25 (from memcached -vv)', () => {
    const s = new SlabAllocator({ memoryLimitBytes: 64 * MIB, pageBytes: MIB, chunkSizeBytes: 48, growthFactor: 1.25, slabChunkMaxBytes: 512 * 1024 }, SharedMemory.create());
    expect(s.classSize.slice(1, 8)).toEqual([96, 120, 152, 192, 240, 304, 384]);
    expect(s.perPage.slice(1, 5)).toEqual([10922, 8738, 6898, 5461]);
    expect(s.largestClass).toBe(39);
    expect(s.classSize[38]).toBe(394840);
    expect(s.classSize[39]).toBe(524288);
  });
  it('never takes more pages than -m allows', () => {
    const s = new SlabAllocator({ memoryLimitBytes: 2 * MIB, pageBytes: MIB, chunkSizeBytes: 48, growthFactor: 1.25, slabChunkMaxBytes: 512 * 1024 }, SharedMemory.create());
    let n = 0;
    while (s.alloc(1) !== 0) n++;
    expect(n).toBe(2 * 10922);
    // Another class still gets its first page, beyond the limit (memcached's do_slabs_newslab),
    // and no second one.
    let m = 0;
    while (s.alloc(2) !== 0) m++;
    expect(m).toBe(8738);
    expect(s.mallocedBytes).toBe(3 * MIB);
    expect(s.limitReached).toBe(true);
  });
});

describe('hash index', () => {
  it('finds every key through a growth (buckets moved in steps between operations) and deletes', () => {
    const keys: Buffer[] = [];
    const next = new Uint32Array(5001);
    const links = {
      chainNext: (ref: number): number => next[ref],
      setChainNext: (ref: number, n: number): void => void (next[ref] = n),
      keyEquals: (ref: number, key: Uint8Array, start: number, len: number): boolean => keys[ref - 1].equals(key.subarray(start, start + len)),
      hashOf: (ref: number): number => hashKey(keys[ref - 1], 0, keys[ref - 1].length),
    };
    const mem = SharedMemory.create();
    const idx = new HashIndex(4, 16, links, mem);
    const locks = new Mutexes(mem.int32(16), 0, 16);
    const hashOf = (i: number): number => hashKey(keys[i], 0, keys[i].length);
    let growths = 0;
    for (let i = 0; i < 5000; i++) {
      const k = Buffer.from(`key:${i}`);
      keys.push(k);
      idx.insert(hashOf(i), i + 1);
      if (idx.growIfNeeded(i + 1)) growths++;
      if (i % 7 === 0) idx.migrate(locks, 15, 3);
    }
    expect(growths).toBeGreaterThan(3);
    expect(idx.hashPower).toBeGreaterThan(4);
    for (let i = 0; i < 5000; i += 2) idx.remove(hashOf(i), i + 1);
    for (let i = 0; i < 5000; i++) expect(idx.find(hashOf(i), keys[i], 0, keys[i].length)).toBe(i % 2 === 0 ? 0 : i + 1);
    while (idx.migrate(locks, 15)) { /* finish */ }
    expect(idx.expanding).toBe(false);
    for (let i = 1; i < 5000; i += 2) expect(idx.find(hashOf(i), keys[i], 0, keys[i].length)).toBe(i + 1);
    // the table never grows past what its areas were reserved for
    for (let i = 0; i < 8; i++) {
      idx.growIfNeeded(1e9);
      while (idx.migrate(locks, 15)) { /* finish */ }
    }
    expect(idx.hashPower).toBe(16);
    for (let i = 1; i < 5000; i += 2) expect(idx.find(hashOf(i), keys[i], 0, keys[i].length)).toBe(i + 1);
  });
});

describe('items', () => {
  it('stores and returns values byte for byte, including chunked ones above slab_chunk_max', () => {
    const e = engine();
    const small = Buffer.from('hello');
    const big = Buffer.alloc(900 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    expect(put(e, 'a', small)).toBe(StoreResult.Stored);
    expect(put(e, 'big', big)).toBe(StoreResult.Stored);
    expect(read(e, 'a')!.equals(small)).toBe(true);
    expect(read(e, 'big')!.equals(big)).toBe(true);
    expect(put(e, 'big', 'x', StoreMode.Append)).toBe(StoreResult.Stored);
    expect(read(e, 'big')!.equals(Buffer.concat([big, Buffer.from('x')]))).toBe(true);
  });

  it('evicts from COLD when memory is full, counting evictions, and keeps within -m', () => {
    const e = engine({ memoryLimitBytes: 2 * MIB });
    const v = Buffer.alloc(100, 0x61);
    for (let i = 0; i < 50000; i++) expect(put(e, `k${i}`, v)).toBe(StoreResult.Stored);
    expect(e.slabs.mallocedBytes).toBeLessThanOrEqual(2 * MIB);
    const evicted = e.items.counters.evicted.reduce((a, b) => a + b, 0);
    expect(evicted).toBeGreaterThan(0);
    expect(e.items.currItems + evicted).toBe(50000);
    expect(read(e, 'k49999')!.equals(v)).toBe(true);
    expect(read(e, 'k0')).toBeNull();
  });

  it('-M refuses instead of evicting', () => {
    const e = engine({ memoryLimitBytes: 1 * MIB, evictToFree: false });
    const v = Buffer.alloc(100, 0x61);
    let failed = 0;
    for (let i = 0; i < 20000; i++) if (put(e, `k${i}`, v) === 'fail') failed++;
    expect(failed).toBeGreaterThan(0);
    expect(read(e, 'k0')!.equals(v)).toBe(true);
    expect(e.stats.store_no_memory).toBe(failed);
  });

  it('frees memory on delete and overwrite (no leak of chunks)', () => {
    const e = engine({ memoryLimitBytes: 4 * MIB });
    const v = Buffer.alloc(600 * 1024, 1);
    for (let i = 0; i < 200; i++) {
      expect(put(e, 'same', v)).toBe(StoreResult.Stored);
    }
    for (let i = 0; i < 200; i++) {
      expect(put(e, `d${i}`, 'x')).toBe(StoreResult.Stored);
      const k = Buffer.from(`d${i}`);
      e.delete(V, k, 0, k.length);
    }
    expect(e.items.currItems).toBe(1);
    const used = e.slabs.usedChunks.reduce((a, b) => a + b, 0);
    expect(used).toBe(3); // header + two data chunks of the one 600 KiB value
  });
});

describe('slab page moves', () => {
  it('a class with no pages can still store after another class took all memory (its first page, over -m)', () => {
    const e = engine({ memoryLimitBytes: 4 * MIB });
    const small = Buffer.alloc(100, 0x61);
    for (let i = 0; i < 40000; i++) put(e, `s${i}`, small);
    expect(e.slabs.mallocedBytes).toBe(4 * MIB);
    const big = Buffer.alloc(5000, 0x62);
    expect(put(e, 'big', big)).toBe(StoreResult.Stored);
    expect(read(e, 'big')!.equals(big)).toBe(true);
    // As memcached: a class's first page may go beyond the limit, by one page.
    expect(e.slabs.mallocedBytes).toBe(5 * MIB);
    // the small class still works and its survivors are intact
    expect(put(e, 'after', small)).toBe(StoreResult.Stored);
    expect(read(e, 'after')!.equals(small)).toBe(true);
  });
});

