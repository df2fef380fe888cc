/**
 * The meta commands at the engine level (Engine.metaGet, metaDelete, metaArithmetic,
 * metaDebug, and commitStore with the ms flags), as memcached 1.6.45's proto_parser.c runs
 * them: vivify on miss (mg N) and the win/stale tokens (W, Z, X), recache (R), invalidation
 * (md I, ms I), md x, ma N autovivify, E explicit CAS, C compare, T/u, and how each counts.
 * A MetaRequest here is what src/protocol/text/meta.ts fills from the flags (exptimes
 * already server-relative, flag positions in request order).
 */
import { describe, expect, it } from 'vitest';
import { StoreMode } from '../../src/engine/engine';
import { ItemView, Proto } from '../../src/engine/item-view';
import { checkStore } from '../store/invariants';
import {
  T0, at, b, exptimeOf, get, incr, makeEngine, metaArith, metaDelete, metaGet, metaReq, pick, set, store, value,
} from './helpers';

const GET_COUNTERS = ['cmd_get', 'get_hits', 'get_misses', 'cmd_touch', 'touch_hits', 'touch_misses'];

describe('mg', () => {
  it('a miss without N is a miss, counted as a get', () => {
    const e = makeEngine();
    expect(metaGet(e, 'k', metaReq())).toBeNull();
    expect(pick(e, GET_COUNTERS)).toEqual({ cmd_get: 1, get_hits: 0, get_misses: 1, cmd_touch: 0, touch_hits: 0, touch_misses: 0 });
  });

  it('N on a miss creates an empty item and wins (W); the next reader sees Z and does not win', () => {
    const e = makeEngine();
    const viv = metaReq({ vivifyAt: 2, vivifyExptime: T0 + 30, locked: true });
    const first = metaGet(e, 'k', viv)!;
    // The view shows the item as the flags found it (the renderer applies T/N per flag
    // position for t); the stored item has N's TTL.
    expect(first).toMatchObject({ created: true, won: true, tokenSent: false, stale: false, nbytes: 0, flags: 0, cas: 2, exptime: 0 });
    expect(exptimeOf(e, 'k')).toBe(T0 + 30);
    const second = metaGet(e, 'k', viv)!;
    expect(second).toMatchObject({ created: false, won: false, tokenSent: true, cas: 2, exptime: T0 + 30 });
    // memcached counts the autovivified fetch as a hit ("for autovivify case, miss never happens").
    expect(pick(e, GET_COUNTERS)).toEqual({ cmd_get: 2, get_hits: 2, get_misses: 0, cmd_touch: 0, touch_hits: 0, touch_misses: 0 });
    // The winner stores the real value: a fresh item, no token any more.
    expect(set(e, 'k', 'real').result).toBe('STORED');
    expect(metaGet(e, 'k', viv)).toMatchObject({ won: false, tokenSent: false, created: false, nbytes: 4 });
    checkStore(e);
  });

  it('T then N in request order: the later flag sets the TTL of a created item', () => {
    const e = makeEngine();
    metaGet(e, 'a', metaReq({ touchAt: 2, touchExptime: T0 + 5, vivifyAt: 3, vivifyExptime: T0 + 50, locked: true }));
    expect(exptimeOf(e, 'a')).toBe(T0 + 50);
    metaGet(e, 'b', metaReq({ vivifyAt: 2, vivifyExptime: T0 + 50, touchAt: 3, touchExptime: T0 + 5, locked: true }));
    expect(exptimeOf(e, 'b')).toBe(T0 + 5);
    expect(metaGet(e, 'a', metaReq({ touchAt: 2, touchExptime: 0, locked: true }))!.exptime).toBe(T0 + 50);
    expect(exptimeOf(e, 'a')).toBe(0);
    expect(metaGet(e, 'zz', metaReq({ touchAt: 2, touchExptime: 0, locked: true }))).toBeNull();
    // With T a hit counts as a touch, not a get (created items included), but a miss as a get
    // miss: memcached notes T (ttl_set) only while rendering a hit (checked against 1.6.45).
    expect(pick(e, GET_COUNTERS)).toEqual({ cmd_get: 1, get_hits: 0, get_misses: 1, cmd_touch: 3, touch_hits: 3, touch_misses: 0 });
  });

  it('R wins once when the TTL left is below the threshold; never for an item without TTL', () => {
    const e = makeEngine();
    set(e, 'short', 'v', { exptime: T0 + 10 });
    set(e, 'long', 'v', { exptime: T0 + 100 });
    set(e, 'never', 'v', { exptime: 0 });
    const r30 = metaReq({ recacheAt: 2, recacheTime: T0 + 30, locked: true });
    expect(metaGet(e, 'short', r30)).toMatchObject({ won: true, tokenSent: false });
    expect(metaGet(e, 'short', r30)).toMatchObject({ won: false, tokenSent: true });
    expect(metaGet(e, 'long', r30)).toMatchObject({ won: false, tokenSent: false });
    expect(metaGet(e, 'never', r30)).toMatchObject({ won: false, tokenSent: false });
    at(e, T0 + 80);
    expect(metaGet(e, 'long', r30)).toMatchObject({ won: false }); // 20s left is not below T0 + 30
    expect(metaGet(e, 'long', metaReq({ recacheAt: 2, recacheTime: T0 + 80 + 30, locked: true }))).toMatchObject({ won: true });
  });

  it('h/l (locked): the reply sees the item before this fetch bumps it; u does not bump', () => {
    const e = makeEngine();
    set(e, 'k', 'v');
    at(e, T0 + 7);
    const locked = metaReq({ locked: true });
    expect(metaGet(e, 'k', locked)).toMatchObject({ fetched: false, lastAccess: T0 });
    expect(metaGet(e, 'k', locked)).toMatchObject({ fetched: true });
    set(e, 'u', 'v');
    const noBump = metaReq({ locked: true, noBump: true });
    expect(metaGet(e, 'u', noBump)).toMatchObject({ fetched: false });
    expect(metaGet(e, 'u', noBump)).toMatchObject({ fetched: false });
    // Without a locking flag the fetch is bumped as it is read (as memcached's item_get).
    set(e, 'p', 'v');
    expect(metaGet(e, 'p', metaReq())).toMatchObject({ fetched: true });
  });
});

describe('invalidation', () => {
  it('md I marks the item stale with a new CAS; the next reader wins once (X W, then X Z)', () => {
    const e = makeEngine();
    const { cas } = set(e, 'k', 'v', { exptime: T0 + 100 });
    expect(metaDelete(e, 'k', metaReq({ setStale: true, touchAt: 2, touchExptime: T0 + 30 }))).toBe('HD');
    const first = metaGet(e, 'k', metaReq())!;
    expect(first).toMatchObject({ stale: true, won: true, tokenSent: false, exptime: T0 + 30 });
    expect(first.cas).toBe(cas + 1);
    expect(first.value.toString()).toBe('v');
    expect(metaGet(e, 'k', metaReq())).toMatchObject({ stale: true, won: false, tokenSent: true });
    // Not a delete: no delete counted.
    expect(pick(e, ['delete_hits', 'delete_misses', 'curr_items'])).toEqual({ delete_hits: 0, delete_misses: 0, curr_items: 1 });
  });

  it('ms I with an older CAS still stores, marked stale, keeping the TTL and the sent token', () => {
    const e = makeEngine();
    const { cas } = set(e, 'k', 'v1', { exptime: T0 + 100 });
    metaDelete(e, 'k', metaReq({ setStale: true })); // CAS now cas + 1
    metaGet(e, 'k', metaReq()); // this reader won: token sent
    const late = store(e, StoreMode.Cas, 'k', 'v2', { proto: Proto.Meta, casIn: cas, setStale: true, exptime: T0 + 999 });
    expect(late.result).toBe('STORED');
    expect(metaGet(e, 'k', metaReq())).toMatchObject({ stale: true, tokenSent: true, won: false, exptime: T0 + 100, cas: late.cas });
    expect(value(e, 'k')).toBe('v2');
    // A CAS newer than the item's is a plain mismatch, I or not.
    expect(store(e, StoreMode.Cas, 'k', 'v3', { proto: Proto.Meta, casIn: late.cas + 5, setStale: true }).result).toBe('EXISTS');
    // The current CAS is a normal store: the stale mark goes.
    const fresh = store(e, StoreMode.Cas, 'k', 'v4', { proto: Proto.Meta, casIn: late.cas, setStale: true });
    expect(fresh.result).toBe('STORED');
    expect(metaGet(e, 'k', metaReq())).toMatchObject({ stale: false, tokenSent: false, won: false });
    expect(pick(e, ['cas_hits', 'cas_badval'])).toEqual({ cas_hits: 2, cas_badval: 1 });
  });
});

describe('md', () => {
  it('deletes; C must match (EX, counted as a miss); NF on a miss', () => {
    const e = makeEngine();
    expect(metaDelete(e, 'k', metaReq())).toBe('NF');
    const { cas } = set(e, 'k', 'v');
    expect(metaDelete(e, 'k', metaReq({ casCheck: true, casIn: cas + 1 }))).toBe('EX');
    expect(value(e, 'k')).toBe('v');
    expect(metaDelete(e, 'k', metaReq({ casCheck: true, casIn: cas }))).toBe('HD');
    expect(get(e, 'k')).toBeNull();
    expect(pick(e, ['delete_hits', 'delete_misses'])).toEqual({ delete_hits: 1, delete_misses: 2 });
  });

  it('x keeps the item with an empty value, the flags given (F), the TTL given (T) and the old CAS', () => {
    const e = makeEngine();
    const { cas } = set(e, 'k', 'value', { flags: 3, exptime: T0 + 100 });
    expect(metaDelete(e, 'k', metaReq({ removeValue: true, clientFlags: 9, touchAt: 2, touchExptime: T0 + 5 }))).toBe('HD');
    expect(get(e, 'k')).toMatchObject({ nbytes: 0, flags: 9, exptime: T0 + 5, cas, stale: false });
    expect(pick(e, ['delete_hits', 'cmd_set', 'curr_items'])).toEqual({ delete_hits: 1, cmd_set: 1, curr_items: 1 });
    // With I as well: emptied and stale.
    expect(metaDelete(e, 'k', metaReq({ removeValue: true, setStale: true }))).toBe('HD');
    expect(metaGet(e, 'k', metaReq())).toMatchObject({ nbytes: 0, flags: 0, exptime: 0, stale: true, won: true });
    checkStore(e);
  });
});

describe('ma', () => {
  it('N creates the item from J on a miss (no miss counted), then counts by D', () => {
    const e = makeEngine();
    const req = metaReq({ vivifyAt: 2, vivifyExptime: T0 + 60, initial: 10n, delta: 3n, locked: true });
    expect(metaArith(e, 'c', req)).toMatchObject({ result: 'OK', value: 10n, created: true, cas: 2 });
    expect(get(e, 'c')).toMatchObject({ flags: 0, exptime: T0 + 60, nbytes: 2 });
    expect(metaArith(e, 'c', req)).toMatchObject({ result: 'OK', value: 13n, created: false, cas: 3 });
    expect(metaArith(e, 'c', req, false)).toMatchObject({ result: 'OK', value: 10n });
    expect(pick(e, ['incr_misses', 'incr_hits', 'decr_hits', 'cmd_set'])).toEqual({ incr_misses: 0, incr_hits: 1, decr_hits: 1, cmd_set: 0 });
  });

  it('without N a miss is NF (counted); C compares; T sets the TTL of the item changed in place', () => {
    const e = makeEngine();
    expect(metaArith(e, 'n', metaReq()).result).toBe('NOT_FOUND');
    expect(metaArith(e, 'n', metaReq(), false).result).toBe('NOT_FOUND');
    const { cas } = set(e, 'n', '20');
    expect(metaArith(e, 'n', metaReq({ casCheck: true, casIn: cas + 1 })).result).toBe('CAS_MISMATCH');
    expect(metaArith(e, 'n', metaReq({ casCheck: true, casIn: cas, touchAt: 2, touchExptime: T0 + 9, delta: 5n })))
      .toMatchObject({ result: 'OK', value: 25n, copied: false });
    expect(get(e, 'n')).toMatchObject({ exptime: T0 + 9 });
    expect(pick(e, ['incr_misses', 'decr_misses', 'incr_hits'])).toEqual({ incr_misses: 1, decr_misses: 1, incr_hits: 1 });
  });

  it('non-numeric values are refused', () => {
    const e = makeEngine();
    set(e, 'n', 'text');
    expect(metaArith(e, 'n', metaReq()).result).toBe('NON_NUMERIC');
    expect(metaArith(e, 'n', metaReq({ vivifyAt: 2, locked: true })).result).toBe('NON_NUMERIC');
  });

  it('N with memory full and -M: CREATE_NO_MEMORY', () => {
    const e = makeEngine({ memoryLimitBytes: 2 * 1024 * 1024, evictToFree: false });
    for (let i = 0; set(e, `f${i}`, 'xx').result === 'STORED'; i++) if (i > 100_000) throw new Error('never full');
    expect(metaArith(e, 'zz', metaReq({ vivifyAt: 2, initial: 5n, locked: true })).result).toBe('CREATE_NO_MEMORY');
    expect(get(e, 'zz')).toBeNull();
  });
});

describe('E: the CAS a meta command gives the item', () => {
  it('ms, mg N, ma N, md I and ma take E as the new CAS', () => {
    const e = makeEngine();
    expect(store(e, StoreMode.Set, 'ms', 'v', { proto: Proto.Meta, casIdIn: 100 }).cas).toBe(100);
    expect(get(e, 'ms')!.cas).toBe(100);
    expect(metaGet(e, 'mg', metaReq({ vivifyAt: 2, vivifyExptime: 0, casIdIn: 500, locked: true }))!.cas).toBe(500);
    expect(metaArith(e, 'ma', metaReq({ vivifyAt: 2, initial: 5n, casIdIn: 700, locked: true })).cas).toBe(700);
    expect(get(e, 'ma')!.cas).toBe(700);
    set(e, 'md', 'v');
    metaDelete(e, 'md', metaReq({ setStale: true, casIdIn: 900 }));
    expect(get(e, 'md')!.cas).toBe(900);
    expect(metaArith(e, 'ma', metaReq({ casIdIn: 1000 })).cas).toBe(1000);
    expect(get(e, 'ma')!.cas).toBe(1000);
  });

  // KNOWN DIVERGENCE (CAS numbering; the conformance tests normalise CAS values, so only
  // this test sees it). memcached 1.6.45 takes a CAS number from its counter before
  // do_store_item, for every storage command that gets that far (stored or not: add on a
  // present key, replace/append on a missing one, a cas mismatch), and takes none when E
  // gives the CAS or md x keeps the old one. The engine takes a number only when it links
  // an item (Items.link), E or not. Sent to memcached 1.6.45, step by step: set a, ms b
  // E100, set c, mg d N30 E500, set e, ma f N0 J5 E700, set g, md g I E900, set h, ma h
  // E1000, set i, add i (NOT_STORED), set j, md j x, set k; gets shows a=2 c=3 e=4 g=5 h=6
  // i=8 j=10 k=11. The engine gives a=2 c=4 e=6 g=8 h=9 i=11 j=12 k=14. it.fails: remove
  // `.fails` once the engine numbers as memcached.
  it.fails('KNOWN DIVERGENCE: CAS numbers as memcached 1.6.45 hands them out (E, failed stores, md x)', () => {
    const e = makeEngine();
    const cas: Record<string, number> = {};
    cas.a = set(e, 'a', '1').cas;
    store(e, StoreMode.Set, 'b', 'x', { proto: Proto.Meta, casIdIn: 100 });
    cas.c = set(e, 'c', '1').cas;
    metaGet(e, 'd', metaReq({ vivifyAt: 2, vivifyExptime: T0 + 30, casIdIn: 500, locked: true }));
    cas.e = set(e, 'e', '1').cas;
    metaArith(e, 'f', metaReq({ vivifyAt: 2, initial: 5n, casIdIn: 700, locked: true }));
    cas.g = set(e, 'g', '1').cas;
    metaDelete(e, 'g', metaReq({ setStale: true, casIdIn: 900 }));
    cas.h = set(e, 'h', '1').cas;
    metaArith(e, 'h', metaReq({ casIdIn: 1000 }));
    cas.i = set(e, 'i', '1').cas;
    expect(store(e, StoreMode.Add, 'i', '1').result).toBe('NOT_STORED');
    cas.j = set(e, 'j', '1').cas;
    expect(metaDelete(e, 'j', metaReq({ removeValue: true }))).toBe('HD');
    cas.k = set(e, 'k', '1').cas;
    expect(cas).toEqual({ a: 2, c: 3, e: 4, g: 5, h: 6, i: 8, j: 10, k: 11 });
  });
});

describe('me', () => {
  it('describes a live item and counts cmd_meta, hit or miss', () => {
    const e = makeEngine();
    set(e, 'k', 'abc', { flags: 1, exptime: T0 + 10 });
    const k = b('k');
    let seen: ItemView | null = null;
    expect(e.metaDebug(new ItemView(Proto.Meta), k, 0, k.length, { item: (v) => { seen = { ...v } as ItemView; } })).toBe(true);
    expect(seen).toMatchObject({ nbytes: 3, flags: 1, exptime: T0 + 10, fetched: false });
    const z = b('nope');
    expect(e.metaDebug(new ItemView(Proto.Meta), z, 0, z.length, { item: () => { throw new Error('no item'); } })).toBe(false);
    expect(pick(e, ['cmd_meta', 'cmd_get'])).toEqual({ cmd_meta: 2, cmd_get: 0 });
    expect(incr(e, 'k', 1).result).toBe('NON_NUMERIC');
  });
});
