/**
 * incr/decr at the engine level (Engine.incrDecr, Engine.createNumber), as memcached
 * 1.6.45's do_add_delta: 64-bit unsigned arithmetic that wraps on incr and stops at 0 on
 * decr, the value read as safe_strtoull reads it (the odd forms below were checked against
 * memcached 1.6.45), the new digits written in place padded with spaces when they fit, a
 * new item otherwise, a new CAS either way, and the counters.
 */
import { describe, expect, it } from 'vitest';
import { ItemView, Proto } from '../../src/engine/item-view';
import { checkStore } from '../store/invariants';
import { T0, at, b, decr, get, incr, makeEngine, pick, set, value } from './helpers';

const MAX = (1n << 64n) - 1n;

describe('incr and decr', () => {
  it('add and subtract; decr stops at 0; the reply value and the stored digits agree', () => {
    const e = makeEngine();
    set(e, 'n', '10');
    expect(incr(e, 'n', 5)).toEqual({ result: 'OK', value: 15n, cas: 3, copied: false });
    expect(value(e, 'n')).toBe('15');
    expect(decr(e, 'n', 20)).toEqual({ result: 'OK', value: 0n, cas: 4, copied: false });
    // In place: the old length stays, padded with spaces (as memcached).
    expect(value(e, 'n')).toBe('0 ');
    expect(decr(e, 'n', 1)).toMatchObject({ result: 'OK', value: 0n });
    expect(incr(e, 'n', 0)).toMatchObject({ result: 'OK', value: 0n });
    expect(pick(e, ['incr_hits', 'decr_hits', 'incr_misses', 'decr_misses'])).toEqual({ incr_hits: 2, decr_hits: 2, incr_misses: 0, decr_misses: 0 });
  });

  it('are 64-bit unsigned: incr wraps modulo 2^64, 2^64 itself is not a number', () => {
    const e = makeEngine();
    set(e, 'max', MAX.toString());
    expect(incr(e, 'max', 2)).toMatchObject({ result: 'OK', value: 1n });
    expect(value(e, 'max')).toBe('1'.padEnd(20, ' '));
    set(e, 'n', '1');
    expect(incr(e, 'n', MAX)).toMatchObject({ result: 'OK', value: 0n });
    set(e, 'n', (MAX - 1n).toString());
    expect(incr(e, 'n', 1)).toMatchObject({ result: 'OK', value: MAX });
    expect(decr(e, 'n', MAX)).toMatchObject({ result: 'OK', value: 0n });
    set(e, 'over', (MAX + 1n).toString());
    expect(incr(e, 'over', 1).result).toBe('NON_NUMERIC');
    expect(value(e, 'over')).toBe('18446744073709551616');
  });

  it('a longer result is a new item with a new CAS, the same flags and exptime', () => {
    const e = makeEngine();
    const old = set(e, 'n', '99', { flags: 42, exptime: T0 + 100 }).cas;
    const r = incr(e, 'n', 1);
    expect(r).toEqual({ result: 'OK', value: 100n, cas: old + 1, copied: true });
    const g = get(e, 'n')!;
    expect([g.value.toString(), g.nbytes, g.flags, g.exptime, g.cas]).toEqual(['100', 3, 42, T0 + 100, old + 1]);
    expect(pick(e, ['curr_items', 'total_items'])).toEqual({ curr_items: 1, total_items: 2 });
    checkStore(e);
  });

  it('a value an unsent reply still holds is copied, not rewritten (memcached\'s refcount rule)', () => {
    const e = makeEngine();
    set(e, 'n', '50');
    let heldCas = 0;
    const k = b('n');
    e.get(new ItemView(), k, 0, k.length, { item: (v) => { heldCas = v.cas; } });
    const held = { isHeld: (_ref: number, cas: number): boolean => cas === heldCas };
    expect(incr(e, 'n', 1, { held })).toMatchObject({ result: 'OK', value: 51n, copied: true });
    expect(value(e, 'n')).toBe('51');
    // Not held any more (another CAS): in place.
    expect(incr(e, 'n', 1, { held })).toMatchObject({ result: 'OK', value: 52n, copied: false });
  });

  it('a missing key is NOT_FOUND, counted per direction; an expired one too', () => {
    const e = makeEngine();
    expect(incr(e, 'x', 1).result).toBe('NOT_FOUND');
    expect(decr(e, 'x', 1).result).toBe('NOT_FOUND');
    expect(decr(e, 'x', 1).result).toBe('NOT_FOUND');
    set(e, 'old', '1', { exptime: T0 + 1 });
    at(e, T0 + 1);
    expect(incr(e, 'old', 1).result).toBe('NOT_FOUND');
    expect(pick(e, ['incr_misses', 'decr_misses', 'incr_hits', 'get_expired'])).toEqual({ incr_misses: 2, decr_misses: 2, incr_hits: 0, get_expired: 1 });
  });

  it('compare a CAS when one is given (binary): a mismatch changes nothing', () => {
    const e = makeEngine();
    const { cas } = set(e, 'n', '7');
    expect(incr(e, 'n', 1, { casIn: cas + 1, proto: Proto.Binary }).result).toBe('CAS_MISMATCH');
    expect(value(e, 'n')).toBe('7');
    expect(incr(e, 'n', 1, { casIn: cas, proto: Proto.Binary })).toMatchObject({ result: 'OK', value: 8n });
    expect(pick(e, ['incr_hits'])).toEqual({ incr_hits: 1 });
  });

  it('refuse what safe_strtoull refuses, without counting a hit or changing the value', () => {
    const e = makeEngine();
    for (const v of ['abc', '12abc', '', '-5', '- 5', '+-5', '\u00005', ' ', '1.5', '0x10']) {
      set(e, 'v', v);
      expect(incr(e, 'v', 1).result, JSON.stringify(v)).toBe('NON_NUMERIC');
      expect(decr(e, 'v', 1).result, JSON.stringify(v)).toBe('NON_NUMERIC');
      expect(value(e, 'v')).toBe(v);
    }
    set(e, 'chunked', Buffer.alloc(600 * 1024, 0x31));
    expect(incr(e, 'chunked', 1).result).toBe('NON_NUMERIC');
    expect(pick(e, ['incr_hits', 'decr_hits'])).toEqual({ incr_hits: 0, decr_hits: 0 });
  });

  // Each of these was sent to memcached 1.6.45: value stored, `incr k 1`, then `get k`.
  const ACCEPTED: [string, bigint, string][] = [
    ['+7', 8n, '8 '],
    ['5 ab', 6n, '6   '],
    ['\t\n 7\u000b', 8n, '8    '],
    ['5\u0000x', 6n, '6  '],
    ['-0', 1n, '1 '],
    ['-18446744073709551615', 2n, '2'.padEnd(21, ' ')],
    [`${'0'.repeat(40)}1`, 2n, '2'.padEnd(41, ' ')],
    [`${' '.repeat(40)}5`, 6n, '6'.padEnd(41, ' ')],
    [`5${' '.repeat(100)}`, 6n, '6'.padEnd(101, ' ')],
    [`5${' '.repeat(5000)}`, 6n, '6'.padEnd(5001, ' ')],
  ];

  it('read the value as memcached does: whitespace, a sign, a NUL, long padding', () => {
    const e = makeEngine();
    for (const [stored, next, after] of ACCEPTED) {
      set(e, 'k', stored);
      expect(incr(e, 'k', 1), JSON.stringify(stored)).toMatchObject({ result: 'OK', value: next, copied: false });
      expect(value(e, 'k'), JSON.stringify(stored)).toBe(after);
    }
    set(e, 'k', '-18446744073709551616');
    expect(incr(e, 'k', 1).result).toBe('NON_NUMERIC');
    checkStore(e);
  });

  it('through the meta and binary entry points too (a long padded value, in place)', () => {
    const e = makeEngine();
    set(e, 'k', `9${' '.repeat(300)}`);
    expect(incr(e, 'k', 1, { proto: Proto.Binary })).toMatchObject({ result: 'OK', value: 10n, copied: false });
    expect(value(e, 'k')).toBe('10'.padEnd(301, ' '));
  });
});

describe('createNumber (binary incr with an initial value, meta ma N)', () => {
  it('stores the initial value as an add after a miss, counting no miss', () => {
    const e = makeEngine();
    const v = new ItemView(Proto.Binary);
    const k = b('c');
    expect(e.incrDecr(v, k, 0, k.length, true, 5n, 0, null, true)).toBe(1 /* NotFound */);
    expect(e.createNumber(v, k, 0, k.length, 1234n, T0 + 60)).toBe(true);
    expect([v.delta, v.cas]).toEqual([1234n, 2]);
    const g = get(e, 'c')!;
    expect([g.value.toString(), g.flags, g.exptime, g.cas]).toEqual(['1234', 0, T0 + 60, 2]);
    // Present now: not created again, the value stays.
    expect(e.createNumber(v, k, 0, k.length, 1n, 0)).toBe(false);
    expect(value(e, 'c')).toBe('1234');
    expect(pick(e, ['incr_misses', 'incr_hits', 'cmd_set'])).toEqual({ incr_misses: 0, incr_hits: 0, cmd_set: 0 });
  });
});

describe('a seeded walk of incr/decr', () => {
  it('agrees with BigInt arithmetic and keeps the store consistent', () => {
    const e = makeEngine();
    let n = 0n;
    let stored = '0';
    set(e, 'w', stored);
    let x = 12345n;
    for (let i = 0; i < 3000; i++) {
      x = (x * 6364136223846793005n + 1442695040888963407n) % (1n << 64n);
      const delta = i % 7 === 0 ? x : x % 1000n;
      const down = (x >> 33n) % 2n === 0n;
      const r = down ? decr(e, 'w', delta) : incr(e, 'w', delta);
      n = down ? (delta > n ? 0n : n - delta) : (n + delta) % (1n << 64n);
      expect(r.value, `step ${i}`).toBe(n);
      const digits = n.toString();
      const fits = digits.length <= stored.length;
      expect(r.copied, `step ${i}`).toBe(!fits);
      stored = fits ? digits.padEnd(stored.length, ' ') : digits;
      expect(value(e, 'w'), `step ${i}`).toBe(stored);
    }
    expect(pick(e, ['curr_items'])).toEqual({ curr_items: 1 });
    checkStore(e);
  });
});

describe('the number path (no bigints) agrees with the exact one', () => {
  // Stored values around every boundary the number path has: 15 digits (its limit), 2^53,
  // whitespace, signs, NUL-terminated and non-numeric values, and results that cross 2^53.
  const stored = ['0', '5', '  7', '9 ', '12\t', '999999999999999', '1000000000000000', '9007199254740990',
    '9007199254740991', '9007199254740992', '18446744073709551615', '+4', '-0', '-5', '00000000000000000042', '12a', '', '4\0zz'];
  const deltas = [0, 1, 3, 10, 999999999999999, 9007199254740991];
  it.each(stored.map((s) => [JSON.stringify(s), s]))('stored %s', (_name, s) => {
    for (const delta of deltas) {
      for (const decrement of [false, true]) {
        const small = makeEngine();
        const exact = makeEngine();
        for (const e of [small, exact]) set(e, 'n', s);
        const a = incr(small, 'n', delta, { decr: decrement });
        const x = incr(exact, 'n', BigInt(delta), { decr: decrement });
        const what = `${decrement ? 'decr' : 'incr'} ${JSON.stringify(s)} by ${delta}`;
        expect(a, what).toEqual(x);
        expect(value(small, 'n'), what).toBe(value(exact, 'n'));
      }
    }
  });
});
