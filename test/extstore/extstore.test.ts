/**
 * The extstore library on its own (src/extstore/extstore.ts): records through write buffers
 * to pages and back, page versions, counters on delete, oldest-first eviction, buckets,
 * striping, fault bookkeeping; and the CRC-32C it is used with.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { crc32c, crc32cImplementation, crc32cTable, useNativeCrc32c } from '../../src/extstore/crc32c';
import { loadNative } from '../../src/platform/native';
import {
  BUCKET_COMPACT, BUCKET_DEFAULT, BUCKET_LOWTTL, Extstore, READ_NOT_NOW, READ_NOW_BYTES_MAX, READ_NOW_CACHED, READ_NOW_WBUF,
  ReadResult, nodeIo, type ExtstoreConfig,
} from '../../src/extstore/extstore';
import { tempDir, waitFor } from './harness';

const KIB = 1024;
const PAGE = 64 * KIB;
const WBUF = 16 * KIB;

let stores: Extstore[] = [];
let dirs: string[] = [];

afterEach(() => {
  for (const s of stores) s.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  stores = [];
  dirs = [];
});

function open(pages = 4, files = 1, extra: Partial<ExtstoreConfig> = {}): Extstore {
  const dir = tempDir('mcts-extlib-');
  dirs.push(dir);
  const s = new Extstore({
    pageBytes: PAGE,
    wbufBytes: WBUF,
    files: Array.from({ length: files }, (_, i) => ({ path: path.join(dir, `f${i}`), pageCount: pages })),
    readsInFlightMax: 4,
    readBytesQueuedMax: 1 << 20,
    ...extra,
  });
  stores.push(s);
  return s;
}

interface Written {
  pageId: number;
  version: number;
  offset: number;
  data: Buffer;
}

function write(s: Extstore, data: Buffer, bucket = BUCKET_DEFAULT): Written | null {
  if (!s.writeRequest(bucket, data.length)) return null;
  const slot = s.slot;
  data.copy(slot.buf, slot.bufOffset);
  s.writeCommit(data.length);
  return { pageId: slot.pageId, version: slot.version, offset: slot.offset, data };
}

function record(i: number, bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let j = 0; j < bytes; j++) b[j] = (i * 7 + j) & 0xff;
  return b;
}

async function read(s: Extstore, w: Written): Promise<{ result: ReadResult; data: Buffer | null }> {
  return await new Promise((resolve) => {
    s.read(w.pageId, w.version, w.offset, w.data.length, (result, buf, start) => {
      resolve({ result, data: result === ReadResult.Ok ? Buffer.from(buf.subarray(start, start + w.data.length)) : null });
    });
  });
}

async function settle(s: Extstore): Promise<void> {
  s.flushAll();
  await waitFor(() => s.ioQueue === 0, 'io queue empty');
}

describe('extstore library', () => {
  it('reads records back from write buffers (synchronously) and from disk', async () => {
    const s = open();
    const w = write(s, record(1, 1000)) as Written;
    let sync = false;
    s.read(w.pageId, w.version, w.offset, 1000, (r, buf, start) => {
      sync = r === ReadResult.Ok && buf.subarray(start, start + 1000).equals(w.data);
    });
    expect(sync).toBe(true);
    const all: Written[] = [w];
    for (let i = 2; i < 100; i++) all.push(write(s, record(i, 1000)) as Written);
    await settle(s);
    for (const x of all) expect((await read(s, x)).data?.equals(x.data)).toBe(true);
    expect(s.counters.objects_written).toBe(99);
    expect(s.counters.bytes_used).toBe(99_000);
    expect(fs.statSync(path.join(dirs[0], 'f0')).size).toBeGreaterThanOrEqual(PAGE);
  });

  it('a record never spans write buffers; buffers are zero-filled past the last record', async () => {
    const s = open();
    const a = write(s, record(1, WBUF - 100)) as Written;
    const b = write(s, record(2, 200)) as Written;
    expect(a.offset).toBe(0);
    expect(b.offset).toBe(WBUF);
    await settle(s);
    const raw = fs.readFileSync(path.join(dirs[0], 'f0'));
    expect(raw.subarray(WBUF - 100, WBUF).every((x) => x === 0)).toBe(true);
  });

  it('deletes only adjust counters; a page emptied by deletes is reclaimed', async () => {
    const s = open(4);
    const ws: Written[] = [];
    for (let i = 0; i < 80; i++) ws.push(write(s, record(i, 1000)) as Written); // > 1 page
    await settle(s);
    const first = ws.filter((w) => w.pageId === ws[0].pageId);
    for (const w of first) expect(s.delete(w.pageId, w.version, 1, 1000)).toBe(true);
    expect(s.counters.objects_used).toBe(80 - first.length);
    expect(s.counters.page_reclaims).toBe(1);
    expect(s.check(ws[0].pageId, ws[0].version)).toBe(false);
    expect((await read(s, ws[0])).result).toBe(ReadResult.Stale);
    expect(s.delete(ws[0].pageId, ws[0].version, 1, 1000)).toBe(false);
  });

  it('when full, the oldest page is evicted; a stale pointer to a reused page reads as a miss', async () => {
    const s = open(3);
    const ws: Written[] = [];
    for (let i = 0; i < 3 * 64 + 10; i++) {
      const w = write(s, record(i, 1000));
      if (w !== null) ws.push(w);
      if (i % 16 === 15) await settle(s);
    }
    await settle(s);
    expect(s.counters.page_evictions).toBeGreaterThanOrEqual(1);
    expect(s.counters.objects_evicted).toBeGreaterThan(0);
    const oldest = ws[0];
    const reused = ws.find((w) => w.pageId === oldest.pageId && w.version !== oldest.version);
    expect(reused).toBeDefined();
    expect((await read(s, oldest)).result).toBe(ReadResult.Stale);
    expect((await read(s, reused as Written)).data?.equals((reused as Written).data)).toBe(true);
  });

  it('buckets fill their own pages; closePage frees a page', async () => {
    const s = open(4);
    const a = write(s, record(1, 100), BUCKET_DEFAULT) as Written;
    const b = write(s, record(2, 100), BUCKET_COMPACT) as Written;
    expect(a.pageId).not.toBe(b.pageId);
    for (let i = 0; i < 70; i++) write(s, record(i, 1000), BUCKET_DEFAULT);
    await settle(s);
    const seen: number[] = [];
    s.pageData((id, version, bytes) => {
      if (version !== 0) seen.push(id);
      expect(bytes).toBeGreaterThanOrEqual(0);
    });
    expect(seen).toContain(a.pageId);
    s.closePage(a.pageId, a.version);
    expect(s.check(a.pageId, a.version)).toBe(false);
  });

  it("a file's bucket: its free pages serve that bucket first; others take default pages only", async () => {
    const dir = tempDir('mcts-extlib-');
    dirs.push(dir);
    const s = new Extstore({
      pageBytes: PAGE,
      wbufBytes: WBUF,
      files: [
        { path: path.join(dir, 'd'), pageCount: 2, freeBucket: BUCKET_DEFAULT },
        { path: path.join(dir, 'c'), pageCount: 2, freeBucket: BUCKET_COMPACT },
      ],
      readsInFlightMax: 4,
      readBytesQueuedMax: 1 << 20,
    });
    stores.push(s);
    const freeBy = (): number[] => {
      const n = [0, 0];
      s.pageData((_id, version, _bytes, _bucket, fb) => {
        if (version === 0) n[fb]++;
      });
      return n;
    };
    expect(freeBy()).toEqual([2, 2]);
    const c = write(s, record(1, 100), BUCKET_COMPACT) as Written;
    expect(s.pages[c.pageId].file.path.endsWith('/c')).toBe(true);
    expect(freeBy()).toEqual([2, 1]);
    // Default writes fill both default pages, then evict among them: never a compact page.
    for (let i = 0; i < 3 * 64; i++) {
      const w = write(s, record(i, 1000), BUCKET_DEFAULT);
      if (w !== null) expect(s.pages[w.pageId].file.path.endsWith('/d')).toBe(true);
      if (i % 16 === 15) await settle(s);
    }
    await settle(s);
    expect(s.counters.page_evictions).toBeGreaterThan(0);
    expect(freeBy()[1]).toBe(1);
    expect(s.check(c.pageId, c.version)).toBe(true);
    // A bucket without pages of its own falls back to default pages.
    const l = write(s, record(2, 100), BUCKET_LOWTTL) as Written;
    expect(s.pages[l.pageId].file.path.endsWith('/d')).toBe(true);
  });

  it('pages are striped over files, one page at a time', () => {
    const s = open(3, 2);
    expect(s.pages.map((p) => [p.file.index, p.offset / PAGE])).toEqual([[0, 0], [1, 0], [0, 1], [1, 1], [0, 2], [1, 2]]);
  });

  it('a failed write drops its page, pauses writes and is counted', async () => {
    const s = open(4);
    const real = s.io;
    s.io = { ...real, write: (_fd, _b, _o, _l, _p, cb) => setImmediate(() => cb(Object.assign(new Error('x'), { code: 'EIO' }), 0)) };
    const w = write(s, record(1, 1000)) as Written;
    await settle(s);
    expect(s.counters.write_errors).toBe(1);
    expect(s.counters.pages_lost).toBe(1);
    expect(s.counters.objects_used).toBe(0);
    expect((await read(s, w)).result).toBe(ReadResult.Stale);
    expect(s.writeRequest(BUCKET_DEFAULT, 100)).toBe(false);
    expect(s.counters.writes_refused).toBe(1);
  });

  it('a write buffer goes to its file in pieces of at most 256 KiB, one after the other', async () => {
    const s = open(2, 1, { pageBytes: 1024 * KIB, wbufBytes: 1024 * KIB });
    const real = s.io;
    const writes: number[] = [];
    let inFlight = 0;
    let most = 0;
    s.io = {
      ...real,
      write: (fd, buf, off, len, pos, cb) => {
        writes.push(len);
        most = Math.max(most, ++inFlight);
        real.write(fd, buf, off, len, pos, (err, n) => {
          inFlight--;
          cb(err, n);
        });
      },
    };
    const ws = Array.from({ length: 900 }, (_, i) => write(s, record(i, 1000)) as Written);
    await settle(s);
    expect(writes).toEqual([256 * KIB, 256 * KIB, 256 * KIB, 256 * KIB]);
    expect(most).toBe(1);
    for (const w of [ws[0], ws[300], ws[899]]) expect((await read(s, w)).data?.equals(w.data)).toBe(true);
  });

  it('a file removed with a write in flight: its old descriptor closes only after the write, which goes no further', async () => {
    const s = open(2, 1, { pageBytes: 1024 * KIB, wbufBytes: 1024 * KIB });
    const real = s.io;
    const held: Array<() => void> = [];
    const writesTo: number[] = [];
    const closed: number[] = [];
    s.io = {
      ...real,
      // Each write waits until the test lets it go (as one waiting on a busy thread pool).
      write: (fd, buf, off, len, pos, cb) => {
        writesTo.push(fd);
        held.push(() => real.write(fd, buf, off, len, pos, cb));
      },
      fstat: (fd, cb) => real.fstat(fd, (err, st) => cb(err, Object.assign(st, { nlink: 0 }))),
      close: (fd) => {
        closed.push(fd);
        real.close(fd);
      },
    };
    const oldFd = s.files[0].fd;
    for (let i = 0; i < 1100; i++) write(s, record(i, 1000));
    await waitFor(() => held.length === 1, 'a write in flight');
    s.checkFiles();
    await waitFor(() => s.counters.files_removed === 1 && s.files[0].fd >= 0 && s.files[0].fd !== oldFd, 'the file created again');
    // Removed and created again, but the write issued against the old file is still waiting.
    expect(closed).not.toContain(oldFd);
    held.shift()!();
    await waitFor(() => closed.includes(oldFd), 'the old descriptor closed');
    // The first 256 KiB went to the old file; the rest of that buffer was not sent to the new one.
    await new Promise((r) => setTimeout(r, 20));
    expect(writesTo).toEqual([oldFd]);
  });

  it('a read queue over its byte bound answers Busy instead of queueing', async () => {
    const s = open(4, 1, { readsInFlightMax: 1, readBytesQueuedMax: 1500 });
    const ws = Array.from({ length: 40 }, (_, i) => write(s, record(i, 1000)) as Written);
    await settle(s);
    const results = await Promise.all(ws.slice(0, 3).map((w) => read(s, w)));
    expect(results.map((r) => r.result)).toContain(ReadResult.Busy);
    expect(results[0].result).toBe(ReadResult.Ok);
  });
});

describe('extstore reads now (readInto): write buffer or page cache, else not now', () => {
  /** An io whose readNow answers with `answer(len)` (a pread when it says so) and counts calls. */
  function withReadNow(s: Extstore, answer: (len: number) => number | 'read'): { now: number } {
    const calls = { now: 0 };
    s.io = {
      ...nodeIo,
      readNow: (fd, pos, head, headLen, body, bodyAt, bodyLen) => {
        calls.now++;
        const a = answer(headLen + bodyLen);
        if (a !== 'read') return a;
        return fs.readSync(fd, head, 0, headLen, pos) + fs.readSync(fd, body, bodyAt, bodyLen, pos + headLen);
      },
    };
    return calls;
  }

  async function written(s: Extstore, n: number, bytes: number): Promise<Written[]> {
    const ws = Array.from({ length: n }, (_, i) => write(s, record(i, bytes)) as Written);
    await settle(s);
    return ws;
  }

  function into(s: Extstore, w: Written, headLen: number): { from: number; got: Buffer } {
    const head = Buffer.alloc(headLen);
    const body = Buffer.alloc(w.data.length - headLen + 8, 0xee);
    const from = s.readInto(w.pageId, w.version, w.offset, w.data.length, head, headLen, body, 4);
    return { from, got: Buffer.concat([head, body.subarray(4, 4 + w.data.length - headLen)]) };
  }

  it('a record in a write buffer or whole in the page cache: split into head and body, nothing counted', async () => {
    const s = open();
    const inWbuf = write(s, record(77, 1000)) as Written;
    withReadNow(s, () => 'read');
    let r = into(s, inWbuf, 40);
    expect(r.from).toBe(READ_NOW_WBUF);
    expect(r.got.equals(inWbuf.data)).toBe(true);
    const ws = await written(s, 40, 1000);
    r = into(s, ws[3], 16);
    expect(r.from).toBe(READ_NOW_CACHED);
    expect(r.got.equals(ws[3].data)).toBe(true);
    expect(s.counters.objects_read).toBe(0);
    s.countReadNow(1000, READ_NOW_CACHED);
    expect([s.counters.objects_read, s.counters.bytes_read, s.counters.reads_cached]).toEqual([1, 1000, 1]);
    // A stale pointer is not now (read() says what is wrong).
    expect(s.readInto(ws[3].pageId, ws[3].version + 1000, ws[3].offset, 1000, Buffer.alloc(16), 16, Buffer.alloc(1000), 0))
      .toBe(READ_NOT_NOW);
  });

  it('not cached (EAGAIN), cached in part, or over the bound: not now', async () => {
    const s = open(8, 1, { pageBytes: 1024 * KIB, wbufBytes: 512 * KIB });
    const ws = await written(s, 4, 1000);
    const big = await written(s, 1, READ_NOW_BYTES_MAX + 8);
    let answer = -11;
    const calls = withReadNow(s, () => answer);
    expect(into(s, ws[0], 16).from).toBe(READ_NOT_NOW);
    answer = 500; // a short read: part of the record is not in the page cache
    expect(into(s, ws[1], 16).from).toBe(READ_NOT_NOW);
    answer = READ_NOW_BYTES_MAX + 8;
    expect(into(s, big[0], 16).from).toBe(READ_NOT_NOW);
    expect(calls.now).toBe(2);
  });

  it('a file system that cannot (EOPNOTSUPP) is asked once, then never again', async () => {
    const s = open();
    const ws = await written(s, 4, 1000);
    const calls = withReadNow(s, () => -95);
    for (const w of ws) expect(into(s, w, 16).from).toBe(READ_NOT_NOW);
    expect(calls.now).toBe(1);
  });
});

describe('crc32c', () => {
  const addon = loadNative().addon;
  afterEach(() => useNativeCrc32c(null));

  it('the JavaScript version: the standard check value, any split point', () => {
    expect(crc32cTable(Buffer.from('123456789'), 0, 9)).toBe(0xe3069283);
    expect(crc32cTable(Buffer.alloc(32), 0, 32)).toBe(0x8a9136aa); // RFC 3720's 32 zero bytes
    const data = record(5, 10_000);
    for (const cut of [0, 1, 7, 8, 9, 4000, 9999, 10_000]) {
      expect(crc32cTable(data, cut, 10_000, crc32cTable(data, 0, cut))).toBe(crc32cTable(data, 0, 10_000));
    }
    expect(crc32cImplementation()).toBe('javascript');
    expect(crc32c(data, 3, 9000)).toBe(crc32cTable(data, 3, 9000));
  });

  (addon === null ? it.skip : it)('the addon\'s agrees with it at every length, alignment and split (three-stream rounds included)', () => {
    useNativeCrc32c(addon);
    expect(['sse4.2', 'table']).toContain(crc32cImplementation());
    const data = record(9, 70_000);
    for (let n = 0; n < 30_000; n += 61) {
      for (const off of [0, 3]) expect(crc32c(data, off, off + n)).toBe(crc32cTable(data, off, off + n));
    }
    for (const n of [24_576, 24_577, 65_536, 69_990]) expect(crc32c(data, 1, 1 + n)).toBe(crc32cTable(data, 1, 1 + n));
    expect(crc32c(data, 500, 70_000, crc32c(data, 0, 500))).toBe(crc32c(data, 0, 70_000));
    expect(() => addon!.crc32c(data, 10, 5, 0)).toThrow(/crc32c/);
    expect(() => addon!.crc32c(data, 0, 70_001, 0)).toThrow(/crc32c/);
  });
});
