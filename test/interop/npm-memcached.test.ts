/**
 * The `memcached` npm client (devDependency) against the target: a round-trip of the
 * commands it offers, through its own parsing of the text protocol.
 */

import Memcached from 'memcached';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTarget, stopAll, type ServerProcess } from '../helpers/servers';

let server: ServerProcess | undefined;
let client: Memcached | undefined;

beforeAll(async () => {
  server = await startTarget(['-m', '64']);
  client = new Memcached(server.address, { retries: 0, timeout: 3_000, reconnect: 1_000, poolSize: 2, idle: 5_000 });
}, 30_000);

afterAll(async () => {
  client?.end();
  await stopAll(server);
}, 20_000);

function mc(): Memcached {
  if (client === undefined) throw new Error('client not created');
  return client;
}

/** Calls a callback-style client method, failing after a bound rather than hanging. */
async function call<T>(what: string, invoke: (cb: (err: unknown, result: T) => void) => void, timeoutMs = 5_000): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
    invoke((err, result) => {
      clearTimeout(timer);
      if (err !== undefined && err !== null && err !== false) reject(err instanceof Error ? err : new Error(`${what}: ${String(err)}`));
      else resolve(result);
    });
  });
}

describe('memcached (npm client)', () => {
  it('set, get, getMulti, incr/decr, del round-trip', async () => {
    const c = mc();
    expect(await call<boolean>('flush', (cb) => c.flush(cb as never))).toBeTruthy();
    expect(await call<boolean>('set', (cb) => c.set('greeting', 'hello world', 100, cb))).toBe(true);
    expect(await call<unknown>('get', (cb) => c.get('greeting', cb))).toBe('hello world');
    expect(await call<unknown>('get missing', (cb) => c.get('missing', cb))).toBeUndefined();

    const object = { name: 'ada', list: [1, 2, 3], nested: { ok: true } };
    await call('set object', (cb) => c.set('obj', object, 0, cb));
    expect(await call<unknown>('get object', (cb) => c.get('obj', cb))).toEqual(object);
    await call('set number', (cb) => c.set('num', 42, 0, cb));
    expect(await call<unknown>('get number', (cb) => c.get('num', cb))).toBe(42);
    const utf8 = 'κλειδί → 値 ✓';
    await call('set utf8', (cb) => c.set('utf8', utf8, 0, cb));
    expect(await call<unknown>('get utf8', (cb) => c.get('utf8', cb))).toBe(utf8);
    const large = 'L'.repeat(300_000);
    await call('set large', (cb) => c.set('large', large, 0, cb));
    expect(await call<unknown>('get large', (cb) => c.get('large', cb))).toBe(large);

    const keys = Array.from({ length: 50 }, (_, i) => `multi${i}`);
    for (const key of keys) await call(`set ${key}`, (cb) => c.set(key, `value of ${key}`, 0, cb));
    const multi = await call<Record<string, unknown>>('getMulti', (cb) => c.getMulti([...keys, 'absent1', 'absent2'], cb));
    expect(multi).toEqual(Object.fromEntries(keys.map((k) => [k, `value of ${k}`])));

    await call('set counter', (cb) => c.set('counter', '10', 0, cb));
    expect(await call<unknown>('incr', (cb) => c.incr('counter', 5, cb))).toBe(15);
    expect(await call<unknown>('decr', (cb) => c.decr('counter', 20, cb))).toBe(0);
    expect(await call<unknown>('incr missing', (cb) => c.incr('nocounter', 1, cb))).toBe(false);

    expect(await call<boolean>('del', (cb) => c.del('greeting', cb))).toBe(true);
    expect(await call<unknown>('get deleted', (cb) => c.get('greeting', cb))).toBeUndefined();
  }, 30_000);

  it('add, replace, append, prepend, gets/cas, touch, version, stats', async () => {
    const c = mc();
    await call('set', (cb) => c.set('k', 'base', 0, cb));
    await expect(call('add existing', (cb) => c.add('k', 'x', 0, cb))).rejects.toThrow(/not stored/i);
    expect(await call<boolean>('add new', (cb) => c.add('k2', 'x', 0, cb))).toBe(true);
    expect(await call<boolean>('replace', (cb) => c.replace('k', 'replaced', 0, cb))).toBe(true);
    await expect(call('replace missing', (cb) => c.replace('nothere', 'x', 0, cb))).rejects.toThrow(/not stored/i);
    expect(await call<boolean>('append', (cb) => c.append('k', '_tail', cb))).toBe(true);
    expect(await call<boolean>('prepend', (cb) => c.prepend('k', 'head_', cb))).toBe(true);
    expect(await call<unknown>('get', (cb) => c.get('k', cb))).toBe('head_replaced_tail');

    const gets = await call<{ k: unknown; cas: string }>('gets', (cb) => c.gets('k', cb as never));
    expect(gets.k).toBe('head_replaced_tail');
    expect(gets.cas).toMatch(/^\d+$/);
    expect(await call<boolean>('cas', (cb) => c.cas('k', 'swapped', gets.cas, 0, cb))).toBe(true);
    expect(await call<boolean>('stale cas', (cb) => c.cas('k', 'again', gets.cas, 0, cb))).toBe(false);
    expect(await call<unknown>('get after cas', (cb) => c.get('k', cb))).toBe('swapped');

    expect(await call<boolean>('touch', (cb) => c.touch('k', 100, cb as never))).toBe(true);

    const versions = await call<Array<{ version: string; server: string }>>('version', (cb) => c.version(cb as never));
    expect(versions).toHaveLength(1);
    expect(versions[0].version).toMatch(/^\S+$/);

    const stats = await call<Array<Record<string, unknown>>>('stats', (cb) => c.stats(cb as never));
    expect(stats).toHaveLength(1);
    expect(Number(stats[0].curr_items)).toBeGreaterThanOrEqual(2);
    expect(Number(stats[0].cmd_set)).toBeGreaterThan(0);
    expect(Number(stats[0].pid)).toBe(server?.pid);
  }, 30_000);
});
