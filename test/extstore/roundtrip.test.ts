/**
 * Values through the disk and back: byte for byte, in request order under pipelining and
 * multigets mixing memory and disk hits, through get/gets/gat/mg, with memcached's rules for
 * header items (append refused, incr non-numeric), counters, recache, compaction, page
 * eviction and the `extstore` command.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Client, fill, flushToDisk, inMemory, onDisk, setCommand, startExtServer, statsOf, valueOf, valueReply, waitFor,
  type ExtServer,
} from './harness';

const VALUE_BYTES = 2000;
const COUNT = 8000; // 16 MB of values against -m 8

describe('round trips through extstore', () => {
  let s: ExtServer;
  let c: Client;

  beforeAll(async () => {
    s = await startExtServer({ memoryMb: 8 });
    c = new Client(s.port);
    await fill(c, COUNT, VALUE_BYTES);
  });
  afterAll(async () => {
    c.close();
    await s.stop();
  });

  it('spills most values to disk and keeps every key', () => {
    const st = statsOf(s.engine);
    expect(st.curr_items).toBe(COUNT);
    expect(st.evictions).toBe(0);
    expect(st.extstore_objects_written).toBeGreaterThan(COUNT / 2);
    let disk = 0;
    for (let i = 0; i < COUNT; i++) if (onDisk(s.engine, `k${i}`)) disk++;
    expect(disk).toBe(st.extstore_objects_used);
    expect(inMemory(s.engine, `k${COUNT - 1}`)).toBe(true);
  });

  it('returns every value byte for byte (multigets of 100 keys, pipelined)', async () => {
    await flushToDisk(s.engine);
    const requests: string[] = [];
    const expected: Buffer[] = [];
    for (let i = 0; i < COUNT; i += 100) {
      const keys: string[] = [];
      for (let j = i; j < i + 100; j++) {
        keys.push(`k${j}`);
        expected.push(valueReply(`k${j}`, j, valueOf(j, VALUE_BYTES)));
      }
      requests.push(`get ${keys.join(' ')}\r\n`);
      expected.push(Buffer.from('END\r\n'));
    }
    const before = statsOf(s.engine).get_extstore;
    const reply = await c.request(requests.join(''), 'END\r\n', requests.length);
    expect(reply.equals(Buffer.concat(expected))).toBe(true);
    expect(statsOf(s.engine).get_extstore - before).toBeGreaterThan(COUNT / 2);
  });

  it('keeps request order when memory hits, disk hits, misses and other commands mix', async () => {
    const diskKeys = [...Array(COUNT).keys()].filter((n) => onDisk(s.engine, `k${n}`)).slice(0, 20);
    expect(diskKeys.length).toBe(20);
    // Values in memory: the background writer takes COLD values of ext_item_size (512) and
    // more to disk within moments, as memcached's does; values under it stay.
    const SMALL = 100;
    await c.request(Array.from({ length: 20 }, (_, n) => setCommand(`m${n}`, n, valueOf(n, SMALL))).reduce((a, b) => Buffer.concat([a, b])),
      'STORED\r\n', 20);
    for (let n = 0; n < 20; n++) expect(inMemory(s.engine, `m${n}`)).toBe(true);
    const req: Buffer[] = [];
    const exp: Buffer[] = [];
    for (let n = 0; n < 20; n++) {
      const d = diskKeys[n];
      req.push(Buffer.from(`get k${d}\r\nget m${n} nosuchkey k${d}\r\nversion\r\n`));
      exp.push(valueReply(`k${d}`, d, valueOf(d, VALUE_BYTES)), Buffer.from('END\r\n'));
      exp.push(valueReply(`m${n}`, n, valueOf(n, SMALL)), valueReply(`k${d}`, d, valueOf(d, VALUE_BYTES)),
        Buffer.from('END\r\n'));
      exp.push(Buffer.from('VERSION 1.6.45\r\n'));
      req.push(Buffer.from(`mg k${d} v f k\r\nmg nosuchkey v\r\nmn\r\n`));
      exp.push(Buffer.from(`VA ${VALUE_BYTES} f${d} kk${d}\r\n`), valueOf(d, VALUE_BYTES), Buffer.from('\r\nEN\r\nMN\r\n'));
    }
    req.push(Buffer.from('mn\r\n'));
    exp.push(Buffer.from('MN\r\n'));
    const reply = await c.request(Buffer.concat(req), 'MN\r\n', 21);
    expect(reply.toString('latin1')).toBe(Buffer.concat(exp).toString('latin1'));
  });

  it('counts every disk value of a dropped reply as an aborted read, read at once or not', async () => {
    // memcached's error-extstore.t: a multiget whose last key is too long drops the replies
    // of the keys before it, and the disk reads queued for them count as aborted
    const keys = [...Array(COUNT).keys()].filter((n) => onDisk(s.engine, `k${n}`)).slice(0, 3);
    expect(keys.length).toBe(3);
    await flushToDisk(s.engine);
    const before = statsOf(s.engine).get_aborted_extstore;
    const reply = await c.request(`get ${keys.map((n) => `k${n}`).join(' ')} ${'f'.repeat(300)}\r\n`, '\r\n\r\n');
    // (memcached 1.6.45 ends this error with an empty line too)
    expect(reply.toString()).toBe('CLIENT_ERROR bad command line format\r\n\r\n');
    expect(statsOf(s.engine).get_aborted_extstore - before).toBe(3);
    // replies already sent are not counted: a later error drops nothing of this get
    const one = await c.request(`get k${keys[0]}\r\n`, 'END\r\n');
    expect(one.equals(Buffer.concat([valueReply(`k${keys[0]}`, keys[0], valueOf(keys[0], VALUE_BYTES)), Buffer.from('END\r\n')]))).toBe(true);
    expect((await c.request(`get ${'f'.repeat(300)}\r\n`, '\r\n\r\n')).toString()).toBe('CLIENT_ERROR bad command line format\r\n\r\n');
    expect(statsOf(s.engine).get_aborted_extstore - before).toBe(3);
  });

  it('gets, gats and mg report flags, CAS and TTL from memory and the value from disk', async () => {
    const i = [...Array(COUNT).keys()].find((n) => onDisk(s.engine, `k${n}`)) as number;
    const key = `k${i}`;
    const k = Buffer.from(key);
    const cas = s.engine.items.cas(s.engine.peek(k, 0, k.length));
    const gets = await c.request(`gets ${key}\r\n`, 'END\r\n');
    expect(gets.equals(Buffer.concat([valueReply(key, i, valueOf(i, VALUE_BYTES), cas), Buffer.from('END\r\n')]))).toBe(true);
    const gat = await c.request(`gat 1000 ${key}\r\n`, 'END\r\n');
    expect(gat.equals(Buffer.concat([valueReply(key, i, valueOf(i, VALUE_BYTES)), Buffer.from('END\r\n')]))).toBe(true);
    const mg = await c.request(`mg ${key} s c t v\r\nmn\r\n`, 'MN\r\n');
    const head = `VA ${VALUE_BYTES} s${VALUE_BYTES} c${cas} t`;
    expect(mg.toString('latin1').startsWith(head)).toBe(true);
    expect(mg.subarray(mg.indexOf('\r\n') + 2, mg.indexOf('\r\n') + 2 + VALUE_BYTES).equals(valueOf(i, VALUE_BYTES))).toBe(true);
    const hd = await c.request(`mg ${key} s\r\n`, '\r\n');
    expect(hd.toString()).toBe(`HD s${VALUE_BYTES}\r\n`);
  });

  it('refuses append/prepend and incr on a value on disk, as memcached does', async () => {
    const i = [...Array(COUNT).keys()].find((n) => onDisk(s.engine, `k${n}`)) as number;
    expect(await c.request(`append k${i} 0 0 1\r\nx\r\n`, '\r\n')).toEqual(Buffer.from('NOT_STORED\r\n'));
    expect(await c.request(`prepend k${i} 0 0 1\r\nx\r\n`, '\r\n')).toEqual(Buffer.from('NOT_STORED\r\n'));
    expect((await c.request(`incr k${i} 1\r\n`, '\r\n')).toString()).toBe('CLIENT_ERROR cannot increment or decrement non-numeric value\r\n');
    const reply = await c.request(`get k${i}\r\n`, 'END\r\n');
    expect(reply.equals(Buffer.concat([valueReply(`k${i}`, i, valueOf(i, VALUE_BYTES)), Buffer.from('END\r\n')]))).toBe(true);
  });

  it('deletes and overwrites of values on disk only adjust counters', async () => {
    const keys = [...Array(COUNT).keys()].filter((n) => onDisk(s.engine, `k${n}`)).slice(0, 10);
    const before = statsOf(s.engine);
    const req = keys.slice(0, 5).map((n) => `delete k${n}\r\n`).join('') +
      keys.slice(5).map((n) => `set k${n} 7 0 3\r\nnew\r\n`).join('');
    await c.request(req, '\r\n', 10);
    const after = statsOf(s.engine);
    // The background writer may write other values meanwhile: count them out.
    const written = after.extstore_objects_written - before.extstore_objects_written;
    const writtenBytes = after.extstore_bytes_written - before.extstore_bytes_written;
    expect(before.extstore_objects_used + written - after.extstore_objects_used).toBe(10);
    expect(before.extstore_bytes_used + writtenBytes - after.extstore_bytes_used).toBeGreaterThanOrEqual(10 * VALUE_BYTES);
    const reply = await c.request(`get ${keys.map((n) => `k${n}`).join(' ')}\r\n`, 'END\r\n');
    expect(reply.toString()).toBe(keys.slice(5).map((n) => `VALUE k${n} 7 3\r\nnew\r\n`).join('') + 'END\r\n');
  });

  it('stats extstore lists pages as memcached does; the extstore command tunes settings', async () => {
    const pages = (await c.request('stats extstore\r\n', 'END\r\n')).toString();
    expect(pages).toMatch(/^STAT 0:version \d+\r\nSTAT 0:bytes \d+\r\nSTAT 0:bucket \d\r\nSTAT 0:free_bucket 0\r\n/);
    expect(pages.match(/:version /g)?.length).toBe(64);
    // memcached 1.6.45: noreply is honoured (the max_frag line answers nothing), the
    // deprecated free_memchunks is still accepted, a value that does not parse changes nothing
    const r = await c.request('extstore item_size 1000\r\nextstore junk 1\r\nextstore\r\nextstore max_frag 0.5 noreply\r\n' +
      'extstore drop_unread 1\r\nextstore free_memchunks 1 2\r\nextstore recache_rate x\r\nmn\r\n', 'MN\r\n');
    expect(r.toString()).toBe('OK\r\nERROR\r\nERROR\r\nOK\r\nOK\r\nERROR\r\nMN\r\n');
    const st = (await c.request('stats settings\r\n', 'END\r\n')).toString();
    expect(st).toContain('STAT ext_item_size 1000\r\n');
    expect(st).toContain('STAT ext_max_frag 0.50\r\n');
    expect(st).toContain('STAT ext_drop_unread yes\r\n');
    expect(st).toContain('STAT ext_recache_rate 2000\r\n');
    // memcached 1.6.45's default: 1% of the pages (64 here), at least 1
    expect(st).toContain('STAT ext_compact_under 1\r\n');
    await c.request('extstore item_size 512\r\nextstore max_frag 0.8\r\nextstore drop_unread 0\r\nextstore recache_rate 2000\r\n', 'OK\r\n', 4);
  });

  it('stats carries memcached\'s extstore names in memcached\'s places', async () => {
    const names = (await c.request('stats\r\n', 'END\r\n')).toString().split('\r\n').map((l) => l.split(' ')[1]);
    const at = (n: string): number => names.indexOf(n);
    expect(at('get_extstore')).toBe(at('get_flushed') + 1);
    expect(names.slice(at('get_extstore'), at('get_extstore') + 6)).toEqual(['get_extstore', 'get_aborted_extstore',
      'get_oom_extstore', 'recache_from_extstore', 'miss_from_extstore', 'badcrc_from_extstore']);
    expect(at('extstore_memory_pressure')).toBe(at('log_watchers') + 1);
    expect(names.slice(at('extstore_memory_pressure'), at('extstore_memory_pressure') + 22)).toEqual([
      'extstore_memory_pressure', 'extstore_compact_lost', 'extstore_compact_rescues', 'extstore_compact_resc_cold',
      'extstore_compact_resc_old', 'extstore_compact_skipped', 'extstore_page_allocs',
      'extstore_page_evictions', 'extstore_page_reclaims', 'extstore_pages_free', 'extstore_pages_used',
      'extstore_objects_evicted', 'extstore_objects_read', 'extstore_objects_written', 'extstore_objects_used',
      'extstore_bytes_evicted', 'extstore_bytes_written', 'extstore_bytes_read', 'extstore_bytes_used',
      'extstore_bytes_fragmented', 'extstore_limit_maxbytes', 'extstore_io_queue']);
  });
});

describe('recache, compaction and page eviction', () => {
  it('values read often come back to memory with their CAS (ext_recache_rate=1)', async () => {
    const s = await startExtServer({ settings: { extRecacheRate: 1 } });
    const c = new Client(s.port);
    try {
      await fill(c, 6000, VALUE_BYTES);
      await flushToDisk(s.engine);
      const i = [...Array(6000).keys()].find((n) => onDisk(s.engine, `k${n}`)) as number;
      const key = `k${i}`;
      const k = Buffer.from(key);
      const cas = s.engine.items.cas(s.engine.peek(k, 0, k.length));
      const expected = Buffer.concat([valueReply(key, i, valueOf(i, VALUE_BYTES)), Buffer.from('END\r\n')]);
      for (let n = 0; n < 3 && onDisk(s.engine, key); n++) {
        expect((await c.request(`get ${key}\r\n`, 'END\r\n')).equals(expected)).toBe(true);
        await new Promise((r) => setTimeout(r, 5));
      }
      expect(inMemory(s.engine, key)).toBe(true);
      expect(statsOf(s.engine).recache_from_extstore).toBeGreaterThanOrEqual(1);
      expect(s.engine.items.cas(s.engine.peek(k, 0, k.length))).toBe(cas);
      expect((await c.request(`get ${key}\r\n`, 'END\r\n')).equals(expected)).toBe(true);
    } finally {
      c.close();
      await s.stop();
    }
  });

  it("an item keeps mg's h, X and W when its value moves to disk", async () => {
    const s = await startExtServer();
    const c = new Client(s.port);
    try {
      expect((await c.request(setCommand('flagged', 5, valueOf(1, VALUE_BYTES)), '\r\n')).toString()).toBe('STORED\r\n');
      expect((await c.request('mg flagged\r\nmd flagged I\r\n', 'HD\r\nHD\r\n')).toString()).toBe('HD\r\nHD\r\n');
      await fill(c, 6000, VALUE_BYTES);
      await flushToDisk(s.engine);
      expect(onDisk(s.engine, 'flagged')).toBe(true);
      expect((await c.request('mg flagged f h\r\n', '\r\n')).toString()).toBe('HD f5 h1 X W\r\n');
      expect((await c.request('mg flagged\r\n', '\r\n')).toString()).toBe('HD Z X\r\n');
    } finally {
      c.close();
      await s.stop();
    }
  });

  it('full pages are evicted oldest first; their values read as misses', async () => {
    const s = await startExtServer({ fileMb: 8 });
    const c = new Client(s.port);
    try {
      await fill(c, 12_000, VALUE_BYTES); // 24 MB against 8 MB of memory and 8 pages of disk
      await flushToDisk(s.engine);
      const st = statsOf(s.engine);
      expect(st.extstore_page_evictions).toBeGreaterThan(0);
      expect(st.extstore_objects_evicted).toBeGreaterThan(0);
      // The oldest keys went first: k0 is gone (a stale header reads as a miss), the newest is there.
      const reply = await c.request('get k0 k11999\r\n', 'END\r\n');
      expect(reply.equals(Buffer.concat([valueReply('k11999', 11999, valueOf(11999, VALUE_BYTES)), Buffer.from('END\r\n')])))
        .toBe(true);
      const after = statsOf(s.engine);
      expect(after.curr_items).toBeLessThan(12_000);
      expect(after.extstore_pages_free + after.extstore_pages_used).toBe(8);
    } finally {
      c.close();
      await s.stop();
    }
  });

  it('fragmented pages are compacted: live values are rewritten and still read back', async () => {
    // 32 MiB of disk for 16 MB of values: every value fits (the writer takes nearly all of them).
    const s = await startExtServer({ fileMb: 32, settings: { extCompactUnderPages: 32, extMaxFrag: 0.9 } });
    const c = new Client(s.port);
    const watcher = new Client(s.port);
    try {
      expect((await watcher.request('watch sysevents\r\n', 'OK\r\n')).toString()).toBe('OK\r\n');
      const n = 8000;
      await fill(c, n, VALUE_BYTES);
      await flushToDisk(s.engine);
      // Delete most values on disk, keeping every tenth: pages become mostly holes.
      const kept: number[] = [];
      const del: string[] = [];
      for (let i = 0; i < n; i++) {
        if (!onDisk(s.engine, `k${i}`)) continue;
        if (i % 10 === 0) kept.push(i);
        else del.push(`delete k${i} noreply\r\n`);
      }
      await c.request(del.join('') + 'mn\r\n', 'MN\r\n');
      const storage = s.engine.storage!;
      for (let step = 0; step < 400 && statsOf(s.engine).extstore_compact_rescues < kept.length / 2; step++) {
        storage.compactStep();
        await flushToDisk(s.engine);
      }
      const st = statsOf(s.engine);
      expect(st.extstore_compact_rescues).toBeGreaterThan(0);
      const req = kept.map((i) => `get k${i}\r\n`).join('');
      const exp = Buffer.concat(kept.flatMap((i) => [valueReply(`k${i}`, i, valueOf(i, VALUE_BYTES)), Buffer.from('END\r\n')]));
      expect((await c.request(req, 'END\r\n', kept.length)).equals(exp)).toBe(true);
      // memcached's compaction sysevents, their rescues adding up to the counter.
      const lines = (await watcher.until('type=compact_end')).toString().split('\n');
      const fields = (l: string): Record<string, string> =>
        Object.fromEntries(l.split(' ').map((kv) => kv.split('=') as [string, string]));
      expect(lines.some((l) => /type=compact_fraginfo ratio=0\.90 bytes=\d+$/.test(l))).toBe(true);
      const startLine = lines.find((l) => l.includes('type=compact_start'));
      expect(startLine).toMatch(/^ts=\d+\.\d+ gid=\d+ type=compact_start id=\d+ version=\d+$/);
      const ends = lines.filter((l) => l.includes('type=compact_read_end')).map(fields);
      expect(ends.length).toBeGreaterThan(0);
      for (const f of ends) expect(Object.keys(f).slice(2)).toEqual(['type', 'id', 'offset', 'rescues', 'rescues_realloc', 'lost', 'lost_oom', 'skipped']);
      expect(ends.reduce((a, f) => a + Number(f.rescues), 0)).toBeGreaterThan(0);
      expect(lines.some((l) => l.includes(`type=compact_end id=${fields(startLine as string).id}`))).toBe(true);
    } finally {
      watcher.close();
      c.close();
      await s.stop();
    }
  });

  it('several files are striped page by page', async () => {
    const s = await startExtServer({ files: 2, fileMb: 8 });
    const c = new Client(s.port);
    try {
      await fill(c, 6000, VALUE_BYTES);
      await flushToDisk(s.engine);
      const ext = s.engine.storage!.ext;
      expect(ext.pages.map((p) => p.file.index).slice(0, 4)).toEqual([0, 1, 0, 1]);
      const { statSync } = await import('node:fs');
      expect(statSync(s.paths[0]).size).toBeGreaterThan(0);
      expect(statSync(s.paths[1]).size).toBeGreaterThan(0);
      const req = Array.from({ length: 6000 }, (_, i) => `get k${i}\r\n`).join('');
      const exp = Buffer.concat(Array.from({ length: 6000 }, (_, i) =>
        Buffer.concat([valueReply(`k${i}`, i, valueOf(i, VALUE_BYTES)), Buffer.from('END\r\n')])));
      expect((await c.request(req, 'END\r\n', 6000)).equals(exp)).toBe(true);
    } finally {
      c.close();
      await s.stop();
    }
  });

  it('large (chunked) values go to disk and back', async () => {
    const s = await startExtServer({ memoryMb: 8 });
    const c = new Client(s.port);
    try {
      const big = 700 * 1024; // above slab_chunk_max (512 KiB): a chunked item
      for (let i = 0; i < 30; i++) await c.send(setCommand(`big${i}`, i, valueOf(i, big), true));
      await c.request('mn\r\n', 'MN\r\n');
      await flushToDisk(s.engine);
      const disk = [...Array(30).keys()].filter((i) => onDisk(s.engine, `big${i}`));
      expect(disk.length).toBeGreaterThan(0);
      for (const i of disk.slice(0, 5)) {
        const r = await c.request(`get big${i}\r\n`, 'END\r\n');
        expect(r.equals(Buffer.concat([valueReply(`big${i}`, i, valueOf(i, big)), Buffer.from('END\r\n')]))).toBe(true);
      }
    } finally {
      c.close();
      await s.stop();
    }
  });
});

describe('the event loop is never blocked by disk reads', () => {
  it('a slow disk read holds back only the replies after it on its connection', async () => {
    const s = await startExtServer();
    const a = new Client(s.port);
    const b = new Client(s.port);
    try {
      await fill(a, 6000, VALUE_BYTES);
      await flushToDisk(s.engine);
      const ext = s.engine.storage!.ext;
      const real = ext.io;
      ext.io = { ...real, readNow: undefined, read: (fd, buf, off, len, pos, cb) => void setTimeout(() => real.read(fd, buf, off, len, pos, cb), 300) };
      const d = [...Array(6000).keys()].find((n) => onDisk(s.engine, `k${n}`)) as number;
      const m = 5999;
      expect(inMemory(s.engine, `k${m}`)).toBe(true);
      const t0 = Date.now();
      await a.send(`get k${d}\r\nget k${m}\r\n`);
      // Another connection is served while the read is pending: its reply comes while the
      // first connection has received nothing (no clock: a loaded machine may be slow).
      const other = await b.request(`get k${m}\r\n`, 'END\r\n');
      expect(other.equals(Buffer.concat([valueReply(`k${m}`, m, valueOf(m, VALUE_BYTES)), Buffer.from('END\r\n')]))).toBe(true);
      expect(a.take().length).toBe(0);
      const reply = await a.until('END\r\n', 2);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
      expect(reply.equals(Buffer.concat([valueReply(`k${d}`, d, valueOf(d, VALUE_BYTES)), Buffer.from('END\r\n'),
        valueReply(`k${m}`, m, valueOf(m, VALUE_BYTES)), Buffer.from('END\r\n')]))).toBe(true);
      ext.io = real;
    } finally {
      a.close();
      b.close();
      await s.stop();
    }
  });

  it('quit after a pending disk read: the reply goes out first, then the connection closes', async () => {
    const s = await startExtServer();
    const a = new Client(s.port);
    try {
      await fill(a, 6000, VALUE_BYTES);
      await flushToDisk(s.engine);
      const ext = s.engine.storage!.ext;
      const real = ext.io;
      ext.io = { ...real, readNow: undefined, read: (fd, buf, off, len, pos, cb) => void setTimeout(() => real.read(fd, buf, off, len, pos, cb), 100) };
      const d = [...Array(6000).keys()].find((n) => onDisk(s.engine, `k${n}`)) as number;
      const closed = new Promise((r) => a.socket.once('close', r));
      const reply = await a.request(`get k${d}\r\nmg k${d} v q\r\nquit\r\n`, 'END\r\n');
      await closed;
      const rest = a.take();
      expect(Buffer.concat([reply, rest]).equals(Buffer.concat([valueReply(`k${d}`, d, valueOf(d, VALUE_BYTES)),
        Buffer.from('END\r\n'), Buffer.from(`VA ${VALUE_BYTES}\r\n`), valueOf(d, VALUE_BYTES), Buffer.from('\r\n')]))).toBe(true);
      ext.io = real;
    } finally {
      a.close();
      await s.stop();
    }
  });

  it('sets never wait for the disk: with writes stuck, sets still answer and evict instead', async () => {
    const s = await startExtServer();
    const c = new Client(s.port);
    try {
      const ext = s.engine.storage!.ext;
      ext.io = { ...ext.io, write: () => {} }; // writes never complete
      // Completing at all is the point (a set waiting for the disk would never answer); the
      // test's own timeout bounds it, not a clock a loaded machine could miss.
      // 24 MB: past 8 MiB of memory and every write buffer (two per bucket, 1 MiB each).
      await fill(c, 12_000, VALUE_BYTES);
      const st = statsOf(s.engine);
      expect(st.evictions).toBeGreaterThan(0);
      expect((await c.request('set after 0 0 2\r\nok\r\nget after\r\n', 'END\r\n')).toString())
        .toBe('STORED\r\nVALUE after 0 2\r\nok\r\nEND\r\n');
      await waitFor(() => st.curr_items > 0, 'items');
    } finally {
      c.close();
      await s.stop();
    }
  });
});

describe('binary protocol gets of values on disk', () => {
  let s: ExtServer;

  beforeAll(async () => {
    s = await startExtServer({ memoryMb: 8 });
    const c = new Client(s.port);
    await fill(c, COUNT, VALUE_BYTES);
    c.close();
  });
  afterAll(async () => {
    await s.stop();
  });

  it('GETK answers disk and memory hits byte for byte, in request order', async () => {
    const net = await import('node:net');
    const indexes = [0, 1, COUNT - 1, 2, COUNT - 2, 3, 99999];
    const keys = indexes.map((i) => `k${i}`);
    expect(onDisk(s.engine, 'k0')).toBe(true);
    expect(inMemory(s.engine, `k${COUNT - 1}`)).toBe(true);
    const requests = keys.map((key, i) => {
      const h = Buffer.alloc(24 + key.length);
      h[0] = 0x80;
      h[1] = 0x0c; // GETK
      h.writeUInt16BE(key.length, 2);
      h.writeUInt32BE(key.length, 8);
      h.writeUInt32BE(1000 + i, 12);
      h.write(key, 24, 'latin1');
      return h;
    });
    const sock = net.connect(s.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    let data = Buffer.alloc(0);
    const replies: { status: number; opaque: number; key: string; value: Buffer }[] = [];
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timeout after ${replies.length} replies`)), 10_000);
      sock.on('data', (d) => {
        data = Buffer.concat([data, d]);
        while (data.length >= 24 && data.length >= 24 + data.readUInt32BE(8)) {
          const body = data.readUInt32BE(8);
          const keylen = data.readUInt16BE(2);
          const extlen = data[4];
          replies.push({
            status: data.readUInt16BE(6),
            opaque: data.readUInt32BE(12),
            key: data.toString('latin1', 24 + extlen, 24 + extlen + keylen),
            value: data.subarray(24 + extlen + keylen, 24 + body),
          });
          data = data.subarray(24 + body);
        }
        if (replies.length === keys.length) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    sock.write(Buffer.concat(requests));
    await done;
    sock.destroy();
    expect(replies.map((r) => r.opaque)).toEqual(keys.map((_, i) => 1000 + i));
    for (let i = 0; i < keys.length; i++) {
      const r = replies[i];
      expect(r.key).toBe(keys[i]);
      if (keys[i] === 'k99999') {
        expect(r.status).toBe(1);
        continue;
      }
      expect(r.status).toBe(0);
      expect(r.value.equals(valueOf(indexes[i], VALUE_BYTES))).toBe(true);
    }
  });
});
