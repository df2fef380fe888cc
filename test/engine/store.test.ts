/**
 * Storage commands at the engine level (Engine.allocForStore + commitStore, Engine.get,
 * Engine.delete), as memcached 1.6.45's do_store_item answers them: the result of each mode
 * on a missing and on a present item, the CAS a store hands back, the CAS rules, too large
 * and out of memory (and what a failed set does to the old value), and the counters each
 * operation moves, the same whichever protocol calls.
 */
import { describe, expect, it } from 'vitest';
import { StoreMode } from '../../src/engine/engine';
import { Proto } from '../../src/engine/item-view';
import { ITEM_HEADER_BYTES } from '../../src/store/items';
import { Prng, seedFromEnv } from '../helpers/prng';
import { checkStore } from '../store/invariants';
import {
  T0, at, b, decr, del, get, incr, makeEngine, pick, set, stats, store, touch, value, type StoreWord,
} from './helpers';

const MIB = 1024 * 1024;

describe('set, add, replace', () => {
  it('set stores and hands back the CAS: the first is 2, each store takes the next one', () => {
    const e = makeEngine();
    expect(set(e, 'a', '1')).toEqual({ result: 'STORED', cas: 2, storedBytes: -1 });
    expect(set(e, 'b', '2')).toEqual({ result: 'STORED', cas: 3, storedBytes: -1 });
    expect(set(e, 'a', 'three', { flags: 0xffffffff, exptime: T0 + 50 })).toEqual({ result: 'STORED', cas: 4, storedBytes: -1 });
    const a = get(e, 'a')!;
    expect(a.value.toString()).toBe('three');
    expect([a.flags, a.cas, a.exptime, a.nbytes]).toEqual([0xffffffff, 4, T0 + 50, 5]);
    expect(get(e, 'b')!.cas).toBe(3);
  });

  it('add stores only a missing key (an expired one counts as missing)', () => {
    const e = makeEngine();
    expect(store(e, StoreMode.Add, 'x', 'first')).toEqual({ result: 'STORED', cas: 2, storedBytes: -1 });
    expect(store(e, StoreMode.Add, 'x', 'second', { flags: 5 })).toEqual({ result: 'NOT_STORED', cas: 0, storedBytes: -1 });
    const x = get(e, 'x')!;
    expect([x.value.toString(), x.flags, x.cas]).toEqual(['first', 0, 2]);

    expect(set(e, 'y', 'old', { exptime: T0 + 10 }).result).toBe('STORED');
    at(e, T0 + 9);
    expect(store(e, StoreMode.Add, 'y', 'new').result).toBe('NOT_STORED');
    at(e, T0 + 10);
    expect(store(e, StoreMode.Add, 'y', 'new').result).toBe('STORED');
    expect(value(e, 'y')).toBe('new');
    // The expired item was found (and reclaimed) by the add's lookup.
    expect(pick(e, ['get_expired', 'cmd_set', 'curr_items'])).toEqual({ get_expired: 1, cmd_set: 5, curr_items: 2 });
  });

  it('replace stores only over a present key, with its own flags, exptime and value', () => {
    const e = makeEngine();
    expect(store(e, StoreMode.Replace, 'r', 'v')).toEqual({ result: 'NOT_STORED', cas: 0, storedBytes: -1 });
    expect(get(e, 'r')).toBeNull();
    // As memcached, the refused replace used up CAS 2 (a store takes its CAS before it is tried).
    set(e, 'r', 'old', { flags: 1, exptime: T0 + 100 }); // cas 3
    expect(store(e, StoreMode.Replace, 'r', 'newer', { flags: 2, exptime: 0 })).toEqual({ result: 'STORED', cas: 4, storedBytes: -1 });
    const r = get(e, 'r')!;
    expect([r.value.toString(), r.flags, r.exptime, r.cas]).toEqual(['newer', 2, 0, 4]);
  });
});

describe('append and prepend', () => {
  it('need a present key; the merged item keeps the old flags and exptime and gets a new CAS', () => {
    const e = makeEngine();
    expect(store(e, StoreMode.Append, 'm', 'x').result).toBe('NOT_STORED');
    expect(store(e, StoreMode.Prepend, 'm', 'x').result).toBe('NOT_STORED');
    expect(get(e, 'm')).toBeNull();
    set(e, 'm', 'mid', { flags: 7, exptime: T0 + 100 }); // cas 4: the two refused stores used up 2 and 3, as in memcached
    expect(store(e, StoreMode.Append, 'm', '-end', { flags: 9, exptime: T0 + 5 }))
      .toEqual({ result: 'STORED', cas: 5, storedBytes: 7 });
    expect(store(e, StoreMode.Prepend, 'm', 'start-')).toEqual({ result: 'STORED', cas: 6, storedBytes: 13 });
    const m = get(e, 'm')!;
    expect([m.value.toString(), m.flags, m.exptime, m.cas]).toEqual(['start-mid-end', 7, T0 + 100, 6]);
  });

  it('with a CAS: a match appends, anything else is EXISTS and changes nothing', () => {
    const e = makeEngine();
    const { cas } = set(e, 'm', 'a');
    expect(store(e, StoreMode.Append, 'm', 'b', { casIn: cas + 1 }).result).toBe('EXISTS');
    expect(store(e, StoreMode.Prepend, 'm', 'b', { casIn: cas - 1 }).result).toBe('EXISTS');
    expect(value(e, 'm')).toBe('a');
    // The two refused stores used up cas + 1 and cas + 2 (as memcached).
    expect(store(e, StoreMode.Append, 'm', 'b', { casIn: cas })).toEqual({ result: 'STORED', cas: cas + 3, storedBytes: 2 });
    expect(value(e, 'm')).toBe('ab');
    // Not counted as cas commands.
    expect(pick(e, ['cas_hits', 'cas_badval', 'cas_misses'])).toEqual({ cas_hits: 0, cas_badval: 0, cas_misses: 0 });
  });

  it('merge values across chunk boundaries byte for byte (a chunked result)', () => {
    const e = makeEngine();
    const head = Buffer.alloc(600 * 1024, 0x61);
    for (let i = 0; i < head.length; i += 4093) head[i] = i & 0xff;
    const tail = Buffer.alloc(100 * 1024, 0x62);
    tail[tail.length - 1] = 0x7a;
    set(e, 'big', head);
    expect(store(e, StoreMode.Append, 'big', tail).storedBytes).toBe(head.length + tail.length);
    expect(get(e, 'big')!.value.equals(Buffer.concat([head, tail]))).toBe(true);
    expect(store(e, StoreMode.Prepend, 'big', 'P').storedBytes).toBe(head.length + tail.length + 1);
    expect(get(e, 'big')!.value.equals(Buffer.concat([b('P'), head, tail]))).toBe(true);
    checkStore(e);
  });

  it('meta ms MA/MP with N (AppendVivify/PrependVivify) store the value when the key is missing', () => {
    const e = makeEngine();
    expect(store(e, StoreMode.AppendVivify, 'v', 'one', { proto: Proto.Meta }).result).toBe('STORED');
    expect(store(e, StoreMode.PrependVivify, 'v', 'zero-', { proto: Proto.Meta }).storedBytes).toBe(8);
    expect(value(e, 'v')).toBe('zero-one');
  });
});

describe('cas', () => {
  it('missing key: NOT_FOUND; stale or wrong CAS: EXISTS; the current CAS: STORED with a new CAS', () => {
    const e = makeEngine();
    expect(store(e, StoreMode.Cas, 'c', 'v', { casIn: 2 })).toEqual({ result: 'NOT_FOUND', cas: 0, storedBytes: -1 });
    expect(get(e, 'c')).toBeNull();
    const first = set(e, 'c', 'one').cas;
    expect(store(e, StoreMode.Cas, 'c', 'two', { casIn: first + 1000 }).result).toBe('EXISTS');
    expect(store(e, StoreMode.Cas, 'c', 'two', { casIn: first - 1 }).result).toBe('EXISTS');
    // cas with 0: no CAS to compare, which never matches in cas mode.
    expect(store(e, StoreMode.Cas, 'c', 'two', { casIn: 0 }).result).toBe('EXISTS');
    expect(value(e, 'c')).toBe('one');
    const second = store(e, StoreMode.Cas, 'c', 'two', { casIn: first });
    expect(second.result).toBe('STORED');
    // Three refused cas commands used up first + 1 to first + 3 (as memcached).
    expect(second.cas).toBe(first + 4);
    expect(get(e, 'c')!.cas).toBe(second.cas);
    // The CAS just used is stale now.
    expect(store(e, StoreMode.Cas, 'c', 'three', { casIn: first }).result).toBe('EXISTS');
    expect(value(e, 'c')).toBe('two');
    expect(pick(e, ['cas_misses', 'cas_hits', 'cas_badval', 'cmd_set']))
      .toEqual({ cas_misses: 1, cas_hits: 1, cas_badval: 4, cmd_set: 7 });
  });

  it('every change takes a new CAS: set, append, incr, touch does not', () => {
    const e = makeEngine();
    const c1 = set(e, 'n', '10').cas;
    const c2 = store(e, StoreMode.Append, 'n', '0').cas;
    const c3 = incr(e, 'n', 1).cas;
    expect(touch(e, 'n', T0 + 100)).toBe(true);
    const c4 = get(e, 'n')!.cas;
    expect([c1, c2, c3, c4]).toEqual([2, 3, 4, 4]);
    expect(value(e, 'n')).toBe('101');
  });

  it('CAS values are unique across keys and only grow (seeded random stores)', () => {
    const seed = seedFromEnv();
    const rand = new Prng(seed);
    const e = makeEngine();
    const seen = new Set<number>();
    let last = 0;
    const modes = [StoreMode.Set, StoreMode.Add, StoreMode.Replace, StoreMode.Append, StoreMode.Prepend, StoreMode.Cas];
    for (let i = 0; i < 2000; i++) {
      const key = `k${rand.int(0, 30)}`;
      const mode = rand.pick(modes);
      const current = get(e, key)?.cas ?? 0;
      const r = store(e, mode, key, rand.bytes(rand.int(0, 40)), { casIn: mode === StoreMode.Cas ? current : 0 });
      if (r.result !== 'STORED') continue;
      expect(seen.has(r.cas), `seed ${seed}: CAS ${r.cas} handed out twice`).toBe(false);
      expect(r.cas, `seed ${seed}`).toBeGreaterThan(last);
      seen.add(r.cas);
      last = r.cas;
      expect(get(e, key)!.cas).toBe(r.cas);
    }
    expect(seen.size).toBeGreaterThan(500);
    checkStore(e);
  });

  it('without CAS (-C) items carry CAS 0', () => {
    const e = makeEngine({ casEnabled: false });
    expect(set(e, 'a', '1').cas).toBe(0);
    expect(get(e, 'a')!.cas).toBe(0);
    expect(incr(e, 'a', 1).cas).toBe(0);
  });
});

describe('delete', () => {
  it('removes a present key; a missing one is NOT_FOUND; a CAS must match', () => {
    const e = makeEngine();
    expect(del(e, 'd')).toBe('NOT_FOUND');
    const { cas } = set(e, 'd', 'v');
    expect(del(e, 'd', cas + 1, Proto.Binary)).toBe('EXISTS');
    expect(value(e, 'd')).toBe('v');
    expect(del(e, 'd', cas, Proto.Binary)).toBe('DELETED');
    expect(get(e, 'd')).toBeNull();
    set(e, 'd', 'again');
    expect(del(e, 'd')).toBe('DELETED');
    expect(del(e, 'd')).toBe('NOT_FOUND');
    expect(pick(e, ['delete_hits', 'delete_misses', 'curr_items'])).toEqual({ delete_hits: 2, delete_misses: 2, curr_items: 0 });
    checkStore(e);
  });
});

describe('too large', () => {
  // memcached's item_size_ok: sizeof(item) 48 + CAS 8 + key + 1 + (flags ? 4 : 0) + value + CRLF <= -I.
  const FITS = 1024 * 1024 - 48 - 8 - 1 - 1 - 2;

  it('is decided by memcached\'s item size: key, CAS and flags count', () => {
    const e = makeEngine();
    expect(set(e, 'k', Buffer.alloc(FITS)).result).toBe('STORED');
    expect(set(e, 'j', Buffer.alloc(FITS + 1)).result).toBe('TOO_LARGE');
    expect(set(e, 'kk', Buffer.alloc(FITS)).result).toBe('TOO_LARGE');
    expect(set(e, 'f', Buffer.alloc(FITS), { flags: 1 }).result).toBe('TOO_LARGE');
    expect(set(e, 'f', Buffer.alloc(FITS - 4), { flags: 1 }).result).toBe('STORED');
    expect(get(e, 'k')!.nbytes).toBe(FITS);
    const noCas = makeEngine({ casEnabled: false });
    expect(set(noCas, 'k', Buffer.alloc(FITS + 8)).result).toBe('STORED');
    expect(pick(e, ['store_too_large', 'store_no_memory', 'cmd_set'])).toEqual({ store_too_large: 3, store_no_memory: 0, cmd_set: 2 });
  });

  it('a failed set removes the old value; add, replace, append and cas leave it (text, binary)', () => {
    const big = Buffer.alloc(2 * MIB);
    for (const proto of [Proto.Text, Proto.Binary]) {
      const e = makeEngine();
      for (const mode of [StoreMode.Add, StoreMode.Replace, StoreMode.Append, StoreMode.Prepend]) {
        set(e, 'k', 'old');
        expect(store(e, mode, 'k', big, { proto }).result).toBe('TOO_LARGE');
        expect(value(e, 'k'), `mode ${mode}`).toBe('old');
      }
      const { cas } = set(e, 'k', 'old');
      expect(store(e, StoreMode.Cas, 'k', big, { proto, casIn: cas }).result).toBe('TOO_LARGE');
      expect(value(e, 'k')).toBe('old');
      expect(store(e, StoreMode.Set, 'k', big, { proto }).result).toBe('TOO_LARGE');
      expect(get(e, 'k')).toBeNull();
      // The binary protocol allocates a set with a CAS as a set: memcached removes the old value too.
      set(e, 'k', 'old');
      expect(store(e, StoreMode.Cas, 'k', big, { proto, allocMode: StoreMode.Set, casIn: 1 }).result).toBe('TOO_LARGE');
      expect(get(e, 'k')).toBeNull();
      // Counted by the text and meta protocols only (memcached's binary protocol does not).
      expect(stats(e).store_too_large).toBe(proto === Proto.Binary ? 0 : 7);
    }
  });

  it('a failed meta store removes the old value whatever the mode', () => {
    const e = makeEngine();
    set(e, 'k', 'old');
    expect(store(e, StoreMode.Add, 'k', Buffer.alloc(2 * MIB), { proto: Proto.Meta }).result).toBe('TOO_LARGE');
    expect(get(e, 'k')).toBeNull();
    expect(stats(e).store_too_large).toBe(1);
  });
});

describe('out of memory (-M)', () => {
  /** Fill the class of `bytes`-byte values under -m 2 -M until a store fails; returns how many fit. */
  function fillUp(e: ReturnType<typeof makeEngine>, bytes: number, prefix: string): number {
    const val = Buffer.alloc(bytes, 0x31);
    for (let i = 0; i < 100_000; i++) {
      const r = set(e, `${prefix}${i}`, val);
      if (r.result === 'NO_MEMORY') return i;
      if (r.result !== 'STORED') throw new Error(`unexpected ${r.result}`);
    }
    throw new Error('never ran out of memory');
  }

  it('refuses instead of evicting, after exactly -m worth of pages; a failed set drops the old value', () => {
    const e = makeEngine({ memoryLimitBytes: 2 * MIB, evictToFree: false });
    const cls = e.slabs.classFor(ITEM_HEADER_BYTES + 3 + 1000);
    const n = fillUp(e, 1000, 'k');
    expect(n).toBe(2 * e.slabs.perPage[cls]);
    expect(pick(e, ['store_no_memory', 'evictions', 'curr_items'])).toEqual({ store_no_memory: 1, evictions: 0, curr_items: n });
    // add of a present key fails the same way but keeps the old value; set drops it.
    expect(store(e, StoreMode.Add, 'k1', Buffer.alloc(1000)).result).toBe('NO_MEMORY');
    expect(get(e, 'k1')).not.toBeNull();
    expect(set(e, 'k0', Buffer.alloc(1000)).result).toBe('NO_MEMORY');
    expect(get(e, 'k0')).toBeNull();
    // Its chunk is free again.
    expect(set(e, 'k0', Buffer.alloc(1000)).result).toBe('STORED');
    expect(pick(e, ['store_no_memory', 'curr_items'])).toEqual({ store_no_memory: 3, curr_items: n });
    checkStore(e);
  });

  it('incr that needs a bigger item answers NO_MEMORY and keeps the value', () => {
    const e = makeEngine({ memoryLimitBytes: 2 * MIB, evictToFree: false });
    set(e, 'n', '99');
    fillUp(e, 2, 'f');
    expect(incr(e, 'n', 1).result).toBe('NO_MEMORY');
    expect(value(e, 'n')).toBe('99');
    // One that fits in place still works.
    expect(incr(e, 'n', 0).result).toBe('OK');
    expect(decr(e, 'n', 9)).toMatchObject({ result: 'OK', value: 90n });
    expect(pick(e, ['incr_hits', 'decr_hits'])).toEqual({ incr_hits: 2, decr_hits: 1 });
  });
});


describe('counters, once per operation, whichever protocol calls', () => {
  const NAMES = ['cmd_get', 'get_hits', 'get_misses', 'cmd_set', 'cmd_touch', 'touch_hits', 'touch_misses',
    'delete_hits', 'delete_misses', 'incr_hits', 'incr_misses', 'decr_hits', 'decr_misses', 'cas_hits',
    'cas_misses', 'cas_badval', 'store_too_large', 'curr_items', 'total_items'];

  function run(proto: Proto): Record<string, number> {
    const e = makeEngine();
    const p = { proto };
    store(e, StoreMode.Set, 'a', '1', p);
    store(e, StoreMode.Add, 'a', '1', p); // not stored, still a set command
    get(e, 'a', proto);
    get(e, 'a', proto);
    get(e, 'nope', proto);
    incr(e, 'a', 5, p);
    incr(e, 'nope', 1, p);
    incr(e, 'a', 1, { decr: true, proto });
    incr(e, 'nope', 1, { decr: true, proto });
    touch(e, 'a', 0);
    touch(e, 'nope', 0);
    const { cas } = get(e, 'a', proto)!;
    store(e, StoreMode.Cas, 'a', '2', { proto, casIn: cas });
    store(e, StoreMode.Cas, 'a', '3', { proto, casIn: cas });
    store(e, StoreMode.Cas, 'nope', '3', { proto, casIn: cas });
    store(e, StoreMode.Set, 'big', Buffer.alloc(2 * MIB), p);
    del(e, 'a', 0, proto);
    del(e, 'a', 0, proto);
    return pick(e, NAMES);
  }

  it('text, meta and binary calls move the same counters by the same amounts (store_too_large aside)', () => {
    const text = run(Proto.Text);
    expect(text).toEqual({
      cmd_get: 4, get_hits: 3, get_misses: 1, cmd_set: 5, cmd_touch: 2, touch_hits: 1, touch_misses: 1,
      delete_hits: 1, delete_misses: 1, incr_hits: 1, incr_misses: 1, decr_hits: 1, decr_misses: 1,
      cas_hits: 1, cas_misses: 1, cas_badval: 1, store_too_large: 1, curr_items: 0, total_items: 2,
    });
    expect(run(Proto.Meta)).toEqual(text);
    expect(run(Proto.Binary)).toEqual({ ...text, store_too_large: 0 });
  });
});

describe('a seeded random mix against a model', () => {
  it('answers as the model says, keeps every value byte for byte and the store consistent', () => {
    const seed = seedFromEnv();
    const rand = new Prng(seed);
    const e = makeEngine({ memoryLimitBytes: 64 * MIB });
    const model = new Map<string, { value: Buffer; flags: number; cas: number }>();
    const chunked = (key: string, v: Buffer, flags: number): boolean =>
      ITEM_HEADER_BYTES + (flags !== 0 ? 4 : 0) + key.length + v.length > e.slabs.classSize[e.slabs.largestClass];
    let bigOk = false;
    const randomValue = (): Buffer => {
      switch (rand.int(0, 9)) {
        case 0: return b(String(rand.int(0, 1_000_000)));
        case 1: return bigOk ? Buffer.alloc(rand.int(600_000, 700_000), rand.int(0, 255)) : b(' 42 '); // chunked
        case 2: return Buffer.alloc(0);
        default: return rand.bytes(rand.int(1, 3000));
      }
    };
    const msg = (i: number, what: string): string => `seed ${seed}, step ${i}: ${what}`;
    for (let i = 0; i < 3000; i++) {
      const keyNo = rand.int(0, 40);
      const key = `key:${keyNo}`;
      bigOk = keyNo < 5; // large values on a few keys only, so -m is never reached
      const cur = model.get(key);
      const op = rand.int(0, 9);
      if (op <= 5) {
        const mode = rand.pick([StoreMode.Set, StoreMode.Add, StoreMode.Replace, StoreMode.Append, StoreMode.Prepend, StoreMode.Cas]);
        const val = randomValue();
        const flags = rand.int(0, 3);
        const casIn = mode === StoreMode.Cas && cur !== undefined ? (rand.chance(0.7) ? cur.cas : cur.cas - 1) : 0;
        const r = store(e, mode, key, val, { flags, casIn });
        let want: StoreWord;
        switch (mode) {
          case StoreMode.Set: want = 'STORED'; break;
          case StoreMode.Add: want = cur === undefined ? 'STORED' : 'NOT_STORED'; break;
          case StoreMode.Cas: want = cur === undefined ? 'NOT_FOUND' : casIn === cur.cas ? 'STORED' : 'EXISTS'; break;
          default: want = cur === undefined ? 'NOT_STORED' : 'STORED';
        }
        // append/prepend past -I are refused as not stored (the merged item cannot be made)
        if ((mode === StoreMode.Append || mode === StoreMode.Prepend) && cur !== undefined &&
          !e.items.sizeOk(key.length, cur.value.length + val.length, cur.flags)) want = 'NOT_STORED';
        expect(r.result, msg(i, `${mode} ${key}`)).toBe(want);
        if (want === 'STORED') {
          if (mode === StoreMode.Append || mode === StoreMode.Prepend) {
            const merged = mode === StoreMode.Append ? Buffer.concat([cur!.value, val]) : Buffer.concat([val, cur!.value]);
            model.set(key, { value: merged, flags: cur!.flags, cas: r.cas });
          } else {
            model.set(key, { value: val, flags, cas: r.cas });
          }
        }
      } else if (op === 6) {
        expect(del(e, key), msg(i, `delete ${key}`)).toBe(cur === undefined ? 'NOT_FOUND' : 'DELETED');
        model.delete(key);
      } else if (op === 7) {
        const delta = BigInt(rand.int(0, 1000));
        const down = rand.chance(0.5);
        const r = incr(e, key, delta, { decr: down });
        if (cur === undefined) {
          expect(r.result, msg(i, 'incr miss')).toBe('NOT_FOUND');
          continue;
        }
        const n = chunked(key, cur.value, cur.flags) ? null : memcachedNumber(cur.value);
        if (n === null) {
          expect(r.result, msg(i, `incr of ${cur.value.length} bytes`)).toBe('NON_NUMERIC');
          continue;
        }
        const next = down ? (delta > n ? 0n : n - delta) : (n + delta) % (1n << 64n);
        expect(r, msg(i, 'incr')).toMatchObject({ result: 'OK', value: next });
        const digits = b(next.toString());
        const stored = digits.length <= cur.value.length
          ? Buffer.concat([digits, Buffer.alloc(cur.value.length - digits.length, 0x20)]) : digits;
        model.set(key, { value: stored, flags: cur.flags, cas: r.cas });
      } else {
        const g = get(e, key);
        if (cur === undefined) {
          expect(g, msg(i, `get ${key}`)).toBeNull();
        } else {
          expect(g, msg(i, `get ${key}`)).not.toBeNull();
          expect([g!.flags, g!.cas, g!.nbytes], msg(i, `get ${key}`)).toEqual([cur.flags, cur.cas, cur.value.length]);
          expect(g!.value.equals(cur.value), msg(i, `value of ${key}`)).toBe(true);
        }
      }
    }
    expect(stats(e).evictions).toBe(0);
    const census = checkStore(e);
    expect(census.items).toBe(model.size);
    for (const [key, want] of model) {
      const g = get(e, key)!;
      expect(g.value.equals(want.value), `seed ${seed}: ${key}`).toBe(true);
      expect(g.cas).toBe(want.cas);
    }
  });
});

/**
 * memcached's safe_strtoull over a stored value (followed by CRLF there): leading
 * whitespace, an optional sign, decimal digits below 2^64, then whitespace, a NUL or the end.
 * A minus sign is refused (memcached accepts "-0"; see delta.test.ts).
 */
function memcachedNumber(v: Buffer): bigint | null {
  const space = (c: number): boolean => c === 0x20 || (c >= 0x09 && c <= 0x0d);
  let i = 0;
  while (i < v.length && space(v[i])) i++;
  if (v[i] === 0x2b) i++;
  const start = i;
  while (i < v.length && v[i] >= 0x30 && v[i] <= 0x39) i++;
  // strtoull stops at the first non-digit; memcached's safe_strtoull takes a space or a NUL there.
  if (i === start || (i < v.length && !space(v[i]) && v[i] !== 0)) return null;
  const n = BigInt(v.toString('latin1', start, i));
  return n < 1n << 64n ? n : null;
}
