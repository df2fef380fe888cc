/**
 * Our binary session (in-process) against memcached 1.6.45 (over loopback TCP): the
 * same request bytes, replies compared packet by packet after mapping CAS values to
 * first-seen order and blanking what memcached documents as variable (the version string,
 * stat values).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  OP, get, incrExtras, makeBinaryHarness, noop, normalise, req, set, setExtras, u32,
} from './binary-helpers';
import { SENTINEL, startMemcached, stopMemcached, viaMemcached, type Memcached } from './binary-memcached';

function ours(data: Buffer, closes: boolean, overrides = {}): { reply: Buffer; closed: boolean } {
  const h = makeBinaryHarness(overrides);
  const r = h.run([closes ? data : Buffer.concat([data, noop(SENTINEL)])]);
  const reply = closes ? r.reply : r.reply.subarray(0, Math.max(0, r.reply.length - 24));
  return { reply, closed: r.closed };
}

let shared: Memcached | undefined;
beforeAll(async () => {
  shared = await startMemcached();
});

afterAll(() => {
  stopMemcached(shared);
});

const flushq = req({ op: OP.FLUSHQ });
const big = Buffer.alloc(300 * 1024, 0x61);
const tooBig = Buffer.alloc(1024 * 1024 + 10, 0x62);

interface Script {
  parts: Buffer[];
  closes?: boolean;
  statValues?: boolean;
  /** Run against a memcached of its own (slab classes in use show in stats). */
  fresh?: boolean;
  /** Flags for that memcached, and the same settings for ours. */
  args?: string[];
  settings?: Record<string, unknown>;
}

const scripts: Record<string, Script> = {
  'get, getk, getq, getkq: miss and hit with flags and opaque': {
    parts: [
      get('nope', { opaque: 7 }), req({ op: OP.GETK, key: 'nope', opaque: 8 }), req({ op: OP.GETQ, key: 'nope', opaque: 9 }),
      req({ op: OP.GETKQ, key: 'nope' }),
      set('k', 'hello', { flags: 0xdeadbeef, opaque: 10 }), get('k', { opaque: 11 }), req({ op: OP.GETK, key: 'k', opaque: 12 }),
      req({ op: OP.GETQ, key: 'k', opaque: 13 }), req({ op: OP.GETKQ, key: 'k', opaque: 14 }),
    ],
  },
  'set, add, replace and their quiet forms': {
    parts: [
      req({ op: OP.ADD, key: 'a', value: '1', extras: setExtras(1, 0) }), req({ op: OP.ADD, key: 'a', value: '2', extras: setExtras(2, 0) }),
      req({ op: OP.REPLACE, key: 'b', value: '3', extras: setExtras(0, 0) }), req({ op: OP.REPLACE, key: 'a', value: '4', extras: setExtras(0, 0) }),
      get('a'), req({ op: OP.SETQ, key: 'q', value: 'quiet', extras: setExtras(0, 0), opaque: 1 }),
      req({ op: OP.ADDQ, key: 'q', value: 'x', extras: setExtras(0, 0), opaque: 2 }),
      req({ op: OP.REPLACEQ, key: 'zz', value: 'x', extras: setExtras(0, 0), opaque: 3 }),
      req({ op: OP.REPLACEQ, key: 'q', value: 'y', extras: setExtras(0, 0), opaque: 4 }), get('q'),
      set('empty', ''), get('empty'),
    ],
  },
  'cas on set, add, replace, delete': {
    parts: [
      set('c', 'v1'), set('c', 'v2', { cas: 1n }), set('nokey', 'v', { cas: 5n }),
      req({ op: OP.ADD, key: 'c', value: 'v3', extras: setExtras(0, 0), cas: 99n }),
      req({ op: OP.ADD, key: 'new', value: 'v3', extras: setExtras(0, 0), cas: 99n }),
      req({ op: OP.DELETE, key: 'c', cas: 12345n }), get('c'),
    ],
  },
  'delete and deleteq': {
    parts: [
      set('d', '1'), req({ op: OP.DELETE, key: 'd', opaque: 5 }), req({ op: OP.DELETE, key: 'd', opaque: 6 }),
      set('d', '1'), req({ op: OP.DELETEQ, key: 'd' }), req({ op: OP.DELETEQ, key: 'd', opaque: 7 }),
    ],
  },
  'incr and decr with initial values': {
    parts: [
      req({ op: OP.INCR, key: 'n', extras: incrExtras(5n, 100n, 0) }),
      req({ op: OP.INCR, key: 'n', extras: incrExtras(5n, 100n, 0) }),
      req({ op: OP.DECR, key: 'n', extras: incrExtras(1000n, 0n, 0) }),
      req({ op: OP.INCR, key: 'm', extras: incrExtras(1n, 0n, 0xffffffff) }),
      req({ op: OP.DECR, key: 'm', extras: incrExtras(1n, 7n, 0xffffffff) }),
      set('w', '18446744073709551615'), req({ op: OP.INCR, key: 'w', extras: incrExtras(2n, 0n, 0) }), get('w'),
      set('s', 'abc'), req({ op: OP.INCR, key: 's', extras: incrExtras(1n, 0n, 0) }),
      set('e', ''), req({ op: OP.INCR, key: 'e', extras: incrExtras(1n, 0n, 0) }),
      set('t', '10'), req({ op: OP.DECR, key: 't', extras: incrExtras(3n, 0n, 0) }), get('t'),
      req({ op: OP.INCRQ, key: 't', extras: incrExtras(3n, 0n, 0) }),
      req({ op: OP.DECRQ, key: 'gone', extras: incrExtras(3n, 0n, 0xffffffff), opaque: 77 }),
      req({ op: OP.INCR, key: 't', extras: incrExtras(1n, 0n, 0), cas: 4242n }),
      req({ op: OP.INCR, key: 'big', extras: incrExtras(1n, 18446744073709551615n, 0) }), get('big'),
    ],
  },
  'append and prepend': {
    parts: [
      req({ op: OP.APPEND, key: 'x', value: 'tail' }), set('x', 'mid', { flags: 3 }),
      req({ op: OP.APPEND, key: 'x', value: '>>' }), req({ op: OP.PREPEND, key: 'x', value: '<<' }), get('x'),
      req({ op: OP.APPENDQ, key: 'x', value: '!' }), req({ op: OP.PREPENDQ, key: 'nox', value: '!', opaque: 9 }),
      req({ op: OP.APPEND, key: 'x', value: '?', cas: 1n }), get('x'),
    ],
  },
  'flush, flushq, flush with a delay': {
    parts: [
      set('f', '1'), req({ op: OP.FLUSH, opaque: 3 }), get('f'), set('f', '2'), req({ op: OP.FLUSHQ }), get('f'),
      set('g', '3'), req({ op: OP.FLUSH, extras: u32(100) }), get('g'),
    ],
  },
  'touch and gat family': {
    parts: [
      set('t', 'val', { flags: 9 }),
      req({ op: OP.TOUCH, key: 't', extras: u32(100), opaque: 1 }), req({ op: OP.TOUCH, key: 'no', extras: u32(100) }),
      req({ op: OP.GAT, key: 't', extras: u32(100) }), req({ op: OP.GATK, key: 't', extras: u32(0) }),
      req({ op: OP.GATQ, key: 't', extras: u32(0) }), req({ op: OP.GATKQ, key: 't', extras: u32(0) }),
      req({ op: OP.GAT, key: 'no', extras: u32(0) }), req({ op: OP.GATK, key: 'no', extras: u32(0) }),
      req({ op: OP.GATQ, key: 'no', extras: u32(0) }), req({ op: OP.GATKQ, key: 'no', extras: u32(0) }),
      req({ op: OP.GAT, key: 't', extras: u32(0xffffffff) }), get('t'),
    ],
  },
  'noop, version, pipelined gets': {
    parts: [
      noop(1), req({ op: OP.VERSION, opaque: 2 }), set('p1', 'a'), set('p2', 'bb'),
      ...Array.from({ length: 30 }, (_, i) => req({ op: OP.GETKQ, key: `p${i % 4}`, opaque: i })), noop(3),
    ],
  },
  'large values in and out, too large swallowed': {
    parts: [
      set('big', big), get('big'), set('huge', tooBig, { opaque: 4 }), noop(5), get('huge'),
      req({ op: OP.APPEND, key: 'big', value: tooBig }), set('big', tooBig), get('big'),
    ],
  },
  'stats groups (names only)': {
    fresh: true,
    parts: [
      set('s1', 'v'), req({ op: OP.STAT, opaque: 5 }), req({ op: OP.STAT, key: 'settings' }), req({ op: OP.STAT, key: 'items' }),
      req({ op: OP.STAT, key: 'slabs' }), req({ op: OP.STAT, key: 'sizes' }), req({ op: OP.STAT, key: 'nothing' }),
      req({ op: OP.STAT, key: 'conns' }), req({ op: OP.STAT, key: 'detail' }), req({ op: OP.STAT, key: 'detail bad' }),
      req({ op: OP.STAT, key: 'reset', opaque: 6 }),
    ],
  },
  'stats detail': {
    statValues: true,
    parts: [
      req({ op: OP.STAT, key: 'detail on' }), set('a:1', 'v'), get('a:1'), get('b:2'), req({ op: OP.DELETE, key: 'a:1' }),
      req({ op: OP.STAT, key: 'detail dump' }), req({ op: OP.STAT, key: 'detail off' }),
    ],
  },
  'unknown opcodes swallow the body length': {
    parts: [
      req({ op: OP.VERBOSITY, extras: u32(1), opaque: 1 }), Buffer.from('junk'), noop(2),
      req({ op: 0x30, key: 'rg', opaque: 3 }), Buffer.from('xx'), noop(4),
      req({ op: 0x1f, value: 'zzz' }), noop(5),
    ],
  },
  'stat and touch leave extra body bytes as the next request': {
    parts: [
      req({ op: OP.STAT, key: 'sizes', bodylen: 5 + 24 }), noop(1), noop(2),
      set('t', 'v'), req({ op: OP.TOUCH, key: 't', extras: u32(0), bodylen: 5 + 24 }), noop(3), noop(4),
    ],
  },
  'sasl opcodes without -S': {
    parts: [
      req({ op: OP.SASL_LIST, opaque: 1 }), req({ op: OP.SASL_AUTH, key: 'PLAIN', value: '\0u\0p', opaque: 2 }),
      req({ op: OP.SASL_STEP, key: 'PLAIN', value: 'abc', opaque: 3 }),
    ],
  },
  'item size limit: exactly at and one past 1 MiB': {
    parts: [
      set('k', Buffer.alloc(1048516, 0x31)), set('k', Buffer.alloc(1048517, 0x32)), get('k'),
      set('f', Buffer.alloc(1048512, 0x33), { flags: 1 }), set('f', Buffer.alloc(1048513, 0x34), { flags: 1 }),
      req({ op: OP.GETK, key: 'f' }),
    ],
  },
  'flush disabled (-F)': {
    fresh: true, args: ['-F'], settings: { flushEnabled: false },
    parts: [set('a', 'b'), req({ op: OP.FLUSH }), req({ op: OP.FLUSHQ, opaque: 3 }), get('a')],
  },
  'cas disabled (-C)': {
    fresh: true, args: ['-C'], settings: { casEnabled: false },
    parts: [set('a', 'b'), get('a'), set('a', 'c', { cas: 1n }), req({ op: OP.INCR, key: 'n', extras: incrExtras(1n, 1n, 0) }),
      req({ op: OP.INCR, key: 'n', extras: incrExtras(1n, 1n, 0), cas: 3n }), req({ op: OP.DELETE, key: 'a', cas: 3n }),
      req({ op: OP.APPEND, key: 'a', value: '+', cas: 3n }), get('a'),
      req({ op: OP.STAT, key: 'sizes_enable' }), req({ op: OP.STAT, key: 'sizes_disable' })],
  },
  'key of 250 bytes is fine': { parts: [set('k'.repeat(250), 'v'), get('k'.repeat(250))] },
  'quit': { parts: [set('a', 'b'), req({ op: OP.QUIT, opaque: 9 }), noop(1)], closes: true },
  'quitq': { parts: [req({ op: OP.QUITQ }), noop(1)], closes: true },
  'key of 251 bytes closes with EINVAL': { parts: [get('k'.repeat(251), { opaque: 3 }), noop()], closes: true },
  'get with extras closes with EINVAL': { parts: [req({ op: OP.GET, key: 'a', extras: u32(0) }), noop()], closes: true },
  'get without a key closes': { parts: [req({ op: OP.GET })], closes: true },
  'set with wrong extras closes': { parts: [req({ op: OP.SET, key: 'a', extras: u32(0), value: 'v' })], closes: true },
  'incr with a value closes': { parts: [req({ op: OP.INCR, key: 'a', extras: incrExtras(1n, 1n, 0), value: 'v' })], closes: true },
  'noop with a body closes': { parts: [req({ op: OP.NOOP, value: 'x' })], closes: true },
  'version with a key closes': { parts: [req({ op: OP.VERSION, key: 'x' })], closes: true },
  'flush with 8 extras closes': { parts: [req({ op: OP.FLUSH, extras: Buffer.alloc(8) })], closes: true },
  'delete with extras closes': { parts: [req({ op: OP.DELETE, key: 'a', extras: u32(0) })], closes: true },
  'append with extras closes': { parts: [req({ op: OP.APPEND, key: 'a', extras: u32(0), value: 'v' })], closes: true },
  'touch without extras closes': { parts: [req({ op: OP.TOUCH, key: 'a' })], closes: true },
  'stat with extras closes': { parts: [req({ op: OP.STAT, extras: u32(0) })], closes: true },
  'quit with a key closes with EINVAL': { parts: [req({ op: OP.QUIT, key: 'a' })], closes: true },
  'key longer than the body: unknown command, close': { parts: [req({ op: OP.GET, key: 'abc', bodylen: 2 }), noop()], closes: true },
  'extras and key longer than the body': { parts: [req({ op: OP.SET, key: 'abc', extras: setExtras(0, 0), bodylen: 9 })], closes: true },
  'bad magic closes silently': { parts: [set('a', 'b'), req({ op: OP.NOOP, magic: 0x81 }), noop()], closes: true },
  // memcached 1.6.45 refuses a body over 1 GiB with EINVAL and closes (no length arithmetic)
  'a body length of 2^32-1 on set: invalid arguments, then closed': {
    parts: [set('a', 'old'), req({ op: OP.SET, key: 'a', extras: setExtras(0, 0), bodylen: 0xffffffff }), get('a')],
    closes: true,
  },
  'a body length of 2^31+5 on append: invalid arguments, then closed': {
    parts: [set('b', 'old'), req({ op: OP.APPEND, key: 'b', bodylen: 0x80000005 }), get('b')],
    closes: true,
  },
  'queued replies are dropped when a bad magic byte follows': {
    parts: [set('a', 'b'), get('nope'), set('c', 'd'), req({ op: OP.GETQ, key: 'a' }), req({ op: OP.NOOP, magic: 0x00 })],
    closes: true,
  },
  'replies before a noop survive a bad magic byte': {
    parts: [set('a', 'b'), noop(1), set('c', 'd'), req({ op: OP.NOOP, magic: 0x18 })],
    closes: true,
  },
};

describe('binary replies match memcached 1.6.45', () => {
  for (const [name, s] of Object.entries(scripts)) {
    it(name, async () => {
      const data = Buffer.concat([s.args?.includes('-F') ? Buffer.alloc(0) : flushq, ...s.parts]);
      const closes = s.closes === true;
      const own = s.fresh === true ? await startMemcached(s.args ?? []) : undefined;
      let theirs: Buffer;
      try {
        theirs = await viaMemcached((own ?? shared)!.port, data, closes);
      } finally {
        stopMemcached(own);
      }
      const mine = ours(data, closes, s.settings);
      expect(normalise(mine.reply, { statValues: s.statValues })).toBe(normalise(theirs, { statValues: s.statValues }));
      if (closes) expect(mine.closed).toBe(true);
    });
  }
});
