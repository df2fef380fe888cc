/**
 * Memory pressure with mixed value sizes, side by side with memcached: the same seeded
 * sequence of sets (sizes uniform and log-uniform from 1 byte to 1000 KiB, a fifth of them
 * with a short TTL) goes to memcached and to memcached-ts under `-m 64`, one connection each,
 * one reply read per set. memcached-ts must refuse (SERVER_ERROR out of memory) no more
 * often than memcached does plus OOM_RATE_MARGIN, and its counters must agree with each
 * other afterwards: curr_items and bytes with `stats items`, evictions with the per-class
 * eviction counters, used chunks with the items stored.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, lines } from '../helpers/client';
import { Prng } from '../helpers/prng';
import { sleep, startReference, startTarget, stopAll, type ServerProcess } from '../helpers/servers';

/** Stated margin: memcached-ts may refuse at most this many more sets per hundred than memcached. */
const OOM_RATE_MARGIN = 0.01;
const VALUE_BYTES_MAX = 1000 * 1024;
const ARGS = ['-m', '64'];
const READ_TIMEOUT_MS = 20_000;
const TTL_SECONDS_MAX = 3;

type Sizes = 'uniform' | 'log-uniform';

interface Run {
  sets: number;
  stored: number;
  outOfMemory: number;
  other: string[];
}

function sizeFor(rand: Prng, sizes: Sizes): number {
  if (sizes === 'uniform') return rand.int(1, VALUE_BYTES_MAX);
  return Math.max(1, Math.min(VALUE_BYTES_MAX, Math.round(Math.exp(rand.float() * Math.log(VALUE_BYTES_MAX)))));
}

async function runSequence(server: ServerProcess, seed: number, sets: number, sizes: Sizes): Promise<Run> {
  const rand = new Prng(seed);
  const payload = Buffer.alloc(VALUE_BYTES_MAX + 2, 0x76);
  const client = await RawClient.connect(server.port);
  const run: Run = { sets, stored: 0, outOfMemory: 0, other: [] };
  try {
    for (let i = 0; i < sets; i++) {
      const size = sizeFor(rand, sizes);
      const ttl = rand.chance(0.2) ? rand.int(1, TTL_SECONDS_MAX) : 0;
      payload.write('\r\n', size, 'latin1');
      await client.send(`set p${i} 0 ${ttl} ${size}\r\n`);
      await client.send(payload.subarray(0, size + 2));
      payload.fill(0x76, size, size + 2);
      const reply = (await client.readUntil(lines(1), READ_TIMEOUT_MS)).toString('latin1');
      if (reply === 'STORED\r\n') run.stored++;
      else if (reply === 'SERVER_ERROR out of memory storing object\r\n') run.outOfMemory++;
      else run.other.push(reply);
    }
  } finally {
    client.close();
  }
  return run;
}

async function statsOf(server: ServerProcess, kind: string): Promise<Map<string, number>> {
  const client = await RawClient.connect(server.port);
  try {
    const text = (await client.request(`stats ${kind}\r\n`, (b) => b.toString('latin1').endsWith('END\r\n'))).toString('latin1');
    const out = new Map<string, number>();
    for (const line of text.split('\r\n')) {
      const m = /^STAT (\S+) (\S+)$/.exec(line);
      if (m !== null) out.set(m[1], Number(m[2]));
    }
    return out;
  } finally {
    client.close();
  }
}

/**
 * curr_items, bytes and evictions agree with the per-class tables of `stats items` and
 * `stats slabs`. Items with a TTL are reclaimed in the background, so the counters are read
 * once the TTLs have passed and the crawler has run, and again until two readings agree.
 */
async function checkCounters(server: ServerProcess): Promise<void> {
  await sleep(TTL_SECONDS_MAX * 1000 + 1000);
  const client = await RawClient.connect(server.port);
  try {
    expect(await client.line('lru_crawler crawl all\r\n')).toBe('OK');
  } finally {
    client.close();
  }
  let general = await statsOf(server, '');
  let items = await statsOf(server, 'items');
  let slabs = await statsOf(server, 'slabs');
  for (let attempt = 0; attempt < 20; attempt++) {
    await sleep(250);
    const again = await statsOf(server, '');
    if (again.get('curr_items') === general.get('curr_items') && again.get('evictions') === general.get('evictions')) break;
    general = again;
    items = await statsOf(server, 'items');
    slabs = await statsOf(server, 'slabs');
  }
  let number = 0;
  let evicted = 0;
  let used = 0;
  for (const [k, v] of items) {
    if (/^items:\d+:number$/.test(k)) number += v;
    if (/^items:\d+:evicted$/.test(k)) evicted += v;
  }
  for (const [k, v] of slabs) if (/^\d+:used_chunks$/.test(k)) used += v;
  expect(number).toBe(general.get('curr_items'));
  // `stats items` leaves out a class that holds no items (as memcached's item_stats), so the
  // evictions of a class that has since emptied (its pages moved to others) count only in
  // the total; seen once in a full test run (1,823 listed against 1,933).
  expect(evicted).toBeLessThanOrEqual(general.get('evictions')!);
  // Every item holds at least one chunk; a large one a header and its data chunks.
  expect(used).toBeGreaterThanOrEqual(number);
  expect(general.get('bytes')!).toBeGreaterThan(0);
  expect(general.get('bytes')!).toBeLessThanOrEqual(slabs.get('total_malloced')!);
  // -m bounds memory as memcached bounds it: beyond it by at most one page per class.
  expect(slabs.get('total_malloced')!).toBeLessThanOrEqual((64 + slabs.get('active_slabs')!) * 1024 * 1024);
}

describe('memory pressure with values from 1 byte to 1000 KiB (-m 64), against memcached', () => {
  let ours: ServerProcess | undefined;
  let reference: ServerProcess | undefined;

  beforeAll(async () => {
    [ours, reference] = await Promise.all([startTarget(ARGS), startReference(ARGS)]);
  });
  afterAll(async () => {
    await stopAll(ours, reference);
  });

  const cases: Array<[Sizes, number, number]> = [
    ['uniform', 0x5eed01, 1500],
    ['log-uniform', 0x5eed02, 3000],
  ];
  for (const [sizes, seed, sets] of cases) {
    it(`${sizes} sizes (seed ${seed.toString(16)}, ${sets} sets): refuses no more often than memcached + ${OOM_RATE_MARGIN * 100}%`, async () => {
      const theirs = await runSequence(reference!, seed, sets, sizes);
      const mine = await runSequence(ours!, seed, sets, sizes);
      const rate = (r: Run): number => r.outOfMemory / r.sets;
      process.stdout.write(`pressure ${sizes}: memcached refused ${theirs.outOfMemory}/${sets} ` +
        `(${(rate(theirs) * 100).toFixed(2)}%), memcached-ts ${mine.outOfMemory}/${sets} (${(rate(mine) * 100).toFixed(2)}%)\n`);
      expect(theirs.other).toEqual([]);
      expect(mine.other).toEqual([]);
      expect(rate(mine)).toBeLessThanOrEqual(rate(theirs) + OOM_RATE_MARGIN);
      await checkCounters(ours!);
    }, 240_000);
  }
});
