/**
 * Extstore for the worker threads (-t N > 1): thread 0 owns the pages, the files and the
 * background work (writer, compaction); every worker reads values on disk through a link to
 * it.
 *
 * What a worker does with a header item's record:
 * - is the pointer still good (page version): the shared page table (Extstore.table);
 * - read it now, without waiting, when the table says that part of the page is on disk: a
 *   pread from the page cache (RWF_NOWAIT) on its own read-only descriptors;
 * - otherwise, when it is on disk, read it on libuv's thread pool (the process's one pool,
 *   sized by ext_threads) from those descriptors, at most as many reads and bytes in flight
 *   per thread as thread 0 allows itself;
 * - a record still in one of thread 0's write buffers, or one past those bounds: read it
 *   through thread 0 (one message each way, the record copied into a buffer of its own and
 *   transferred; thread 0 applies its own bounds, get_oom_extstore past them);
 * - a header item that leaves the cache: its page's counters are thread 0's, so the deletion
 *   is sent on, with the counts of reads made here, as one notice at most every
 *   NOTICE_INTERVAL_MS (and before a command forwarded to thread 0, so its `stats` see them).
 * Every record read here is checked by the caller (src/engine/storage.ts) against the length
 * and CRC-32C its header item keeps, so a page reused under a read is a miss, never a wrong
 * value.
 */
import * as fs from 'node:fs';
import type { MessagePort } from 'node:worker_threads';
import {
  PT_FILE, PT_GENERATION, PT_HEADER_WORDS, PT_SLOT, PT_STRIDE, PT_VERSION, PT_WAKE, PT_WRITTEN, READ_NOT_NOW,
  READ_NOW_BYTES_MAX, READ_NOW_CACHED, READ_NOW_UNSUPPORTED, ReadResult, type Extstore, type ReadCallback,
  type RecordStore,
} from '../extstore/extstore';
import { closeDescriptor } from '../platform/descriptors';
import { loadNative } from '../platform/native';
import type { Storage } from './storage';

/** What a serving thread is given to reach thread 0's extstore (structured-cloneable; the port transferred). */
export interface StorageLinkData {
  /** Extstore.table's buffer. */
  readonly table: SharedArrayBuffer;
  /** The ext_path files, in order (the table names them by index). */
  readonly paths: readonly string[];
  readonly pageBytes: number;
  /** This thread's end of its read channel to thread 0. */
  readonly port: MessagePort;
  /** Reads this thread may have on the thread pool at once (thread 0's own bound). */
  readonly readsInFlightMax: number;
  /** Bytes of them. */
  readonly readBytesMax: number;
}

/** A read of a record. */
interface ReadRequest {
  readonly id: number;
  readonly pageId: number;
  readonly version: number;
  readonly offset: number;
  readonly len: number;
}

/** "Wake the writer": sent once the table's PT_WAKE word was set. */
interface WakeRequest {
  readonly wake: true;
}

interface ReadAnswer {
  readonly id: number;
  readonly result: ReadResult;
  /** The record (ReadResult.Ok only). */
  readonly bytes: Uint8Array | null;
}

/** What a thread tells thread 0 every NOTICE_INTERVAL_MS: deletions (page, version, count, bytes each) and direct reads. */
export interface StorageNotice {
  readonly deletes: readonly number[];
  readonly objectsRead: number;
  readonly bytesRead: number;
  readonly readsCached: number;
  readonly readErrors: number;
  readonly shortReads: number;
}

const EMPTY = Buffer.alloc(0);

/**
 * How long deletions and read counts wait to be sent to thread 0 (they are sent at once before
 * a command this thread forwards, so its `stats` sees them). Once per event-loop turn cost a
 * message, and a wake-up of thread 0, per turn that read from disk: thousands a second.
 */
export const NOTICE_INTERVAL_MS = 10;

/** Thread 0: answer the reads another thread sends on `port` from `storage`'s pages; wake its writer when asked. */
export function serveStorageLink(storage: Storage, port: MessagePort): void {
  const ext = storage.ext;
  port.on('message', (m: ReadRequest | WakeRequest) => {
    if ('wake' in m) {
      Atomics.store(ext.table, PT_WAKE, 0);
      storage.wakeWriter();
      return;
    }
    ext.read(m.pageId, m.version, m.offset, m.len, (result, buf, start) => {
      let bytes: Uint8Array | null = null;
      if (result === ReadResult.Ok) {
        bytes = new Uint8Array(m.len);
        bytes.set(buf.subarray(start, start + m.len));
      }
      const answer: ReadAnswer = { id: m.id, result, bytes };
      port.postMessage(answer, bytes === null ? [] : [bytes.buffer as ArrayBuffer]);
    });
  });
  port.unref();
}

/** Thread 0: take another thread's notice. */
export function applyStorageNotice(ext: Extstore, n: StorageNotice): void {
  const d = n.deletes;
  for (let i = 0; i + 3 < d.length; i += 4) ext.delete(d[i], d[i + 1], d[i + 2], d[i + 3]);
  const c = ext.counters;
  c.objects_read += n.objectsRead;
  c.bytes_read += n.bytesRead;
  c.reads_cached += n.readsCached;
  c.read_errors += n.readErrors;
  c.short_reads += n.shortReads;
}

/** The RecordStore of a worker thread. */
export class LinkedRecords implements RecordStore {
  private readonly table: Uint32Array;
  private readonly pageCount: number;
  private readonly paths: readonly string[];
  private readonly pageBytes: number;
  private readonly port: MessagePort;
  private readonly waiting = new Map<number, ReadCallback>();
  private nextId = 1;
  /** Read-only descriptors of the files (-1: not open, or could not be). */
  private fds: number[] = [];
  /** Descriptors replaced after a file was created again, closed once no read is in flight (see Extstore's StoreFile.retired). */
  private retired: number[] = [];
  private fdGeneration = -1;
  private readNowOff: boolean;
  private deletes: number[] = [];
  private objectsRead = 0;
  private bytesRead = 0;
  private readsCached = 0;
  private readErrors = 0;
  private shortReads = 0;
  private readsInFlight = 0;
  private readBytesInFlight = 0;
  private readonly readsInFlightMax: number;
  private readonly readBytesMax: number;
  private noticeTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly logged = new Set<string>();

  constructor(data: StorageLinkData, private readonly send: (n: StorageNotice) => void,
    private readonly log: (level: number, message: string) => void) {
    this.table = new Uint32Array(data.table);
    this.pageCount = (this.table.length - PT_HEADER_WORDS) / PT_STRIDE;
    this.paths = data.paths;
    this.pageBytes = data.pageBytes;
    this.port = data.port;
    this.readsInFlightMax = Math.max(1, data.readsInFlightMax);
    this.readBytesMax = data.readBytesMax;
    this.readNowOff = typeof loadNative().addon?.preadNow !== 'function';
    this.port.on('message', (a: ReadAnswer) => this.answered(a));
    // Reads waiting keep the thread alive through their connections, not through the port.
    this.port.unref();
  }

  private at(pageId: number): number {
    return PT_HEADER_WORDS + pageId * PT_STRIDE;
  }

  /** Where byte `offset` of page `pageId` is in its file. */
  private positionOf(pageId: number, offset: number): number {
    return this.table[this.at(pageId) + PT_SLOT] * this.pageBytes + offset;
  }

  check(pageId: number, version: number): boolean {
    return pageId < this.pageCount && version !== 0 && this.table[this.at(pageId) + PT_VERSION] === version;
  }

  delete(pageId: number, version: number, count: number, bytes: number): void {
    this.deletes.push(pageId, version, count, bytes);
    this.queueNotice();
  }

  read(pageId: number, version: number, offset: number, len: number, cb: ReadCallback): void {
    if (this.closed || !this.check(pageId, version)) {
      cb(ReadResult.Stale, EMPTY, 0);
      return;
    }
    if (this.readsInFlight < this.readsInFlightMax && this.readBytesInFlight + len <= this.readBytesMax &&
      this.onDisk(pageId, version, offset, len)) {
      const fd = this.fileOf(pageId);
      if (fd >= 0) {
        this.readFromDisk(fd, pageId, version, offset, len, cb);
        return;
      }
    }
    const id = this.nextId;
    this.nextId = id >= 0x7fffffff ? 1 : id + 1;
    this.waiting.set(id, cb);
    const m: ReadRequest = { id, pageId, version, offset, len };
    this.port.postMessage(m);
  }

  /** Read a record that is on disk on the thread pool; checks as Extstore.onRead does. */
  private readFromDisk(fd: number, pageId: number, version: number, offset: number, len: number, cb: ReadCallback): void {
    const buf = Buffer.allocUnsafe(len);
    const pos = this.positionOf(pageId, offset);
    this.readsInFlight++;
    this.readBytesInFlight += len;
    fs.read(fd, buf, 0, len, pos, (err, n) => {
      this.readsInFlight--;
      this.readBytesInFlight -= len;
      this.closeRetired();
      if (this.closed) {
        cb(ReadResult.Stale, EMPTY, 0);
        return;
      }
      if (err !== null) {
        this.readErrors++;
        this.queueNotice();
        this.logOnce(`read:${err.code ?? 'error'}:${this.paths[this.table[this.at(pageId) + PT_FILE]]}`,
          `extstore: read failed (${err.code ?? err.message}); answered as a miss (logged once)`);
        cb(ReadResult.IoError, EMPTY, 0);
        return;
      }
      // The page may have been freed or reused while the read was on the pool.
      if (!this.check(pageId, version)) {
        cb(ReadResult.Stale, EMPTY, 0);
        return;
      }
      if (n < len) {
        this.shortReads++;
        this.queueNotice();
        cb(ReadResult.ShortRead, EMPTY, 0);
        return;
      }
      this.objectsRead++;
      this.bytesRead += len;
      this.queueNotice();
      cb(ReadResult.Ok, buf, 0);
    });
  }

  private answered(a: ReadAnswer): void {
    const cb = this.waiting.get(a.id);
    if (cb === undefined) return;
    this.waiting.delete(a.id);
    if (a.bytes === null) cb(a.result, EMPTY, 0);
    else cb(a.result, Buffer.from(a.bytes.buffer, a.bytes.byteOffset, a.bytes.byteLength), 0);
  }

  /** A descriptor of the file holding `pageId`, and the page's byte offset in it (-1: none). */
  private fileOf(pageId: number): number {
    const generation = this.table[PT_GENERATION];
    if (generation !== this.fdGeneration) {
      // A file was created again underneath: the old descriptors read the removed one. They
      // close once the reads in flight on them are done, so their numbers are not reused under
      // those reads.
      for (const old of this.fds) if (old >= 0) this.retired.push(old);
      this.fds = [];
      this.closeRetired();
      this.fdGeneration = generation;
    }
    const f = this.table[this.at(pageId) + PT_FILE];
    let fd = this.fds[f] ?? -1;
    if (fd === -1) {
      try {
        fd = fs.openSync(this.paths[f], fs.constants.O_RDONLY);
      } catch {
        fd = -2;
      }
      this.fds[f] = fd;
    }
    return fd;
  }

  /** Is [offset, offset + len) of the page on disk (not in a write buffer of thread 0's)? */
  private onDisk(pageId: number, version: number, offset: number, len: number): boolean {
    if (!this.check(pageId, version)) return false;
    return offset + len <= this.table[this.at(pageId) + PT_WRITTEN] && offset + len <= this.pageBytes;
  }

  readInto(pageId: number, version: number, offset: number, len: number, head: Buffer, headLen: number,
    body: Buffer, bodyAt: number): number {
    if (this.closed || this.readNowOff || len > READ_NOW_BYTES_MAX || headLen > len) return READ_NOT_NOW;
    if (!this.onDisk(pageId, version, offset, len)) return READ_NOT_NOW;
    const fd = this.fileOf(pageId);
    if (fd < 0) return READ_NOT_NOW;
    const pos = this.positionOf(pageId, offset);
    const n = loadNative().addon!.preadNow(fd, pos, head, 0, headLen, body, bodyAt, len - headLen);
    if (n === len) return READ_NOW_CACHED;
    if (READ_NOW_UNSUPPORTED.has(n)) this.readNowOff = true;
    return READ_NOT_NOW;
  }

  countReadNow(len: number, from: number): void {
    this.objectsRead++;
    this.bytesRead += len;
    if (from === READ_NOW_CACHED) this.readsCached++;
    this.queueNotice();
  }

  /**
   * For the callers that cannot wait (none of the protocols): a pread of the part on disk. A
   * record still in one of thread 0's write buffers cannot be had here: null (a miss).
   */
  readSync(pageId: number, version: number, offset: number, len: number): { buf: Buffer; start: number } | null {
    if (this.closed || !this.onDisk(pageId, version, offset, len)) return null;
    const fd = this.fileOf(pageId);
    if (fd < 0) return null;
    const buf = Buffer.allocUnsafe(len);
    try {
      if (fs.readSync(fd, buf, 0, len, this.positionOf(pageId, offset)) !== len) return null;
    } catch {
      return null;
    }
    this.countReadNow(len, 0);
    return { buf, start: 0 };
  }

  logOnce(key: string, message: string): void {
    if (this.logged.has(key)) return;
    this.logged.add(key);
    this.log(0, message);
  }

  /** Wake thread 0's writer (one message until it has woken: the PT_WAKE word). */
  writerWanted(): void {
    if (this.closed || Atomics.compareExchange(this.table, PT_WAKE, 0, 1) !== 0) return;
    const m: WakeRequest = { wake: true };
    this.port.postMessage(m);
  }

  private queueNotice(): void {
    if (this.noticeTimer !== null) return;
    this.noticeTimer = setTimeout(() => {
      this.noticeTimer = null;
      this.flush();
    }, NOTICE_INTERVAL_MS);
    this.noticeTimer.unref();
  }

  /** Send what thread 0 has not been told yet (every NOTICE_INTERVAL_MS; before a forwarded command). */
  flush(): void {
    if (this.deletes.length === 0 && this.objectsRead === 0 && this.readErrors === 0 && this.shortReads === 0) return;
    this.send({
      deletes: this.deletes, objectsRead: this.objectsRead, bytesRead: this.bytesRead, readsCached: this.readsCached,
      readErrors: this.readErrors, shortReads: this.shortReads,
    });
    this.deletes = [];
    this.objectsRead = this.bytesRead = this.readsCached = this.readErrors = this.shortReads = 0;
  }

  private closeRetired(): void {
    if (this.readsInFlight > 0) return;
    for (const fd of this.retired.splice(0)) closeDescriptor(fd);
  }

  /** Every descriptor, at once (the thread stops: what is in flight is answered as a miss). */
  private closeFiles(): void {
    for (const fd of [...this.retired.splice(0), ...this.fds]) closeDescriptor(fd);
    this.fds = [];
  }

  /** The thread stops: reads still waiting are misses. */
  close(): void {
    if (this.closed) return;
    if (this.noticeTimer !== null) clearTimeout(this.noticeTimer);
    this.noticeTimer = null;
    this.flush();
    this.closed = true;
    this.closeFiles();
    for (const cb of this.waiting.values()) cb(ReadResult.Stale, EMPTY, 0);
    this.waiting.clear();
    this.port.close();
  }
}
