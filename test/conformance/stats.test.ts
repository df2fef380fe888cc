/**
 * `stats` shape: every name memcached prints must also be printed by the target (extra
 * names are allowed), in the same `STAT <name> <value>` form, for `stats`, `stats settings`,
 * `stats items` and `stats slabs`; and counters with fixed meaning must agree after the
 * same commands on fresh servers.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, endsWith } from '../helpers/client';
import { parseStats } from '../helpers/replies';
import { startReference, startTarget, stopAll, type ServerProcess } from '../helpers/servers';

const serverFlags = ['-m', '64'];
let reference: ServerProcess | undefined;
let target: ServerProcess | undefined;

/** The same commands on both servers: items in three slab classes, hits, misses, ... */
const workload =
  'set small 0 0 5\r\nhello\r\n' +
  `set medium 7 0 2000\r\n${'m'.repeat(2_000)}\r\n` +
  `set large 0 0 200000\r\n${'l'.repeat(200_000)}\r\n` +
  'get small medium nothere\r\nget small\r\ngets large\r\n' +
  'set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 1\r\nincr nothere 1\r\ndecr nothere 1\r\n' +
  'touch small 100\r\ntouch nothere 100\r\n' +
  'delete medium\r\ndelete nothere\r\n' +
  'cas small 0 0 1 1\r\nx\r\ncas nothere 0 0 1 1\r\nx\r\n' +
  'add small 0 0 1\r\nx\r\nreplace nothere 0 0 1\r\nx\r\n' +
  'version\r\n';

async function statsOf(server: ServerProcess, sub: string): Promise<{ raw: string; stats: Map<string, string> }> {
  const client = await RawClient.connect(server.port);
  try {
    const reply = await client.request(`stats${sub === '' ? '' : ' ' + sub}\r\n`, endsWith('END\r\n'));
    const raw = reply.toString('latin1');
    return { raw, stats: parseStats(raw) };
  } finally {
    client.close();
  }
}

beforeAll(async () => {
  [reference, target] = await Promise.all([startReference(serverFlags), startTarget(serverFlags)]);
  for (const server of [reference, target]) {
    const client = await RawClient.connect(server.port);
    try {
      await client.request(workload, (b) => b.toString('latin1').includes('VERSION '), 10_000);
    } finally {
      client.close();
    }
  }
}, 40_000);

afterAll(async () => {
  await stopAll(reference, target);
}, 20_000);

function servers(): { reference: ServerProcess; target: ServerProcess } {
  if (reference === undefined || target === undefined) throw new Error('servers did not start');
  return { reference, target };
}

const statLine = /^STAT \S+ \S.*$/;

function expectWellFormed(raw: string, what: string): void {
  expect(raw.endsWith('END\r\n'), `${what} ends with END`).toBe(true);
  const lines = raw.split('\r\n').slice(0, -2);
  const bad = lines.filter((l) => !statLine.test(l));
  expect(bad, `${what}: lines not in "STAT <name> <value>" form`).toEqual([]);
}

function missingNames(reference: Iterable<string>, target: Map<string, string>): string[] {
  return [...reference].filter((name) => !target.has(name));
}

describe('stats names and forms match memcached', () => {
  it('stats: every general stat memcached prints', async () => {
    const { reference: ref, target: tgt } = servers();
    const [r, t] = await Promise.all([statsOf(ref, ''), statsOf(tgt, '')]);
    expectWellFormed(t.raw, 'target stats');
    expect(r.stats.size).toBeGreaterThan(50);
    expect(missingNames(r.stats.keys(), t.stats), 'stats names memcached prints and the target does not').toEqual([]);
  });

  it('stats settings: every setting memcached prints', async () => {
    const { reference: ref, target: tgt } = servers();
    const [r, t] = await Promise.all([statsOf(ref, 'settings'), statsOf(tgt, 'settings')]);
    expectWellFormed(t.raw, 'target stats settings');
    expect(r.stats.size).toBeGreaterThan(40);
    expect(missingNames(r.stats.keys(), t.stats), 'settings memcached prints and the target does not').toEqual([]);
    // Values that follow from the command line, identical by construction.
    for (const name of ['maxbytes', 'udpport', 'inter', 'item_size_max', 'cas_enabled', 'growth_factor', 'evictions', 'flush_enabled']) {
      expect(t.stats.get(name), `stats settings ${name}`).toBe(r.stats.get(name));
    }
  });

  it('stats items: the same per-class fields as items:<class>:<field>', async () => {
    const { reference: ref, target: tgt } = servers();
    const [r, t] = await Promise.all([statsOf(ref, 'items'), statsOf(tgt, 'items')]);
    expectWellFormed(t.raw, 'target stats items');
    const fields = (stats: Map<string, string>): Set<string> => {
      const out = new Set<string>();
      for (const name of stats.keys()) {
        const match = /^items:(\d+):([a-z_]+)$/.exec(name);
        if (match !== null) out.add(match[2]);
      }
      return out;
    };
    const malformed = [...t.stats.keys()].filter((n) => !/^items:\d+:[a-z_]+$/.test(n));
    expect(malformed, 'target stats items names not of the form items:<class>:<field>').toEqual([]);
    const refFields = fields(r.stats);
    expect(refFields.has('number')).toBe(true);
    const targetFields = fields(t.stats);
    expect([...refFields].filter((f) => !targetFields.has(f)), 'stats items fields memcached prints and the target does not').toEqual([]);
    // Three live items were stored in three size ranges: every class lists every field.
    const classesOf = (stats: Map<string, string>): Set<string> => new Set([...stats.keys()].map((n) => n.split(':')[1]));
    for (const cls of classesOf(t.stats)) {
      for (const field of refFields) expect(t.stats.has(`items:${cls}:${field}`), `items:${cls}:${field}`).toBe(true);
    }
    const itemCount = (stats: Map<string, string>): number =>
      [...stats.entries()].filter(([n]) => /^items:\d+:number$/.test(n)).reduce((sum, [, v]) => sum + Number(v), 0);
    expect(itemCount(t.stats), 'sum of items:<class>:number').toBe(itemCount(r.stats));
  });

  it('stats slabs: the same per-class and global fields', async () => {
    const { reference: ref, target: tgt } = servers();
    const [r, t] = await Promise.all([statsOf(ref, 'slabs'), statsOf(tgt, 'slabs')]);
    expectWellFormed(t.raw, 'target stats slabs');
    const split = (stats: Map<string, string>): { perClass: Set<string>; global: Set<string> } => {
      const perClass = new Set<string>();
      const global = new Set<string>();
      for (const name of stats.keys()) {
        const match = /^(\d+):([a-z_]+)$/.exec(name);
        if (match !== null) perClass.add(match[2]);
        else global.add(name);
      }
      return { perClass, global };
    };
    const rs = split(r.stats);
    const ts = split(t.stats);
    expect(rs.perClass.has('chunk_size')).toBe(true);
    expect([...rs.perClass].filter((f) => !ts.perClass.has(f)), 'per-class slab fields missing in the target').toEqual([]);
    expect([...rs.global].filter((f) => !ts.global.has(f)), 'global slab fields missing in the target').toEqual([]);
    const malformed = [...t.stats.keys()].filter((n) => !/^(\d+:)?[a-z_]+$/.test(n));
    expect(malformed, 'target stats slabs names not of the form [<class>:]<field>').toEqual([]);
  });

  it('counters agree after the same commands', async () => {
    const { reference: ref, target: tgt } = servers();
    const [r, t] = await Promise.all([statsOf(ref, ''), statsOf(tgt, '')]);
    const counters = [
      'cmd_get', 'cmd_set', 'cmd_touch', 'get_hits', 'get_misses', 'get_expired', 'get_flushed',
      'delete_misses', 'delete_hits', 'incr_misses', 'incr_hits', 'decr_misses', 'decr_hits',
      'cas_misses', 'cas_hits', 'cas_badval', 'touch_hits', 'touch_misses', 'store_too_large',
      'curr_items', 'total_items', 'evictions', 'limit_maxbytes', 'threads',
    ];
    const differing = counters
      .filter((name) => t.stats.get(name) !== r.stats.get(name))
      .map((name) => `${name}: memcached ${String(r.stats.get(name))}, target ${String(t.stats.get(name))}`);
    expect(differing).toEqual([]);
    expect(Number(t.stats.get('bytes_read')), 'bytes_read covers at least the workload').toBeGreaterThanOrEqual(workload.length);
    expect(Number(t.stats.get('pid')), 'stats pid').toBe(tgt.pid);
  });
});
