/**
 * Extstore reads in batches: the reads asked for during one turn of the event loop (the gets
 * of every connection read in that turn; flushed by setImmediate, after the turn's I/O
 * callbacks, since a nextTick would flush after each connection's) go to libuv's thread pool as a few jobs of several pread()s each,
 * through the native addon's preadBatch, instead of one fs.read per value.
 *
 * Why: each fs.read wakes a pool thread and completes through its own callback, two context
 * switches per value. With the server on one core (memcached's deployments pin it too) the
 * switches were the largest cost of a 4 KiB extstore get: perf showed 44% of the server's
 * cycles in the scheduler (finish_task_switch, wakeups) under the extstore bench. memcached's
 * IO threads take a queue of reads per wake in the same way.
 *
 * The batch is split into at most `jobsMax` jobs (the pool's threads) of at least
 * READS_PER_JOB_MIN reads, so a slow disk read holds back only the reads in its job. Order of completion between jobs is free; each read
 * completes exactly once with what fs.read would give (bytes read or an errno error).
 *
 * Not for: writes (the background writer issues few, large ones), or anything when the addon
 * is missing: then `batchedReadIo` returns null and fs.read is used.
 */
import * as util from 'node:util';
import type { ExtstoreIo } from '../extstore/extstore';
import { loadNative, type NativeAddon } from '../platform/native';

type ReadDone = (err: NodeJS.ErrnoException | null, bytesRead: number) => void;

interface PendingRead {
  fd: number;
  view: Buffer;
  pos: number;
  cb: ReadDone;
}

/**
 * Reads in one job at least before the batch is split over more threads: each job is a
 * thread wake and a completion. With the server on one core, 16 clients at pipeline 1 and
 * 4 KiB values in the page cache, 2 per job gave 27k ops/s, 8 gave 35-40k, 32 about the same
 * as 8; more per job also means reads waiting behind each other on a slow disk.
 */
const READS_PER_JOB_MIN = 8;

export class BatchedReads {
  private pending: PendingRead[] = [];
  private scheduled = false;
  /** Jobs handed to the pool (for tests). */
  jobs = 0;

  constructor(private readonly addon: Pick<NativeAddon, 'preadBatch'>, private readonly jobsMax: number) {}

  read(fd: number, buf: Buffer, off: number, len: number, pos: number, cb: ReadDone): void {
    this.pending.push({ fd, view: buf.subarray(off, off + len), pos, cb });
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    const all = this.pending;
    this.pending = [];
    const jobs = Math.max(1, Math.min(this.jobsMax, Math.floor(all.length / READS_PER_JOB_MIN)));
    const per = Math.ceil(all.length / jobs);
    for (let first = 0; first < all.length; first += per) this.submit(all.slice(first, first + per));
  }

  private submit(reads: PendingRead[]): void {
    const n = reads.length;
    const fds = new Int32Array(n);
    const positions = new Float64Array(n);
    const views: Buffer[] = new Array<Buffer>(n);
    for (let i = 0; i < n; i++) {
      fds[i] = reads[i].fd;
      positions[i] = reads[i].pos;
      views[i] = reads[i].view;
    }
    this.jobs++;
    try {
      this.addon.preadBatch(fds, positions, views, (results: Int32Array) => {
        for (let i = 0; i < n; i++) complete(reads[i].cb, results[i]);
      });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      for (const r of reads) r.cb(err, 0);
    }
  }
}

function complete(cb: ReadDone, result: number): void {
  if (result >= 0) {
    cb(null, result);
    return;
  }
  const code = util.getSystemErrorName(result);
  const err = new Error(`${code}: read failed`) as NodeJS.ErrnoException;
  err.code = code;
  err.errno = result;
  err.syscall = 'read';
  cb(err, 0);
}

/**
 * `base` with batched reads and reads from the page cache at once (readNow) when the native
 * addon is there; null without it.
 */
export function batchedReadIo(base: ExtstoreIo, jobsMax: number): ExtstoreIo | null {
  const addon = loadNative().addon;
  if (addon === null || typeof addon.preadBatch !== 'function') return null;
  const reads = new BatchedReads(addon, jobsMax);
  const io: ExtstoreIo = { ...base, read: (fd, buf, off, len, pos, cb) => reads.read(fd, buf, off, len, pos, cb) };
  // Reads the page cache can answer at once skip the pool altogether (Extstore.readInto).
  io.readNow = (fd, pos, head, headLen, body, bodyAt, bodyLen) =>
    addon.preadNow(fd, pos, head, 0, headLen, body, bodyAt, bodyLen);
  return io;
}
