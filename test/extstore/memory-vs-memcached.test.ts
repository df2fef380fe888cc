/**
 * Item memory with extstore on, side by side with memcached 1.6.45 (same options, same
 * commands, replies compared):
 * - at startup all of -m is in the global page pool (memcached's slabs_prefill_global), so
 *   `stats slabs` reports the same total_malloced and global page pool;
 * - a value on disk whose slab classes lost their pages (`slabs reassign` to another class)
 *   cannot be read: `get` answers memcached's out-of-memory error, `mg` a miss, and both
 *   count get_oom_extstore (and get_misses, cmd_get) as memcached does.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memcachedBin } from '../helpers/servers';
import { Client, setCommand, startPair, valueOf, type ServerPair } from './harness';

const haveMemcached = fs.existsSync(memcachedBin());
const BIG_BYTES = 3000 * 1024;
const DEADLINE_MS = 30_000;

function args(dir: string): string[] {
  return ['-m', '64', '-I', '4m', '-o', 'ext_page_size=8,ext_wbuf_size=8,ext_threads=1,ext_item_size=512,' +
    `ext_item_age=1,slab_automove=0,ext_path=${path.join(dir, 'extstore')}:64m`];
}

async function stats(c: Client, command: string): Promise<Map<string, string>> {
  const text = (await c.request(`${command}\r\n`, 'END\r\n')).toString('latin1');
  const m = new Map<string, string>();
  for (const l of text.split('\r\n')) {
    const [tag, name, value] = l.split(' ');
    if (tag === 'STAT') m.set(name, value);
  }
  return m;
}

/** Items counted in classes 3 and up (where the big values' memory lives): 0 once on disk. */
async function itemsInMemory(c: Client): Promise<number> {
  let sum = 0;
  for (const [name, value] of await stats(c, 'stats items')) {
    const m = /^items:(\d+):number$/.exec(name);
    if (m !== null && Number(m[1]) >= 3) sum += Number(value);
  }
  return sum;
}

/** error-extstore.t's dance: every page of classes 3 and up but one goes to class 1. */
async function starveLargeClasses(c: Client): Promise<void> {
  await c.request('slabs automove 0\r\n', '\r\n');
  let source = 0;
  const until = Date.now() + DEADLINE_MS;
  while (Date.now() < until) {
    const res = (await c.request(`slabs reassign ${source} 1\r\n`, '\r\n')).toString();
    if (res.startsWith('NOSPARE')) {
      source = -1;
      for (const [name, value] of await stats(c, 'stats slabs')) {
        const m = /^(\d+):total_pages$/.exec(name);
        if (m !== null && Number(m[1]) >= 3 && Number(value) > 1) source = Number(m[1]);
      }
      if (source === -1) return;
    } else {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  throw new Error('pages did not move within the deadline');
}

describe.skipIf(!haveMemcached)('item memory with extstore, next to memcached 1.6.45', () => {
  let pair: ServerPair;

  beforeAll(async () => {
    pair = await startPair(args);
  });
  afterAll(async () => {
    await pair?.stop();
  });

  it('starts with all of -m in the global page pool', async () => {
    const pick = async (port: number): Promise<string[]> => {
      const c = new Client(port);
      try {
        const slabs = await stats(c, 'stats slabs');
        const general = await stats(c, 'stats');
        return [slabs.get('total_malloced') ?? '?', general.get('slab_global_page_pool') ?? '?'];
      } finally {
        c.close();
      }
    };
    const [mine, ref] = await Promise.all([pick(pair.ours.port), pick(pair.theirs.port)]);
    expect(mine).toEqual(ref);
    expect(Number(mine[1])).toBeGreaterThan(50);
  });

  it('refuses a disk read its slab classes have no memory for, as memcached does', async () => {
    const run = async (port: number): Promise<{ same: string[]; mg: string }> => {
      const c = new Client(port);
      try {
        for (let i = 1; i <= 2; i++) {
          await c.request(setCommand(`big${i}`, i, valueOf(i, BIG_BYTES)), 'STORED\r\n');
        }
        const until = Date.now() + DEADLINE_MS;
        while (await itemsInMemory(c) !== 0) {
          if (Date.now() > until) throw new Error('values did not reach the disk');
          await new Promise((r) => setTimeout(r, 200));
        }
        // Readable from disk while memory is there.
        const before = await c.request('get big1\r\n', 'END\r\n');
        const readable = before.subarray(before.indexOf('\r\n') + 2, before.length - 7).equals(valueOf(1, BIG_BYTES));
        await starveLargeClasses(c);
        // memcached 1.6.45 follows this error with an empty line.
        const get = (await c.request('get big1\r\n', '\r\n\r\n')).toString();
        const multi = (await c.request('get nothere big2 big1\r\n', '\r\n\r\n')).toString();
        const mg = (await c.request('mg big2 v f k O123\r\nmn\r\n', 'MN\r\n')).toString();
        const meta = (await c.request('mg big2 s\r\n', '\r\n')).toString();
        const s = await stats(c, 'stats');
        const counters = ['get_oom_extstore', 'get_hits', 'get_misses', 'cmd_get'].map((n) => `${n} ${s.get(n)}`);
        return { same: [String(readable), get, multi, meta, ...counters], mg };
      } finally {
        c.close();
      }
    };
    const [mine, ref] = await Promise.all([run(pair.ours.port), run(pair.theirs.port)]);
    const oom = 'SERVER_ERROR out of memory writing get response\r\n\r\n';
    expect(ref.same.slice(0, 5)).toEqual(['true', oom, oom, 'HD s3072000\r\n', 'get_oom_extstore 3']);
    expect(mine.same).toEqual(ref.same);
    // mg answers a miss with its flags; memcached 1.6.45 sends the VA line twice, then EN.
    expect(mine.mg).toBe('EN kbig2 O123\r\nMN\r\n');
    expect(ref.mg).toMatch(/EN kbig2 O123\r\nMN\r\n$/);
    expect(pair.ours.isAlive()).toBe(true);
  }, 90_000);
});
