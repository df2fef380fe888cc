/**
 * The shared-memory mutexes (src/store/locks.ts) under real threads: several worker threads
 * (more than this machine's cores, so holders get preempted) update shared counters with
 * non-atomic read-modify-write sequences under a mutex; every update must survive. Runs the
 * compiled module from dist/ (npm test builds first).
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/engine';
import { ServerStats, newStatsTable } from '../../src/metrics/stats';
import { defaultSettings } from '../../src/settings';
import { Mutexes } from '../../src/store/locks';
import { REPO_ROOT } from '../helpers/servers';

const LOCKS_JS = path.join(REPO_ROOT, 'dist', 'store', 'locks.js');

/** A worker: `rounds` times, lock a random mutex of `stripes`, bump its counter slowly, unlock. */
const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const { Mutexes } = require(workerData.locksJs);
const { words, counters, stripes, rounds, seed, sleepEvery } = workerData;
const m = new Mutexes(new Int32Array(words), 0, stripes);
const c = new Float64Array(counters);
let x = seed >>> 0;
for (let r = 0; r < rounds; r++) {
  x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
  const i = x % stripes;
  if (r % 3 === 0) { while (!m.tryLock(i)) {} } else m.lock(i);
  const v = c[i];
  for (let k = 0; k < 20; k++) x = (x * 1103515245 + 12345) >>> 0; // widen the window
  if (sleepEvery > 0 && r % sleepEvery === 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
  c[i] = v + 1;
  m.unlock(i);
}
parentPort.postMessage(m.contended);
`;

async function run(threads: number, stripes: number, rounds: number, sleepEvery: number): Promise<{ total: number; contended: number }> {
  const words = new SharedArrayBuffer(stripes * 4);
  const counters = new SharedArrayBuffer(stripes * 8);
  const results = await Promise.all(Array.from({ length: threads }, async (_, t) => {
    const w = new Worker(WORKER, { eval: true, workerData: { locksJs: LOCKS_JS, words, counters, stripes, rounds, seed: 0x9e3779b9 ^ (t * 7919 + 1), sleepEvery } });
    try {
      return await new Promise<number>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      });
    } finally {
      await w.terminate();
    }
  }));
  const total = new Float64Array(counters).reduce((a, b) => a + b, 0);
  return { total, contended: results.reduce((a, b) => a + b, 0) };
}

describe('shared-memory mutexes', () => {
  it('lose no update: 6 threads on 2 cores, 4 mutexes, 30000 locked read-modify-writes each', async () => {
    const { total, contended } = await run(6, 4, 30000, 0);
    expect(total).toBe(6 * 30000);
    expect(contended).toBeGreaterThan(0);
  }, 60_000);

  it('stay correct when holders sleep inside the critical section (preemption)', async () => {
    const { total } = await run(4, 2, 400, 20);
    expect(total).toBe(4 * 400);
  }, 60_000);

  it('tryLock fails on a held mutex and unlock frees it', () => {
    const m = new Mutexes(new Int32Array(new SharedArrayBuffer(16)), 1, 2);
    expect(m.tryLock(0)).toBe(true);
    expect(m.tryLock(0)).toBe(false);
    expect(m.isHeld(0)).toBe(true);
    expect(m.tryLock(1)).toBe(true);
    m.unlock(0);
    expect(m.tryLock(0)).toBe(true);
    expect(() => new Mutexes(new Int32Array(4), 3, 2)).toThrow();
  });

  it('one-thread mutexes (plain loads and stores) give the same answers over the same words', () => {
    const words = new Int32Array(new SharedArrayBuffer(16));
    const m = new Mutexes(words, 1, 2, false);
    m.lock(0);
    expect(Array.from(words)).toEqual([0, 1, 0, 0]);
    expect(m.tryLock(0)).toBe(false); // held by this thread: the LRU walkers skip such items
    expect(m.isHeld(0)).toBe(true);
    expect(m.tryLock(1)).toBe(true);
    m.unlock(0);
    m.unlock(1);
    expect(Array.from(words)).toEqual([0, 0, 0, 0]);
    expect(m.tryLock(0)).toBe(true);
  });

  it('a store is given one-thread mutexes only when one thread serves and none attaches', () => {
    const one = new Engine(defaultSettings(), new ServerStats());
    const four = new Engine({ ...defaultSettings(), threadCount: 4 }, new ServerStats(newStatsTable(4), 0));
    try {
      expect([one.items.itemLocks.atomic, one.items.lruLocks.atomic, one.slabs.lock.atomic]).toEqual([false, false, false]);
      expect([four.items.itemLocks.atomic, four.items.lruLocks.atomic, four.slabs.lock.atomic]).toEqual([true, true, true]);
    } finally {
      one.stop();
      four.stop();
    }
  });
});
