/**
 * Time and memory at the engine level: expiry (client exptimes through the engine's own
 * clock.realtime, as the protocols pass them), touch and gat, flush_all now and with a
 * delay, the debugtime clock, and eviction under a small -m in LRU order: the least
 * recently used item goes first, a recently read one survives (flat LRU: read after the
 * bump interval; segmented LRU: read twice, as memcached's ITEM_ACTIVE), expired items are
 * reclaimed before anything live is evicted.
 */
import { describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/engine';
import { DebugClock } from '../../src/engine/debug-clock';
import { ServerStats } from '../../src/metrics/stats';
import { defaultSettings } from '../../src/settings';
import { ITEM_HEADER_BYTES } from '../../src/store/items';
import { checkStore } from '../store/invariants';
import { T0, at, gat, get, linked, makeEngine, pick, set, touch, value } from './helpers';

const MIB = 1024 * 1024;
const THIRTY_DAYS = 60 * 60 * 24 * 30;

describe('expiry', () => {
  it('relative exptimes count from now; the item is gone at exactly its exptime', () => {
    const e = makeEngine();
    const exp = e.clock.realtime(10);
    expect(exp).toBe(T0 + 10);
    set(e, 'k', 'v', { exptime: exp });
    at(e, T0 + 9);
    expect(value(e, 'k')).toBe('v');
    at(e, T0 + 10);
    expect(get(e, 'k')).toBeNull();
    expect(pick(e, ['get_expired', 'get_misses', 'get_hits', 'curr_items'])).toEqual({ get_expired: 1, get_misses: 1, get_hits: 1, curr_items: 0 });
  });

  it('a negative exptime stores an item that is already expired', () => {
    const e = makeEngine();
    const exp = e.clock.realtime(-1);
    expect(exp).toBeGreaterThan(0);
    expect(exp).toBeLessThanOrEqual(T0);
    expect(set(e, 'k', 'v', { exptime: exp }).result).toBe('STORED');
    expect(get(e, 'k')).toBeNull();
    expect(pick(e, ['get_expired', 'cmd_set'])).toEqual({ get_expired: 1, cmd_set: 1 });
  });

  it('above 30 days an exptime is an absolute unix time; exactly 30 days is still relative', () => {
    const e = makeEngine();
    expect(e.clock.realtime(THIRTY_DAYS)).toBe(T0 + THIRTY_DAYS);
    // 30 days and a second as unix time is 1970: long past, so expired at once.
    expect(e.clock.realtime(THIRTY_DAYS + 1)).toBe(1);
    const unixNow = e.clock.unixNow();
    expect(e.clock.realtime(unixNow + 20)).toBe(T0 + 20);
    set(e, 'abs', 'v', { exptime: e.clock.realtime(unixNow + 20) });
    set(e, 'past', 'v', { exptime: e.clock.realtime(unixNow - 5) });
    set(e, 'month', 'v', { exptime: e.clock.realtime(THIRTY_DAYS + 1) });
    expect(get(e, 'past')).toBeNull();
    expect(get(e, 'month')).toBeNull();
    at(e, T0 + 19);
    expect(value(e, 'abs')).toBe('v');
    at(e, T0 + 20);
    expect(get(e, 'abs')).toBeNull();
    // Each expired item went once: found dead by a get, or (segmented LRU) reclaimed from the
    // HOT tail by the balancing that follows a store.
    const st = pick(e, ['get_expired', 'reclaimed', 'curr_items']);
    expect(st.get_expired + st.reclaimed).toBe(3);
    expect(st.curr_items).toBe(0);
  });

  it('touch and gat set a new exptime (gat returns the item); misses are counted', () => {
    const e = makeEngine();
    set(e, 'k', 'v', { exptime: T0 + 5 });
    expect(touch(e, 'k', T0 + 100)).toBe(true);
    at(e, T0 + 50);
    expect(value(e, 'k')).toBe('v');
    const g = gat(e, 'k', 0)!;
    expect([g.value.toString(), g.exptime]).toEqual(['v', 0]);
    at(e, T0 + 100_000);
    expect(value(e, 'k')).toBe('v');
    expect(touch(e, 'k', e.clock.realtime(-1))).toBe(true);
    expect(get(e, 'k')).toBeNull();
    expect(touch(e, 'k', 0)).toBe(false);
    expect(gat(e, 'k', 0)).toBeNull();
    expect(pick(e, ['cmd_touch', 'touch_hits', 'touch_misses', 'cmd_get', 'get_hits']))
      .toEqual({ cmd_touch: 5, touch_hits: 3, touch_misses: 2, cmd_get: 3, get_hits: 2 });
  });

  it('the debugtime clock (-o debug_commands) moves expiry without waiting', () => {
    const clock = new DebugClock();
    const e = new Engine({ ...defaultSettings() }, new ServerStats(), clock);
    const start = clock.now;
    set(e, 'k', 'v', { exptime: e.clock.realtime(100) });
    clock.shift(99);
    expect(clock.now).toBe(start + 99);
    expect(value(e, 'k')).toBe('v');
    clock.shift(1);
    expect(get(e, 'k')).toBeNull();
  });
});

describe('flush_all', () => {
  it('now: every item goes at once; an item stored after it in the same second stays', () => {
    const e = makeEngine();
    at(e, T0 - 100);
    set(e, 'old', 'v');
    at(e, T0);
    set(e, 'a', 'v');
    set(e, 'b', 'v', { exptime: T0 + 1000 });
    e.flushAll(0);
    // Items used in the last second are unlinked at once; older ones lazily (get_flushed).
    expect(linked(e, 'a')).toBe(false);
    expect(linked(e, 'b')).toBe(false);
    expect(get(e, 'old')).toBeNull();
    set(e, 'after', 'v');
    expect(value(e, 'after')).toBe('v');
    at(e, T0 + 5);
    expect(value(e, 'after')).toBe('v');
    expect(pick(e, ['get_flushed', 'curr_items'])).toEqual({ get_flushed: 1, curr_items: 1 });
    checkStore(e);
  });

  it('with a delay: nothing goes before it; at the end everything used until then goes', () => {
    const e = makeEngine();
    set(e, 'a', 'v');
    e.flushAll(10); // oldest_live = realtime(10) - 1
    expect(e.items.oldestLive).toBe(T0 + 9);
    at(e, T0 + 8);
    set(e, 'b', 'v');
    expect(value(e, 'a')).toBe('v');
    expect(value(e, 'b')).toBe('v');
    at(e, T0 + 9);
    expect(get(e, 'a')).toBeNull();
    expect(get(e, 'b')).toBeNull();
    at(e, T0 + 10);
    set(e, 'c', 'v');
    expect(value(e, 'c')).toBe('v');
    at(e, T0 + 500);
    expect(value(e, 'c')).toBe('v');
    expect(pick(e, ['get_flushed', 'curr_items'])).toEqual({ get_flushed: 2, curr_items: 1 });
  });
});

describe('eviction under a small -m', () => {
  const VALUE = Buffer.alloc(1000, 0x76);

  /** Store k<from>..k<to-1>; returns how many stores evicted something. */
  function fill(e: Engine, from: number, to: number, exptime = 0): void {
    for (let i = from; i < to; i++) {
      const r = set(e, `k${i}`, VALUE, { exptime });
      if (r.result !== 'STORED') throw new Error(`k${i}: ${r.result}`);
    }
  }

  /** How many 1000-byte values -m 2 holds: 2 pages of their class, nothing evicted before. */
  function capacity(e: Engine): number {
    const cls = e.slabs.classFor(ITEM_HEADER_BYTES + 5 + VALUE.length);
    expect(e.slabs.classFor(ITEM_HEADER_BYTES + 2 + VALUE.length)).toBe(cls);
    return 2 * e.slabs.perPage[cls];
  }

  function present(e: Engine, n: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < n; i++) if (linked(e, `k${i}`)) out.push(i);
    return out;
  }

  it('flat LRU: the least recently stored go first, one per store past capacity', () => {
    const e = makeEngine({ memoryLimitBytes: 2 * MIB, lruSegmented: false });
    const cap = capacity(e);
    fill(e, 0, cap);
    expect(pick(e, ['evictions', 'curr_items'])).toEqual({ evictions: 0, curr_items: cap });
    fill(e, cap, cap + 100);
    expect(pick(e, ['evictions', 'evicted_unfetched', 'curr_items'])).toEqual({ evictions: 100, evicted_unfetched: 100, curr_items: cap });
    const p = present(e, cap + 100);
    expect(p[0]).toBe(100);
    expect(p.length).toBe(cap);
    expect(p[p.length - 1]).toBe(cap + 99);
    checkStore(e);
  });

  it('flat LRU: an item read after the bump interval moves to the head and survives', () => {
    const e = makeEngine({ memoryLimitBytes: 2 * MIB, lruSegmented: false });
    const cap = capacity(e);
    fill(e, 0, cap);
    at(e, T0 + 61);
    expect(get(e, 'k0')).not.toBeNull();
    fill(e, cap, cap + 10);
    expect(present(e, 12)).toEqual([0, 11]);
    expect(pick(e, ['evictions', 'evicted_unfetched'])).toEqual({ evictions: 10, evicted_unfetched: 10 });
    checkStore(e);
  });

  it('segmented LRU: read twice (active), an item moves to WARM and survives; read once it does not', () => {
    const e = makeEngine({ memoryLimitBytes: 2 * MIB });
    const cap = capacity(e);
    fill(e, 0, cap);
    // k0 and k1 sit at the COLD tail.
    get(e, 'k0');
    get(e, 'k0');
    get(e, 'k1');
    expect(pick(e, ['moves_to_warm'])).toEqual({ moves_to_warm: 1 });
    fill(e, cap, cap + 10);
    expect(linked(e, 'k0')).toBe(true);
    expect(linked(e, 'k1')).toBe(false);
    expect(present(e, 12)).toEqual([0, 11]);
    expect(pick(e, ['evictions', 'evicted_unfetched', 'curr_items'])).toEqual({ evictions: 10, evicted_unfetched: 9, curr_items: cap });
    expect(value(e, 'k0')).toBe(VALUE.toString());
    checkStore(e);
  });

  it('expired items are reclaimed before anything live is evicted', () => {
    const e = makeEngine({ memoryLimitBytes: 2 * MIB, lruSegmented: false });
    const cap = capacity(e);
    const half = Math.floor(cap / 2);
    fill(e, 0, half, T0 + 10);
    fill(e, half, cap);
    at(e, T0 + 10);
    fill(e, cap, cap + half);
    expect(pick(e, ['evictions', 'reclaimed', 'expired_unfetched', 'curr_items']))
      .toEqual({ evictions: 0, reclaimed: half, expired_unfetched: half, curr_items: cap });
    expect(present(e, cap + half).length).toBe(cap);
    expect(linked(e, `k${half}`)).toBe(true);
    checkStore(e);
  });

  it('-M: no eviction, the store fails instead (see store.test.ts for what it leaves)', () => {
    const e = makeEngine({ memoryLimitBytes: 2 * MIB, evictToFree: false, lruSegmented: false });
    const cap = capacity(e);
    fill(e, 0, cap);
    expect(set(e, 'one-more', VALUE).result).toBe('NO_MEMORY');
    expect(pick(e, ['evictions', 'curr_items'])).toEqual({ evictions: 0, curr_items: cap });
  });
});
