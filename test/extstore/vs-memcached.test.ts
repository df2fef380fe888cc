/**
 * Side by side with memcached 1.6.45 (built with extstore), both started as
 * processes with the same ext_* options: the same settings report, the same `extstore`
 * command replies, memcached's `stats` names in memcached's order, and values that come
 * back byte for byte from both after the data set outgrew memory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memcachedBin } from '../helpers/servers';
import { Client, setCommand, startPair, valueOf, type ServerPair } from './harness';

const haveMemcached = fs.existsSync(memcachedBin());
const VALUE_BYTES = 8000;
const COUNT = 3000; // 24 MB against -m 16

/**
 * -t 1 for both: bursts of sets evict values the writer has not yet written when it runs on
 * another thread (memcached's writer thread, our thread 0), so how many of 3,000 survive
 * depends on scheduling on this 2-core machine (memcached kept 2,965-3,000, ours 2,650-3,000
 * at -t 4). Threads and extstore: test/threads/server-concurrency.test.ts.
 */
function args(dir: string): string[] {
  return ['-t', '1', '-m', '16', '-o', `ext_page_size=4,ext_wbuf_size=2,ext_path=${path.join(dir, 'extstore')}:64m`];
}

async function statLines(c: Client, command: string): Promise<string[]> {
  const text = (await c.request(`${command}\r\n`, 'END\r\n')).toString('latin1');
  return text.split('\r\n').filter((l) => l.startsWith('STAT '));
}

async function fillAndRead(port: number): Promise<{ hits: number; bad: number }> {
  const c = new Client(port);
  try {
    for (let i = 0; i < COUNT; i += 100) {
      const batch: Buffer[] = [];
      for (let j = i; j < i + 100; j++) batch.push(setCommand(`k${j}`, j, valueOf(j, VALUE_BYTES), true));
      await c.send(Buffer.concat(batch));
      await c.request('mn\r\n', 'MN\r\n');
    }
    await new Promise((r) => setTimeout(r, 500));
    let hits = 0;
    let bad = 0;
    for (let i = 0; i < COUNT; i += 50) {
      const keys = Array.from({ length: 50 }, (_, n) => `k${i + n}`);
      const reply = await c.request(`get ${keys.join(' ')}\r\n`, 'END\r\n');
      let p = 0;
      while (p < reply.length) {
        const nl = reply.indexOf('\r\n', p);
        const line = reply.toString('latin1', p, nl);
        p = nl + 2;
        if (!line.startsWith('VALUE ')) continue;
        const [, key, flags, bytes] = line.split(' ');
        const n = Number(key.slice(1));
        const v = reply.subarray(p, p + Number(bytes));
        p += Number(bytes) + 2;
        if (Number(flags) === n && v.equals(valueOf(n, VALUE_BYTES))) hits++;
        else bad++;
      }
    }
    return { hits, bad };
  } finally {
    c.close();
  }
}

describe.skipIf(!haveMemcached)('extstore next to memcached 1.6.45', () => {
  let pair: ServerPair;

  beforeAll(async () => {
    pair = await startPair(args);
  });
  afterAll(async () => {
    await pair?.stop();
  });

  it('reports the same ext_* settings and answers the extstore command alike', async () => {
    const a = new Client(pair.ours.port);
    const b = new Client(pair.theirs.port);
    try {
      const pick = (lines: string[]): string[] => lines.filter((l) => /STAT (ext_|slab_automove_freeratio)/.test(l));
      expect(pick(await statLines(a, 'stats settings'))).toEqual(pick(await statLines(b, 'stats settings')));
      const cmds = 'extstore item_size 600\r\nextstore junk 1\r\nextstore\r\nextstore max_frag 0.5 noreply\r\n' +
        'extstore drop_unread 1\r\nextstore free_memchunks 1 2\r\nextstore item_size x\r\nextstore low_ttl 10\r\nmn\r\n';
      const ra = (await a.request(cmds, 'MN\r\n')).toString();
      const rb = (await b.request(cmds, 'MN\r\n')).toString();
      expect(ra).toBe(rb);
      expect(pick(await statLines(a, 'stats settings'))).toEqual(pick(await statLines(b, 'stats settings')));
      await a.request('extstore item_size 512\r\nextstore max_frag 0.8\r\nextstore drop_unread 0\r\nextstore low_ttl 0\r\n', 'OK\r\n', 4);
      await b.request('extstore item_size 512\r\nextstore max_frag 0.8\r\nextstore drop_unread 0\r\nextstore low_ttl 0\r\n', 'OK\r\n', 4);
    } finally {
      a.close();
      b.close();
    }
  });

  it('has memcached\'s stats names in memcached\'s order, and the same stats extstore keys', async () => {
    const a = new Client(pair.ours.port);
    const b = new Client(pair.theirs.port);
    try {
      const names = (lines: string[]): string[] => lines.map((l) => l.split(' ')[1]).filter((n) => /extstore/.test(n));
      const mine = names(await statLines(a, 'stats'));
      const ref = names(await statLines(b, 'stats'));
      expect(mine.filter((n) => ref.includes(n))).toEqual(ref);
      const keys = (lines: string[]): string[] => lines.map((l) => l.split(' ')[1]);
      expect(keys(await statLines(a, 'stats extstore'))).toEqual(keys(await statLines(b, 'stats extstore')));
    } finally {
      a.close();
      b.close();
    }
  });

  it('both return values byte for byte after the data set outgrew memory', async () => {
    const [mine, ref] = await Promise.all([fillAndRead(pair.ours.port), fillAndRead(pair.theirs.port)]);
    expect(mine.bad).toBe(0);
    expect(ref.bad).toBe(0);
    expect(mine.hits).toBeGreaterThanOrEqual(Math.floor(COUNT * 0.9));
    expect(pair.ours.isAlive()).toBe(true);
  }, 60_000);
});
