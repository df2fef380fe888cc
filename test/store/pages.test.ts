/**
 * Slab pages: large (chunked) items in the largest class's LRU, the global page pool, the
 * page mover (rescues, busy chunks, evictions) and the automover, checked at the engine level
 * with the store invariants of ./invariants.ts after every step that changes memory.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Engine, StoreMode, StoreResult } from '../../src/engine/engine';
import { ServerStats } from '../../src/metrics/stats';
import { ItemView } from '../../src/engine/item-view';

/** The view the engine answers through (as a session's). */
const V = new ItemView();
import { defaultSettings, type Settings } from '../../src/settings';
import { ReassignResult } from '../../src/store/mover';
import { GLOBAL_POOL, refPage } from '../../src/store/slabs';
import { Prng } from '../helpers/prng';
import { checkStore } from './invariants';

const MIB = 1024 * 1024;

function engine(over: Partial<Settings> = {}): Engine {
  return new Engine({ ...defaultSettings(), ...over }, new ServerStats());
}

function put(e: Engine, key: string, value: Buffer, mode = StoreMode.Set): StoreResult | 'fail' {
  const k = Buffer.from(key);
  const ref = e.allocForStore(V, mode, k, 0, k.length, 0, 0, value.length);
  if (ref === 0) return 'fail';
  e.items.writeValue(ref, 0, value, 0, value.length);
  return e.commitStore(V, mode, ref, 0);
}

function read(e: Engine, key: string): Buffer | null {
  const k = Buffer.from(key);
  const ref = e.items.find(k, 0, k.length, hashOf(k));
  if (ref === 0) return null;
  const out = Buffer.alloc(e.items.nbytes(ref));
  e.items.copyValue(ref, out, 0);
  return out;
}

function casOf(e: Engine, key: string): number {
  const k = Buffer.from(key);
  return e.items.cas(e.items.find(k, 0, k.length, hashOf(k)));
}

import { hashKey } from '../../src/store/hash';
function hashOf(k: Buffer): number {
  return hashKey(k, 0, k.length);
}

/** A value that says which key and version it belongs to, so a mix-up cannot go unnoticed. */
function valueFor(key: string, version: number, bytes: number): Buffer {
  const v = Buffer.alloc(bytes);
  const seed = createHash('sha256').update(`${key}/${version}`).digest();
  for (let i = 0; i < bytes; i += seed.length) seed.copy(v, i, 0, Math.min(seed.length, bytes - i));
  return v;
}

describe('large (chunked) items', () => {
  it('live in the largest class LRU and evict there: 100 sets of 900 KiB under -m 64 all store', () => {
    const e = engine({ memoryLimitBytes: 64 * MIB });
    const largest = e.slabs.largestClass;
    const v = Buffer.alloc(921600, 0x78);
    let failed = 0;
    for (let i = 0; i < 100; i++) if (put(e, `a${i}`, v) !== StoreResult.Stored) failed++;
    expect(failed).toBe(0);
    expect(e.items.counters.evicted[largest]).toBeGreaterThan(0);
    const census = checkStore(e);
    expect(census.chunkedItems).toBe(e.items.currItems);
    expect(e.items.lruCount[(largest << 2) | 0] + e.items.lruCount[(largest << 2) | 1] +
      e.items.lruCount[(largest << 2) | 2]).toBe(e.items.currItems);
    expect(read(e, 'a99')!.equals(v)).toBe(true);
    expect(e.slabs.mallocedBytes).toBeLessThanOrEqual(64 * MIB);
  });

  it('share memory with small items: random sizes from 1 byte to 1000 KiB store like memcached', () => {
    const e = engine({ memoryLimitBytes: 64 * MIB });
    const prng = new Prng(7);
    const rand = (): number => prng.float();
    let failed = 0;
    const n = 1500;
    for (let i = 0; i < n; i++) {
      const size = 1 + Math.floor(rand() * 1000 * 1024);
      if (put(e, `r${i}`, valueFor(`r${i}`, 0, size)) !== StoreResult.Stored) failed++;
      if (i % 250 === 0) checkStore(e);
    }
    // memcached 1.6.45 fails about 0.4% of such a sequence (test/server/pressure.test.ts)
    expect(failed / n).toBeLessThan(0.02);
    checkStore(e);
    for (let i = n - 20; i < n; i++) {
      const got = read(e, `r${i}`);
      if (got !== null) expect(got.equals(valueFor(`r${i}`, 0, got.length))).toBe(true);
    }
  });
});

describe('page mover', () => {
  function fillClass(e: Engine, prefix: string, count: number, bytes: number): void {
    for (let i = 0; i < count; i++) expect(put(e, `${prefix}${i}`, valueFor(`${prefix}${i}`, 0, bytes))).toBe(StoreResult.Stored);
  }

  it('rescues live items of the moved page into free chunks of their class, keeping value and CAS', () => {
    const e = engine({ memoryLimitBytes: 16 * MIB, slabAutomove: 0 });
    fillClass(e, 'k', 3000, 1000); // about 3 pages of the 1184-byte class
    const cls = e.items.classOf(e.items.find(Buffer.from('k0'), 0, 2, hashOf(Buffer.from('k0'))));
    for (let i = 1000; i < 3000; i += 2) e.delete(V, Buffer.from(`k${i}`), 0, `k${i}`.length);
    const pagesBefore = e.slabs.pagesPerClass[cls];
    const firstPage = e.slabs.oldestPage(cls);
    const cas = casOf(e, 'k5');
    expect(e.mover.reassign(cls, cls + 5, false)).toBe(ReassignResult.Ok);
    expect(e.mover.running).toBe(false);
    expect(e.slabs.pagesPerClass[cls]).toBe(pagesBefore - 1);
    expect(e.slabs.pagesPerClass[cls + 5]).toBe(1);
    expect(e.slabs.pageClass[firstPage]).toBe(cls + 5);
    expect(e.mover.rescues).toBeGreaterThan(700);
    expect(e.mover.slabsMoved).toBe(1);
    expect(casOf(e, 'k5')).toBe(cas);
    for (let i = 0; i < 3000; i++) {
      const got = read(e, `k${i}`);
      if (i >= 1000 && i % 2 === 0) expect(got).toBeNull();
      else expect(got!.equals(valueFor(`k${i}`, 0, 1000))).toBe(true);
    }
    expect(e.stats.get_hits).toBe(0); // reads above did not go through get()
    checkStore(e);
  });

  it('answers memcached\'s reassign results', () => {
    const e = engine({ memoryLimitBytes: 16 * MIB, slabAutomove: 0 });
    fillClass(e, 'k', 1000, 1000);
    const cls = e.items.classOf(e.items.find(Buffer.from('k0'), 0, 2, hashOf(Buffer.from('k0'))));
    expect(e.mover.reassign(cls, cls, false)).toBe(ReassignResult.SrcDstSame);
    expect(e.mover.reassign(cls, 64, false)).toBe(ReassignResult.BadClass);
    expect(e.mover.reassign(cls + 1, cls, false)).toBe(ReassignResult.NoSpare);
    expect(e.mover.reassign(-1, cls + 1, false)).toBe(ReassignResult.Ok);
    checkStore(e);
  });

  it('gives pages to the global pool, from which any class takes them before new memory', () => {
    const e = engine({ memoryLimitBytes: 8 * MIB, slabAutomove: 0 });
    fillClass(e, 'k', 30000, 200); // fills memory
    expect(e.slabs.memoryFull).toBe(true);
    const cls = e.items.classOf(e.items.find(Buffer.from('k29999'), 0, 6, hashOf(Buffer.from('k29999'))));
    const malloced = e.slabs.mallocedBytes;
    expect(e.mover.reassign(cls, GLOBAL_POOL, true)).toBe(ReassignResult.Ok);
    expect(e.mover.reassign(cls, GLOBAL_POOL, true)).toBe(ReassignResult.Ok);
    expect(e.slabs.globalPoolPages).toBe(2);
    checkStore(e);
    // another class takes the pooled pages without evicting and without new memory
    const evictedBefore = e.items.counters.evicted.reduce((a, b) => a + b, 0);
    fillClass(e, 'big', 300, 5000);
    expect(e.slabs.globalPoolPages).toBe(0);
    expect(e.slabs.mallocedBytes).toBe(malloced);
    expect(e.items.counters.evicted.reduce((a, b) => a + b, 0)).toBe(evictedBefore);
    checkStore(e);
  });

  it('waits for a value being uploaded into the page, then finishes the move', () => {
    const e = engine({ memoryLimitBytes: 16 * MIB, slabAutomove: 0 });
    fillClass(e, 'k', 3000, 1000);
    const k0 = Buffer.from('k0');
    const cls = e.items.classOf(e.items.find(k0, 0, 2, hashOf(k0)));
    const first = e.slabs.oldestPage(cls);
    for (let i = 1000; i < 3000; i += 2) e.delete(V, Buffer.from(`k${i}`), 0, `k${i}`.length); // room to rescue into
    e.delete(V, k0, 0, 2); // its chunk, in the first page, heads the free list
    const up = Buffer.from('uploading');
    const ref = e.allocForStore(V, StoreMode.Set, up, 0, up.length, 0, 0, 1000);
    expect(refPage(ref)).toBe(first);
    expect(e.mover.reassign(cls, GLOBAL_POOL, false)).toBe(ReassignResult.Ok);
    expect(e.mover.running).toBe(true);
    expect(e.mover.reassign(cls, GLOBAL_POOL, false)).toBe(ReassignResult.Running);
    expect(e.mover.busyItems).toBeGreaterThan(0);
    expect(e.mover.lastBusyStatus).toBe('busy_floating');
    checkStore(e, { allowUnlinked: true });
    const v = valueFor('uploading', 0, 1000);
    e.items.writeValue(ref, 0, v, 0, v.length);
    expect(e.commitStore(V, StoreMode.Set, ref, 0)).toBe(StoreResult.Stored);
    e.maintain();
    expect(e.mover.running).toBe(false);
    expect(e.slabs.globalPoolPages).toBe(1);
    expect(read(e, 'uploading')!.equals(v)).toBe(true);
    checkStore(e);
  });

  it('evicts from the class tail when the class has no free chunk to rescue into (memory full)', () => {
    const e = engine({ memoryLimitBytes: 4 * MIB, slabAutomove: 0 });
    for (let i = 0; i < 20000; i++) put(e, `k${i}`, valueFor(`k${i}`, 0, 500));
    const k = Buffer.from('k19999');
    const cls = e.items.classOf(e.items.find(k, 0, k.length, hashOf(k)));
    const evictedBefore = e.items.counters.evicted[cls];
    expect(e.mover.reassign(cls, cls + 3, true)).toBe(ReassignResult.Ok);
    expect(e.mover.running).toBe(false);
    expect(e.items.counters.evicted[cls]).toBeGreaterThan(evictedBefore);
    expect(e.mover.rescues).toBeGreaterThan(0);
    checkStore(e);
    for (let i = 0; i < 20000; i++) {
      const got = read(e, `k${i}`);
      if (got !== null) expect(got.equals(valueFor(`k${i}`, 0, 500))).toBe(true);
    }
  });

  it('moves pages holding data chunks of large items (chunk rescues)', () => {
    const e = engine({ memoryLimitBytes: 32 * MIB, slabAutomove: 0 });
    for (let i = 0; i < 12; i++) put(e, `big${i}`, valueFor(`big${i}`, 0, 700 * 1024));
    for (let i = 0; i < 12; i += 3) e.delete(V, Buffer.from(`big${i}`), 0, `big${i}`.length);
    const largest = e.slabs.largestClass;
    expect(e.mover.reassign(largest, GLOBAL_POOL, false)).toBe(ReassignResult.Ok);
    expect(e.mover.running).toBe(false);
    expect(e.mover.chunkRescues + e.mover.inlineReclaim).toBeGreaterThan(0);
    checkStore(e);
    for (let i = 0; i < 12; i++) {
      const got = read(e, `big${i}`);
      if (i % 3 === 0) expect(got).toBeNull();
      else expect(got!.equals(valueFor(`big${i}`, 0, 700 * 1024))).toBe(true);
    }
  });

  it('keeps every invariant under random sets, deletes, large values and page moves', () => {
    const e = engine({ memoryLimitBytes: 24 * MIB, slabAutomove: 0 });
    const prng = new Prng(11);
    const rand = (): number => prng.float();
    const version = new Map<string, number>();
    const sizes = [10, 100, 900, 3000, 20000, 200000, 700000];
    for (let step = 0; step < 4000; step++) {
      const r = rand();
      const key = `k${Math.floor(rand() * 600)}`;
      if (r < 0.7) {
        const v = (version.get(key) ?? 0) + 1;
        const size = sizes[Math.floor(rand() * sizes.length)] + Math.floor(rand() * 50);
        if (put(e, key, valueFor(key, v, size)) === StoreResult.Stored) version.set(key, v);
      } else if (r < 0.85) {
        e.delete(V, Buffer.from(key), 0, key.length);
        version.delete(key);
      } else {
        const src = 1 + Math.floor(rand() * e.slabs.largestClass);
        const dst = Math.floor(rand() * (e.slabs.largestClass + 1));
        e.mover.reassign(src, dst, rand() < 0.5);
      }
      if (step % 200 === 0) checkStore(e);
    }
    checkStore(e);
    for (const [key, v] of version) {
      const got = read(e, key);
      if (got !== null) expect(got.equals(valueFor(key, v, got.length))).toBe(true);
    }
  });
});

describe('memory limit', () => {
  it('cache_memlimit lowered: pages given to the global pool go back until within the limit', () => {
    const e = engine({ memoryLimitBytes: 16 * MIB, slabAutomove: 0 });
    let n = 0;
    while (!e.slabs.memoryFull) put(e, `k${n}`, valueFor(`k${n++}`, 0, 100000));
    expect(e.slabs.mallocedBytes).toBe(16 * MIB);
    for (let i = 0; i < n; i++) e.delete(V, Buffer.from(`k${i}`), 0, `k${i}`.length);
    e.slabs.setMemoryLimit(8 * MIB);
    const cls = e.slabs.classFor(36 + 3 + 100000);
    while (e.slabs.pagesPerClass[cls] > 1) expect(e.mover.reassign(cls, GLOBAL_POOL, false)).toBe(ReassignResult.Ok);
    expect(e.slabs.mallocedBytes).toBe(8 * MIB);
    e.slabs.setMemoryLimit(16 * MIB);
    for (let i = 0; i < n; i++) put(e, `k${i}`, valueFor(`k${i}`, 0, 100000));
    expect(e.slabs.mallocedBytes).toBe(16 * MIB);
    checkStore(e);
  });

  it('counts memcached\'s T_MEMD_INITIAL_MALLOC against the limit', () => {
    const before = process.env.T_MEMD_INITIAL_MALLOC;
    process.env.T_MEMD_INITIAL_MALLOC = String(3 * MIB + 32);
    try {
      const e = engine({ memoryLimitBytes: 5 * MIB, evictToFree: false });
      expect(e.slabs.mallocedBytes).toBe(3 * MIB + 32);
      let stored = 0;
      for (let i = 0; i < 10; i++) if (put(e, `k${i}`, Buffer.alloc(400 * 1024)) === StoreResult.Stored) stored++;
      expect(stored).toBe(2); // one page: two 400 KiB values
    } finally {
      if (before === undefined) delete process.env.T_MEMD_INITIAL_MALLOC;
      else process.env.T_MEMD_INITIAL_MALLOC = before;
    }
  });
});

describe('slab automover', () => {
  it('gives excess free memory back to the global pool once nothing happened in its window', () => {
    const e = engine({ memoryLimitBytes: 16 * MIB, slabAutomoveWindowSamples: 3 });
    for (let i = 0; i < 14000; i++) put(e, `k${i}`, valueFor(`k${i}`, 0, 1000));
    expect(e.slabs.memoryFull).toBe(true);
    for (let i = 0; i < 14000; i += 2) e.delete(V, Buffer.from(`k${i}`), 0, `k${i}`.length);
    for (let second = 0; second < 40 && e.slabs.globalPoolPages < 5; second++) {
      e.clock.now++;
      for (let tick = 0; tick < 10; tick++) e.maintain();
    }
    expect(e.slabs.globalPoolPages).toBeGreaterThanOrEqual(5);
    expect(e.slabs.mallocedBytes).toBe(16 * MIB);
    checkStore(e);
    for (let i = 1; i < 14000; i += 2) {
      const got = read(e, `k${i}`);
      if (got !== null) expect(got.equals(valueFor(`k${i}`, 0, 1000))).toBe(true);
    }
  });

  it('moves a page from a class of old items to one evicting young items, once its window has filled', () => {
    const e = engine({ memoryLimitBytes: 8 * MIB, slabAutomoveWindowSamples: 5, lruSegmented: false });
    e.clock.now = 100;
    for (let i = 0; i < 60000; i++) put(e, `old${i}`, Buffer.alloc(100, 0x61)); // takes every page
    const oldCls = e.slabs.classFor(36 + 8 + 100);
    e.clock.now = 1000;
    const big = Buffer.alloc(3000, 0x62);
    expect(put(e, 'big0', big)).toBe(StoreResult.Stored); // inline move: the big class gets one page
    const bigCls = e.slabs.classFor(36 + 4 + 3000);
    const pagesBefore = e.slabs.pagesPerClass[bigCls];
    let n = 1;
    for (let second = 0; second < 8 && e.slabs.pagesPerClass[bigCls] === pagesBefore; second++) {
      for (let i = 0; i < 2000; i++) put(e, `big${n++}`, big); // evicts within its one page
      e.clock.now++;
      e.maintain();
    }
    expect(e.slabs.pagesPerClass[bigCls]).toBe(pagesBefore + 1);
    expect(e.slabs.pagesPerClass[oldCls]).toBeGreaterThan(2);
    checkStore(e);
  });

  it('slab_automove=2 moves a page to a class each time it evicts', () => {
    const e = engine({ memoryLimitBytes: 8 * MIB, slabAutomove: 2 });
    for (let i = 0; i < 60000; i++) put(e, `old${i}`, Buffer.alloc(100, 0x61));
    const big = Buffer.alloc(3000, 0x62);
    const bigCls = e.slabs.classFor(36 + 5 + 3000);
    for (let i = 0; i < 1000; i++) {
      put(e, `big${i}`, big);
      e.maintain();
    }
    expect(e.slabs.pagesPerClass[bigCls]).toBeGreaterThan(3);
    checkStore(e);
  });

  it('leaves pages alone when no class keeps evicting', () => {
    const e = engine({ memoryLimitBytes: 8 * MIB, slabAutomoveWindowSamples: 3 });
    for (let i = 0; i < 1000; i++) put(e, `k${i}`, Buffer.from('v'));
    for (let s = 0; s < 8; s++) {
      e.clock.now++;
      e.maintain();
    }
    expect(e.mover.slabsMoved).toBe(0);
  });
});
