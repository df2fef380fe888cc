/**
 * One store, several threads (issue 12): worker threads attach engines to the store this
 * thread created (Engine's `attach`) and hammer it while this thread runs the background work
 * (LRU maintainer, page mover, hash growth). Invariants, not timings: no lost incr, no lost
 * cas update, no torn value, and the store's own bookkeeping consistent afterwards
 * (test/store/invariants.ts). More threads than this machine's cores, so lock holders get
 * preempted. Runs the compiled modules from dist/ (npm test builds first).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { Engine, StoreMode, StoreResult } from '../../src/engine/engine';
import { ItemView } from '../../src/engine/item-view';
import { newStatsTable, ServerStats } from '../../src/metrics/stats';
import { defaultSettings, type Settings } from '../../src/settings';
import { REPO_ROOT } from '../helpers/servers';
import { checkStore } from '../store/invariants';
import { perKeyTotals, stressed, total, type Report } from './reports';

const DIST = path.join(REPO_ROOT, 'dist');
const WORKER_JS = path.join(__dirname, 'engine-worker.cjs');
const THREADS = 4;
/** Each workload stops at its round count or this deadline, whichever comes first. */
const DEADLINE_MS = stressed(20_000);
const MIB = 1024 * 1024;


let engine: Engine | null = null;
afterEach(() => {
  engine?.stop();
  engine = null;
});

function start(over: Partial<Settings>): { e: Engine; settings: Settings } {
  // Row 0 of the counters is this thread's, rows 1..THREADS the workers'.
  const settings = { ...defaultSettings(), threadCount: THREADS + 1, ...over };
  const e = new Engine(settings, new ServerStats(newStatsTable(THREADS + 1), 0));
  e.start();
  engine = e;
  return { e, settings };
}

async function runWorkers(e: Engine, settings: Settings, mode: string, rounds: number, keys: number, extra: object = {}): Promise<Report[]> {
  return Promise.all(Array.from({ length: THREADS }, async (_, t) => {
    const w = new Worker(WORKER_JS, {
      workerData: { dist: DIST, settings, memory: e.memoryList(), statsTable: e.stats.table, thread: t + 1, mode, seed: 0x9e3779b9 ^ (t * 7919 + 17), rounds, keys, deadlineMs: DEADLINE_MS, ...extra },
    });
    try {
      return await new Promise<Report>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', (err) => {
          // Written at once: a worker that dies holding a store lock can leave this thread
          // blocked on that lock (in the page mover's timer), and then no report comes.
          fs.writeSync(2, `engine worker ${t + 1} failed: ${err.stack ?? String(err)}\n`);
          reject(err);
        });
      });
    } finally {
      await w.terminate();
    }
  }));
}

const V = new ItemView();
function put(e: Engine, key: string, value: string): void {
  const k = Buffer.from(key);
  const b = Buffer.from(value);
  const h = e.allocForStore(V, StoreMode.Set, k, 0, k.length, 0, 0, b.length);
  expect(h).not.toBe(0);
  e.writeValue(h, 0, b, 0, b.length);
  expect(e.commitStore(V, StoreMode.Set, h, 0)).toBe(StoreResult.Stored);
}
function read(e: Engine, key: string): string | null {
  const k = Buffer.from(key);
  let out: string | null = null;
  e.get(V, k, 0, k.length, { item: (v) => { const b = Buffer.alloc(v.nbytes); v.copyValue(b, 0); out = b.toString('latin1'); } });
  return out;
}


describe('one store, several threads', () => {
  it('incr from 4 threads on 8 counters loses no update (values as wide as the digits allow)', async () => {
    const { e, settings } = start({ memoryLimitBytes: 64 * MIB });
    const keys = 8;
    // Wide enough in place: memcached rewrites in place when the digits fit, else stores a copy.
    for (let i = 0; i < keys; i++) put(e, `k${i}`, '0');
    const rounds = stressed(20_000);
    const reports = await runWorkers(e, settings, 'incr', rounds, keys);
    const totals = perKeyTotals(reports, keys);
    for (let i = 0; i < keys; i++) expect(Number(read(e, `k${i}`)?.trim())).toBe(totals[i]);
    expect(totals.reduce((a, b) => a + b, 0)).toBe(total(reports, 'done'));
    expect(reports.every((r) => r.done === rounds)).toBe(true);
    // Each thread counted its hits in its own row: the totals lose nothing either.
    expect(e.stats.sum('incr_hits')).toBe(THREADS * rounds);
    expect(e.items.classSum('incr_hits')).toBe(THREADS * rounds);
    checkStore(e);
  }, stressed(60_000));

  it('cas read-modify-write loops from 4 threads lose no update', async () => {
    const { e, settings } = start({ memoryLimitBytes: 64 * MIB });
    const keys = 4;
    for (let i = 0; i < keys; i++) put(e, `k${i}`, '0');
    const rounds = stressed(5_000);
    const reports = await runWorkers(e, settings, 'cas', rounds, keys);
    const totals = perKeyTotals(reports, keys);
    for (let i = 0; i < keys; i++) expect(Number(read(e, `k${i}`))).toBe(totals[i]);
    expect(reports.every((r) => r.done === rounds)).toBe(true);
    // Contention happened (else the test proves nothing about it).
    expect(total(reports, 'retries')).toBeGreaterThan(0);
    checkStore(e);
  }, stressed(60_000));

  it('self-checking values of random sizes (chunked ones too) are never torn under eviction, page moves and hash growth', async () => {
    // 16 MiB and values up to 700 KiB: sets evict, pages move between classes; a small hash
    // table grows while the threads run.
    const { e, settings } = start({ memoryLimitBytes: 16 * MIB, hashPowerInit: 12 });
    // `slabs reassign` of this thread's own making, beside the automover: pages leave classes
    // (to the global pool) while the threads read and write items in them.
    const hold = new Int32Array(new SharedArrayBuffer(4));
    hold[0] = 1;
    let cls = 1;
    const mover = setInterval(() => {
      for (let tries = 0; tries < e.slabs.largestClass; tries++) {
        cls = (cls % e.slabs.largestClass) + 1;
        if (e.slabs.pagesPerClass[cls] > 1) {
          e.reassignPage(cls, 0);
          break;
        }
      }
      // The threads go on until a page has moved and the table has grown (or the deadline):
      // on a busy machine their rounds alone may end first.
      if (e.mover.slabsMoved > 0 && e.items.index.hashPower > 12) Atomics.store(hold, 0, 0);
    }, 20);
    const reports = await runWorkers(e, settings, 'values', stressed(15_000), 12_000, { sizeMax: 700 * 1024, hold })
      .finally(() => clearInterval(mover));
    const torn = total(reports, 'torn');
    const hits = total(reports, 'hits');
    const stored = total(reports, 'stored');
    expect(torn).toBe(0);
    expect(hits).toBeGreaterThan(1000);
    expect(stored).toBeGreaterThan(5000);
    const census = checkStore(e);
    expect(census).toBeDefined();
    // Evictions happened: the workload really ran under memory pressure.
    expect(e.items.classSum('evicted')).toBeGreaterThan(0);
    expect(e.stats.sum('get_hits')).toBe(hits);
    expect(e.items.classSum('get_hits')).toBe(hits);
    expect(e.mover.slabsMoved).toBeGreaterThan(0);
    // The hash table grew (from 2^12 buckets) while the threads used it.
    expect(e.items.index.hashPower).toBeGreaterThan(12);
  }, stressed(90_000));

  it('flush_all from this thread while 4 threads store and read: every item goes under its lock, nothing torn', async () => {
    const { e, settings } = start({ memoryLimitBytes: 16 * MIB });
    let flushes = 0;
    const flusher = setInterval(() => {
      e.flushAll(0);
      flushes++;
    }, 25);
    const reports = await runWorkers(e, settings, 'values', stressed(15_000), 4_000, { sizeMax: 64 * 1024 })
      .finally(() => clearInterval(flusher));
    expect(total(reports, 'torn')).toBe(0);
    expect(total(reports, 'hits')).toBeGreaterThan(100);
    expect(flushes).toBeGreaterThan(5);
    checkStore(e);
  }, stressed(90_000));
});
