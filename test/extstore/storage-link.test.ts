/**
 * LinkedRecords (src/engine/storage-link.ts): how a serving thread other than the first reads
 * thread 0's extstore pages. A record on disk is read from the thread's own descriptors (the
 * page table says where); one still in a write buffer, or past the thread's bounds, is asked
 * of thread 0 over the port; a page version that no longer matches is a miss; faults are
 * counted in the notices thread 0 adds to its stats. Thread 0 is played by the test.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/engine';
import { LinkedRecords, type StorageNotice } from '../../src/engine/storage-link';
import { crc32cImplementation, useNativeCrc32c } from '../../src/extstore/crc32c';
import { newStatsTable, ServerStats } from '../../src/metrics/stats';
import { loadNative } from '../../src/platform/native';
import { defaultSettings, MIB, type Settings } from '../../src/settings';
import {
  PT_FILE, PT_GENERATION, PT_HEADER_WORDS, PT_SLOT, PT_STRIDE, PT_VERSION, PT_WRITTEN, ReadResult,
} from '../../src/extstore/extstore';

const PAGE = 64 * 1024;
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

interface Setup {
  link: LinkedRecords;
  table: Uint32Array;
  file: string;
  /** Reads thread 0 was asked for. */
  asked: { pageId: number; version: number; offset: number; len: number }[];
  notices: StorageNotice[];
}

/** Page 0 on disk (version 7), page 1 still in a write buffer (version 9), both in one file. */
function setup(readsInFlightMax = 8): Setup {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-link-'));
  const file = path.join(dir, 'ext');
  fs.writeFileSync(file, Buffer.alloc(2 * PAGE));
  const table = new Uint32Array(new SharedArrayBuffer((PT_HEADER_WORDS + 2 * PT_STRIDE) * 4));
  const page = (id: number, version: number, written: number): void => {
    const at = PT_HEADER_WORDS + id * PT_STRIDE;
    table[at + PT_VERSION] = version;
    table[at + PT_WRITTEN] = written;
    table[at + PT_FILE] = 0;
    table[at + PT_SLOT] = id;
  };
  page(0, 7, PAGE);
  page(1, 9, 0);
  const { port1, port2 } = new MessageChannel();
  const asked: Setup['asked'] = [];
  // Thread 0: answers every read from "its write buffer" with bytes 0xAB.
  port1.on('message', (m: { id: number; pageId: number; version: number; offset: number; len: number }) => {
    asked.push({ pageId: m.pageId, version: m.version, offset: m.offset, len: m.len });
    const bytes = new Uint8Array(m.len).fill(0xab);
    (port1 as MessagePort).postMessage({ id: m.id, result: ReadResult.Ok, bytes }, [bytes.buffer]);
  });
  const notices: StorageNotice[] = [];
  const link = new LinkedRecords({ table: table.buffer as SharedArrayBuffer, paths: [file], pageBytes: PAGE, port: port2,
    readsInFlightMax, readBytesMax: 1 << 20 }, (n) => notices.push(n), () => undefined);
  port1.ref();
  cleanups.push(() => {
    link.close();
    port1.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { link, table, file, asked, notices };
}

function read(link: LinkedRecords, pageId: number, version: number, offset: number, len: number):
  Promise<{ result: ReadResult; data: Buffer }> {
  return new Promise((resolve) => link.read(pageId, version, offset, len, (result, buf, start) =>
    resolve({ result, data: Buffer.from(buf.subarray(start, start + (result === ReadResult.Ok ? len : 0))) })));
}

describe('LinkedRecords: reads of thread 0\'s pages from another serving thread', () => {
  it('reads a record on disk from its own descriptor, and one in a write buffer through thread 0', async () => {
    const s = setup();
    const record = Buffer.from('a record of forty bytes, more or less...');
    const fd = fs.openSync(s.file, 'r+');
    fs.writeSync(fd, record, 0, record.length, 100);
    fs.closeSync(fd);
    const direct = await read(s.link, 0, 7, 100, record.length);
    expect(direct.result).toBe(ReadResult.Ok);
    expect(direct.data.equals(record)).toBe(true);
    expect(s.asked).toEqual([]);
    const buffered = await read(s.link, 1, 9, 0, 32);
    expect(buffered.result).toBe(ReadResult.Ok);
    expect(buffered.data.equals(Buffer.alloc(32, 0xab))).toBe(true);
    expect(s.asked).toEqual([{ pageId: 1, version: 9, offset: 0, len: 32 }]);
    // A pointer to an older version of the page: gone, and nobody is asked.
    expect((await read(s.link, 0, 6, 100, 10)).result).toBe(ReadResult.Stale);
    expect(s.link.check(0, 7)).toBe(true);
    expect(s.link.check(0, 6)).toBe(false);
    expect(s.link.check(5, 7)).toBe(false);
    s.link.flush();
    expect(s.notices.at(-1)).toMatchObject({ objectsRead: 1, bytesRead: record.length, readErrors: 0, shortReads: 0 });
  });

  it('counts a short read (a file truncated underneath) and sends deletions on to thread 0', async () => {
    const s = setup();
    fs.truncateSync(s.file, 120);
    expect((await read(s.link, 0, 7, 100, 64)).result).toBe(ReadResult.ShortRead);
    s.link.delete(0, 7, 1, 64);
    s.link.flush();
    expect(s.notices.at(-1)).toMatchObject({ deletes: [0, 7, 1, 64], shortReads: 1, objectsRead: 0 });
  });

  it('asks thread 0 for reads past its own bound of reads in flight', async () => {
    const s = setup(1);
    const [a, b] = await Promise.all([read(s.link, 0, 7, 0, 16), read(s.link, 0, 7, 16, 16)]);
    expect(a.data.equals(Buffer.alloc(16))).toBe(true);
    expect(b.data.equals(Buffer.alloc(16, 0xab))).toBe(true);
    expect(s.asked).toEqual([{ pageId: 0, version: 7, offset: 16, len: 16 }]);
  });

  it('reads the file created again once thread 0 says so (the generation word), not the removed one', async () => {
    const s = setup();
    const fd = fs.openSync(s.file, 'r+');
    fs.writeSync(fd, Buffer.alloc(16, 0x11), 0, 16, 0);
    fs.closeSync(fd);
    expect((await read(s.link, 0, 7, 0, 16)).data.equals(Buffer.alloc(16, 0x11))).toBe(true);
    // Thread 0 found the file removed and created it again; what it writes there now is new.
    fs.unlinkSync(s.file);
    const fresh = Buffer.alloc(2 * PAGE);
    fresh.fill(0x22, 0, 16);
    fs.writeFileSync(s.file, fresh);
    s.table[PT_GENERATION]++;
    expect((await read(s.link, 0, 7, 0, 16)).data.equals(Buffer.alloc(16, 0x22))).toBe(true);
  });

  it('answers reads still waiting as misses when the thread stops', async () => {
    const s = setup();
    const pending = read(s.link, 1, 9, 0, 8);
    s.link.close();
    expect((await pending).result).toBe(ReadResult.Stale);
  });
});

describe('a serving thread\'s Storage', () => {
  it.skipIf(loadNative().addon === null)('checks records with the addon\'s CRC-32C, as thread 0 does', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-link-crc-'));
    const settings: Settings = {
      ...defaultSettings(), memoryLimitBytes: 8 * MIB, extPageBytes: MIB, extWbufBytes: MIB,
      extPaths: [{ path: path.join(dir, 'ext'), sizeBytes: 8 * MIB, bucket: 0 }],
    };
    const rows = newStatsTable(2);
    const owner = new Engine(settings, new ServerStats(rows, 0));
    const ext = owner.storage!.ext;
    // A worker's isolate starts with the JavaScript CRC (the choice is per isolate).
    useNativeCrc32c(null);
    const { port1, port2 } = new MessageChannel();
    const link = new LinkedRecords({ table: ext.table.buffer as SharedArrayBuffer, paths: ext.files.map((f) => f.path),
      pageBytes: ext.pageBytes, port: port2, readsInFlightMax: 8, readBytesMax: MIB }, () => undefined, () => undefined);
    const serving = new Engine(settings, new ServerStats(rows, 1), undefined, owner.memoryList(), null, null, link);
    cleanups.push(() => {
      link.close();
      port1.close();
      serving.stop();
      owner.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    expect(serving.storage).not.toBeNull();
    expect(crc32cImplementation()).not.toBe('javascript');
  });
});
