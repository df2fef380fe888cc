/**
 * Extstore's batched reads (src/engine/batched-reads.ts): reads asked for in one turn of the
 * event loop go to the thread pool in a few preadBatch jobs, each read completes once with
 * what fs.read gives (bytes, a short count at the end of the file, an errno error), and with
 * the real addon the bytes are the file's.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BatchedReads } from '../../src/engine/batched-reads';
import { loadNative } from '../../src/platform/native';

type Done = (results: Int32Array) => void;

function readAll(reads: BatchedReads, asks: { fd: number; len: number; pos: number }[]): Promise<{ err: string | null; n: number; buf: Buffer }[]> {
  return Promise.all(asks.map((a) => new Promise<{ err: string | null; n: number; buf: Buffer }>((resolve) => {
    const buf = Buffer.alloc(a.len + 4, 0xee);
    reads.read(a.fd, buf, 2, a.len, a.pos, (err, n) => resolve({ err: err === null ? null : String(err.code), n, buf }));
  })));
}

describe('batched extstore reads', () => {
  it('one turn of reads becomes at most jobsMax jobs, every read answered once, in its own slot', async () => {
    const jobs: number[] = [];
    const fake = {
      preadBatch(fds: Int32Array, positions: Float64Array, views: Uint8Array[], done: Done): void {
        jobs.push(views.length);
        const results = new Int32Array(views.length);
        for (let i = 0; i < views.length; i++) {
          // fd 13 fails with EIO; others "read" the position's low byte everywhere.
          if (fds[i] === 13) results[i] = -5;
          else {
            views[i].fill(positions[i] & 0xff);
            results[i] = views[i].length;
          }
        }
        setImmediate(() => done(results));
      },
    };
    const reads = new BatchedReads(fake, 4);
    const asks = Array.from({ length: 40 }, (_, i) => ({ fd: i === 7 ? 13 : 3, len: 10 + i, pos: 100 + i }));
    const got = await readAll(reads, asks);
    expect(jobs.reduce((a, b) => a + b, 0)).toBe(40);
    expect(jobs).toEqual([10, 10, 10, 10]);
    for (let i = 0; i < 40; i++) {
      if (i === 7) {
        expect(got[i]).toMatchObject({ err: 'EIO', n: 0 });
        continue;
      }
      expect(got[i].err).toBeNull();
      expect(got[i].n).toBe(asks[i].len);
      expect(got[i].buf.subarray(2, 2 + asks[i].len).every((b) => b === ((100 + i) & 0xff))).toBe(true);
      // Bytes around the slot are untouched.
      expect([got[i].buf[0], got[i].buf[1], got[i].buf[2 + asks[i].len]]).toEqual([0xee, 0xee, 0xee]);
    }
    // A few reads stay one job (a job takes at least 8 before the batch is split).
    await readAll(reads, Array.from({ length: 9 }, () => ({ fd: 3, len: 4, pos: 0 })));
    expect(jobs.at(-1)).toBe(9);
  });

  const addon = loadNative().addon;
  (addon === null ? it.skip : it)('with the native addon: the file\'s bytes, a short read at its end, EBADF for a closed descriptor', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-batch-'));
    try {
      const file = path.join(dir, 'data');
      const content = Buffer.alloc(64 * 1024);
      for (let i = 0; i < content.length; i++) content[i] = (i * 7) & 0xff;
      fs.writeFileSync(file, content);
      const fd = fs.openSync(file, 'r');
      const reads = new BatchedReads(addon!, 3);
      const asks = Array.from({ length: 9 }, (_, i) => ({ fd, len: 4096, pos: i * 5000 }));
      asks.push({ fd, len: 4096, pos: content.length - 100 });
      asks.push({ fd: 1_000_000, len: 16, pos: 0 });
      const got = await readAll(reads, asks);
      fs.closeSync(fd);
      for (let i = 0; i < 9; i++) {
        expect(got[i].err).toBeNull();
        expect(got[i].buf.subarray(2, 4098).equals(content.subarray(i * 5000, i * 5000 + 4096))).toBe(true);
      }
      expect(got[9]).toMatchObject({ err: null, n: 100 });
      expect(got[10]).toMatchObject({ err: 'EBADF', n: 0 });
      expect(reads.jobs).toBeLessThanOrEqual(3);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  (addon === null ? it.skip : it)('preadNow: the bytes the page cache holds, split over two views at the offsets asked, or -errno', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-now-'));
    try {
      const file = path.join(dir, 'data');
      const content = Buffer.alloc(20_000);
      for (let i = 0; i < content.length; i++) content[i] = (i * 13) & 0xff;
      fs.writeFileSync(file, content); // just written: in the page cache
      const fd = fs.openSync(file, 'r');
      const head = Buffer.alloc(40, 0xee);
      const body = Buffer.alloc(5000, 0xee);
      expect(addon!.preadNow(fd, 7000, head, 2, 30, body, 100, 4096)).toBe(4126);
      expect(head.subarray(2, 32).equals(content.subarray(7000, 7030))).toBe(true);
      expect(body.subarray(100, 4196).equals(content.subarray(7030, 11126))).toBe(true);
      expect([head[1], head[32], body[99], body[4196]]).toEqual([0xee, 0xee, 0xee, 0xee]);
      expect(addon!.preadNow(fd, content.length - 10, head, 0, 4, body, 0, 100)).toBe(10); // the end of the file
      fs.closeSync(fd);
      expect(addon!.preadNow(fd, 0, head, 0, 4, body, 0, 100)).toBe(-9); // EBADF
      expect(() => addon!.preadNow(fd, 0, head, 0, 4, body, 4000, 2000)).toThrow(/preadNow/); // past the view
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
