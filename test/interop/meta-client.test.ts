/**
 * The meta-protocol client in test/helpers/meta-client.ts against the target (MCTS_TARGET:
 * ours by default, `memcached` for Debian's): storage modes, CAS, deletion, arithmetic,
 * stale-while-revalidate (md I, mg W/X/Z, ms I), pipelined quiet gets ended by mn, opaques.
 */

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MetaClient } from '../helpers/meta-client';
import { startTarget, stopAll, type ServerProcess } from '../helpers/servers';

let server: ServerProcess | undefined;
let client: MetaClient | undefined;

function mc(): MetaClient {
  if (client === undefined) throw new Error('no client');
  return client;
}

beforeAll(async () => {
  server = await startTarget(['-m', '64']);
  client = await MetaClient.connect(server.port);
}, 30_000);

afterAll(async () => {
  client?.close();
  await stopAll(server);
}, 20_000);

beforeEach(async () => {
  const c = mc();
  const flushed = await c.request('flush_all');
  expect(flushed.line).toBe('OK');
});

describe('meta client against the target', () => {
  it('set, get with flags, size, key and opaque', async () => {
    const c = mc();
    expect((await c.set('k1', 'hello', ['F42', 'T0'])).status).toBe('HD');
    const got = await c.get('k1', ['v', 'f', 's', 'k', 'O77', 't']);
    expect(got.status).toBe('VA');
    expect(got.value?.toString()).toBe('hello');
    expect([...got.flags]).toEqual([['f', '42'], ['s', '5'], ['k', 'k1'], ['O', '77'], ['t', '-1']]);
    const miss = await c.get('absent', ['v', 'O5', 'k']);
    expect(miss.status).toBe('EN');
    const hd = await c.get('k1', []);
    expect(hd.status).toBe('HD');
  }, 10_000);

  it('storage modes, CAS and invalidation', async () => {
    const c = mc();
    expect((await c.set('m', 'b', ['MA'])).status).toBe('NS');
    expect((await c.set('m', 'b', ['ME', 'c'])).status).toBe('HD');
    expect((await c.set('m', 'x', ['ME'])).status).toBe('NS');
    expect((await c.set('m', 'c', ['MA'])).status).toBe('HD');
    expect((await c.set('m', 'a', ['MP'])).status).toBe('HD');
    expect((await c.set('nope', 'a', ['MR'])).status).toBe('NS');
    const withCas = await c.get('m', ['v', 'c']);
    expect(withCas.value?.toString()).toBe('abc');
    const cas = withCas.flags.get('c');
    expect(cas).toMatch(/^\d+$/);
    expect((await c.set('m', 'zz', [`C${BigInt(cas!) + 1000n}`])).status).toBe('EX');
    expect((await c.set('m', 'zz', [`C${cas!}`, 'c'])).status).toBe('HD');
    expect((await c.set('nope', 'v', ['C1'])).status).toBe('NF');
    // memcached 1.6.45 creates the item when an append with N finds none.
    expect((await c.set('viv', 'tail', ['MA', 'N1000'])).status).toBe('HD');
    expect((await c.set('viv', '+', ['MA', 'N1000', 's'])).line).toBe('HD s5');
    expect((await c.get('viv', ['v'])).value?.toString()).toBe('tail+');
  }, 10_000);

  it('delete, with CAS and quietly', async () => {
    const c = mc();
    await c.set('d', 'x');
    const cas = (await c.get('d', ['c'])).flags.get('c')!;
    expect((await c.delete('d', [`C${BigInt(cas) + 1n}`])).status).toBe('EX');
    expect((await c.delete('d', [`C${cas}`, 'k', 'O9'])).line).toBe('HD kd O9');
    expect((await c.delete('d')).status).toBe('NF');
    await c.set('d2', 'x');
    const quiet = c.delete('d2', ['q', 'Oq1']);
    expect((await c.noop()).status).toBe('MN');
    expect((await quiet).status).toBe('quiet');
    expect((await c.get('d2')).status).toBe('EN');
  }, 10_000);

  it('arithmetic: incr, decr, autovivify, initial value, non-numeric', async () => {
    const c = mc();
    expect((await c.arithmetic('n', ['v'])).status).toBe('NF');
    const viv = await c.arithmetic('n', ['N0', 'J10', 'v']);
    expect([viv.status, viv.value?.toString()]).toEqual(['VA', '10']);
    const inc = await c.arithmetic('n', ['D5', 'v', 't', 'k']);
    expect(inc.value?.toString()).toBe('15');
    expect(inc.flags.get('k')).toBe('n');
    const dec = await c.arithmetic('n', ['MD', 'D100', 'v']);
    expect(dec.value?.toString()).toBe('0');
    expect((await c.arithmetic('n', ['MI'])).status).toBe('HD');
    expect((await c.get('n')).value?.toString().trim()).toBe('1');
    await c.set('s', 'abc');
    expect((await c.arithmetic('s', ['v'])).status).toBe('CLIENT_ERROR');
    const casd = await c.arithmetic('n', ['c', 'v']);
    expect(casd.flags.get('c')).toMatch(/^\d+$/);
    expect((await c.arithmetic('n', [`C${BigInt(casd.flags.get('c')!) + 1n}`])).status).toBe('EX');
  }, 10_000);

  it('stale-while-revalidate: md I, mg W/X/Z, ms I', async () => {
    const c = mc();
    await c.set('swr', 'old', ['T1000']);
    const cas = (await c.get('swr', ['c'])).flags.get('c')!;
    expect((await c.delete('swr', ['I', 'T30'])).status).toBe('HD');
    const first = await c.get('swr', ['v', 'c']);
    expect(first.status).toBe('VA');
    expect(first.value?.toString()).toBe('old');
    expect(first.flags.has('W')).toBe(true);
    expect(first.flags.has('X')).toBe(true);
    const second = await c.get('swr', ['v']);
    expect(second.flags.has('W')).toBe(false);
    expect(second.flags.has('X')).toBe(true);
    expect(second.flags.has('Z')).toBe(true);
    // A set with the old CAS and I: stored but stays stale.
    expect((await c.set('swr', 'new1', ['I', `C${cas}`])).status).toBe('HD');
    const stale = await c.get('swr', ['v']);
    expect(stale.value?.toString()).toBe('new1');
    expect(stale.flags.has('X')).toBe(true);
    // A plain set clears the stale state.
    await c.set('swr', 'fresh');
    const fresh = await c.get('swr', ['v']);
    expect([...fresh.flags.keys()]).toEqual([]);
    // Recache: the first mg with R above the remaining TTL wins, later ones see Z.
    const r1 = await c.get('swr', ['v', 'R100000', 'T50']);
    expect(r1.flags.has('W')).toBe(false); // no TTL yet (T0): R does not apply
    const r2 = await c.get('swr', ['v', 'R100000']);
    expect(r2.flags.has('W')).toBe(true);
    expect((await c.get('swr', ['v', 'R100000'])).flags.has('Z')).toBe(true);
    // Vivify on miss: the first client wins, later ones see Z.
    const v1 = await c.get('lazy', ['v', 'N30']);
    expect([v1.status, v1.flags.has('W')]).toEqual(['VA', true]);
    const v2 = await c.get('lazy', ['v', 'N30']);
    expect([v2.flags.has('W'), v2.flags.has('Z')]).toEqual([false, true]);
  }, 10_000);

  it('pipelined quiet gets terminated by mn, replies matched by opaque', async () => {
    const c = mc();
    const keys = Array.from({ length: 50 }, (_, i) => `p${i}`);
    const quietSets = keys.filter((_, i) => i % 3 === 0).map((k) => c.set(k, `v-${k}`, ['q']));
    await c.noop();
    expect((await Promise.all(quietSets)).every((r) => r.status === 'quiet')).toBe(true);
    const hits = await c.getMany(keys);
    expect([...hits.keys()]).toEqual(keys.filter((_, i) => i % 3 === 0));
    for (const [key, reply] of hits) {
      expect(reply.value?.toString()).toBe(`v-${key}`);
      expect(reply.flags.get('k')).toBe(key);
    }
    // Mixed quiet and loud, opaques echoed in order.
    const replies = await Promise.all([
      c.get('p0', ['v', 'Oa']), c.get('p1', ['v', 'q', 'Ob']), c.get('p3', ['s', 'q', 'Oc']), c.get('p4', ['Od']), c.noop(),
    ]);
    expect(replies.map((r) => [r.status, r.flags.get('O')])).toEqual([
      ['VA', 'a'], ['quiet', undefined], ['HD', 'c'], ['EN', 'd'], ['MN', undefined],
    ]);
  }, 10_000);

  it('base64 keys', async () => {
    const c = mc();
    const raw = Buffer.from([0, 1, 2, 0xff, 0x20, 0x0d, 0x0a]);
    const b64 = raw.toString('base64');
    expect((await c.set(b64, 'bin', ['b'])).status).toBe('HD');
    const got = await c.get(b64, ['b', 'v', 'k']);
    expect(got.value?.toString()).toBe('bin');
    expect(got.flags.get('k')).toBe(b64);
    expect(got.flags.has('b')).toBe(true);
    // A base64 key naming a printable key is the same item.
    await c.set('plain', 'same');
    expect((await c.get(Buffer.from('plain').toString('base64'), ['b', 'v'])).value?.toString()).toBe('same');
  }, 10_000);
});
