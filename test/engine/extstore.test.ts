/**
 * The extstore cold tier at the engine level, no server: an Engine with -o ext_path (files
 * in a fresh temporary directory, 1 MiB pages, -m 8) is filled through the engine's storage
 * calls until values are pushed to disk as header items. A header item answers get (any
 * protocol) with onDisk set and the flags, CAS and exptime the value was stored with;
 * Engine.readDiskValue gives back the value byte for byte, at once from a write buffer or
 * later from disk. A fault (EIO, a bad checksum) is a counted miss and the header goes.
 * memcached's rules for headers: append refused, incr non-numeric, delete and overwrite fine.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../src/engine/engine';
import { StoreMode } from '../../src/engine/engine';
import { ItemView, Proto } from '../../src/engine/item-view';
import type { ExtstoreIo } from '../../src/extstore/extstore';
import { checkStore } from '../store/invariants';
import { T0, b, del, get, incr, linked, makeEngine, pick, set, store } from './helpers';

const MIB = 1024 * 1024;
const VALUE_BYTES = 2000;
const COUNT = 6000; // 12 MB of values against -m 8

let engine: Engine | null = null;
let dir = '';

afterEach(() => {
  engine?.stop();
  engine = null;
  if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
  dir = '';
});

function valueOf(i: number): Buffer {
  const v = Buffer.allocUnsafe(VALUE_BYTES);
  for (let j = 0; j < VALUE_BYTES; j++) v[j] = (i * 131 + j * 7 + (j >>> 8)) & 0xff;
  return v;
}

interface Filled {
  e: Engine;
  /** The CAS each key got when stored. */
  cas: number[];
}

/** An engine with extstore, COUNT values stored (k<i>, flags i, exptime T0 + 10000 + i). */
function filled(): Filled {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-engine-ext-'));
  const e = makeEngine({
    memoryLimitBytes: 8 * MIB,
    extPaths: [{ path: path.join(dir, 'extstore.0'), sizeBytes: 64 * MIB, bucket: 0 }],
    extPageBytes: MIB,
    extWbufBytes: MIB,
  });
  engine = e;
  const cas: number[] = [];
  for (let i = 0; i < COUNT; i++) {
    const r = set(e, `k${i}`, valueOf(i), { flags: i, exptime: T0 + 10_000 + i });
    if (r.result !== 'STORED') throw new Error(`k${i}: ${r.result}`);
    cas.push(r.cas);
  }
  return { e, cas };
}

function onDisk(e: Engine, key: string): boolean {
  const k = b(key);
  const ref = e.peek(k, 0, k.length);
  return ref !== 0 && e.items.isHdr(ref);
}

function diskKeys(e: Engine, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < COUNT && out.length < n; i++) if (onDisk(e, `k${i}`)) out.push(i);
  return out;
}

async function flushToDisk(e: Engine): Promise<void> {
  const ext = e.storage!.ext;
  ext.flushAll();
  for (let t = 0; ext.ioQueue !== 0; t++) {
    if (t > 500) throw new Error('write buffers never reached the disk');
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface DiskRead {
  view: Omit<ItemView, 'copyValue' | 'ttl'>;
  hit: boolean;
  value: Buffer | null;
  /**
   * Answered within the get: readDiskValueNow had it (a write buffer or the page cache), or
   * done ran before readDiskValue returned.
   */
  sync: boolean;
}

/**
 * get as a protocol does for a value on disk: in the sink, readDiskValueNow, else
 * readDiskValue and wait for done.
 */
function readThrough(e: Engine, key: string, proto = Proto.Text): Promise<DiskRead | null> {
  const k = b(key);
  return new Promise((resolve) => {
    let pending = false;
    const hit = e.get(new ItemView(proto), k, 0, k.length, {
      item: (v) => {
        const view = { ...v };
        if (!v.onDisk) {
          const value = Buffer.alloc(v.nbytes);
          v.copyValue(value, 0);
          resolve({ view, hit: true, value, sync: true });
          return;
        }
        const now = Buffer.alloc(v.nbytes + 3);
        if (e.readDiskValueNow(v, now, 3)) {
          resolve({ view, hit: true, value: now.subarray(3), sync: true });
          return;
        }
        pending = true;
        let returned = false;
        e.readDiskValue(v, (ok, buf, start) => {
          const value = ok ? Buffer.from(buf.subarray(start, start + view.nbytes)) : null;
          resolve({ view, hit: ok, value, sync: !returned });
        });
        returned = true;
      },
    });
    if (!hit && !pending) resolve(null);
  });
}

describe('values pushed to the cold tier', () => {
  it('become header items that keep flags, CAS and exptime; the value reads back byte for byte', async () => {
    const { e, cas } = filled();
    const st = pick(e, ['curr_items', 'evictions', 'extstore_objects_written', 'extstore_objects_used']);
    expect(st.curr_items).toBe(COUNT);
    expect(st.evictions).toBe(0);
    expect(st.extstore_objects_written).toBeGreaterThan(COUNT / 4);
    const keys = diskKeys(e, COUNT);
    expect(keys.length).toBe(st.extstore_objects_used);
    expect(onDisk(e, `k${COUNT - 1}`)).toBe(false);
    await flushToDisk(e);
    const before = pick(e, ['get_extstore', 'get_hits', 'miss_from_extstore']);
    const sample = [keys[0], keys[1], keys[Math.floor(keys.length / 2)], keys[keys.length - 1]];
    for (const i of sample) {
      const cached = pick(e, ['extstore_reads_cached']).extstore_reads_cached;
      const r = (await readThrough(e, `k${i}`))!;
      expect(r.view).toMatchObject({ onDisk: true, flags: i, cas: cas[i], exptime: T0 + 10_000 + i, nbytes: VALUE_BYTES });
      expect(r.hit).toBe(true);
      // At once when the page cache held the record (just written: it does, with the native
      // addon), else when the thread pool's read completes.
      expect(r.sync).toBe(pick(e, ['extstore_reads_cached']).extstore_reads_cached === cached + 1);
      expect(r.value!.equals(valueOf(i)), `k${i}`).toBe(true);
    }
    expect(pick(e, ['get_extstore', 'get_hits', 'miss_from_extstore']))
      .toEqual({ get_extstore: before.get_extstore + 4, get_hits: before.get_hits + 4, miss_from_extstore: 0 });
    checkStore(e);
  });

  it('a record still in a write buffer is read at once', async () => {
    const { e, cas } = filled();
    // The newest header's record is in the write buffer not yet full.
    let newest = -1;
    for (let i = COUNT - 1; i >= 0 && newest < 0; i--) if (onDisk(e, `k${i}`)) newest = i;
    expect(newest).toBeGreaterThan(0);
    const r = (await readThrough(e, `k${newest}`))!;
    expect(r).toMatchObject({ hit: true, sync: true });
    expect(r.view.cas).toBe(cas[newest]);
    expect(r.value!.equals(valueOf(newest))).toBe(true);
  });

  it('the binary and meta protocols read the same header through the same call', async () => {
    const { e, cas } = filled();
    await flushToDisk(e);
    const [i] = diskKeys(e, 1);
    for (const proto of [Proto.Binary, Proto.Meta]) {
      const r = (await readThrough(e, `k${i}`, proto))!;
      expect(r.view).toMatchObject({ onDisk: true, flags: i, cas: cas[i] });
      expect(r.value!.equals(valueOf(i))).toBe(true);
    }
  });

  it('follow memcached\'s rules: append refused, incr non-numeric, delete and overwrite work', async () => {
    const { e } = filled();
    const [a, c, d] = diskKeys(e, 3);
    expect(store(e, StoreMode.Append, `k${a}`, 'x').result).toBe('NOT_STORED');
    expect(store(e, StoreMode.Prepend, `k${a}`, 'x').result).toBe('NOT_STORED');
    expect(onDisk(e, `k${a}`)).toBe(true);
    expect(incr(e, `k${a}`, 1).result).toBe('NON_NUMERIC');
    const used = pick(e, ['extstore_objects_used']).extstore_objects_used;
    expect(del(e, `k${c}`)).toBe('DELETED');
    expect(linked(e, `k${c}`)).toBe(false);
    expect(set(e, `k${d}`, 'fresh').result).toBe('STORED');
    expect(onDisk(e, `k${d}`)).toBe(false);
    expect(get(e, `k${d}`)!.value.toString()).toBe('fresh');
    expect(pick(e, ['extstore_objects_used'])).toEqual({ extstore_objects_used: used - 2 });
    checkStore(e);
  });
});

describe('faults in the cold tier', () => {
  it('EIO on a read: a miss, counted; the header item is dropped', async () => {
    const { e } = filled();
    await flushToDisk(e);
    const ext = e.storage!.ext;
    const real = ext.io;
    const eio: ExtstoreIo = {
      ...real,
      readNow: undefined, // not in the page cache: the device is read, and fails
      read: (_fd, _buf, _off, _len, _pos, cb) => {
        setImmediate(() => cb(Object.assign(new Error('EIO: i/o error'), { code: 'EIO' }), 0));
      },
    };
    ext.io = eio;
    const keys = diskKeys(e, 3);
    for (const i of keys) expect(await readThrough(e, `k${i}`)).toMatchObject({ hit: false, value: null });
    ext.io = real;
    expect(pick(e, ['miss_from_extstore', 'extstore_read_errors', 'badcrc_from_extstore']))
      .toEqual({ miss_from_extstore: 3, extstore_read_errors: 3, badcrc_from_extstore: 0 });
    for (const i of keys) expect(linked(e, `k${i}`)).toBe(false);
    expect(await readThrough(e, `k${keys[0]}`)).toBeNull();
    // Other values on disk still read.
    const [j] = diskKeys(e, 1);
    expect((await readThrough(e, `k${j}`))!.value!.equals(valueOf(j))).toBe(true);
    checkStore(e);
  });

  it('a record that fails its checksum is a miss, counted as badcrc (read from the device or the page cache)', async () => {
    const { e } = filled();
    await flushToDisk(e);
    const ext = e.storage!.ext;
    const real = ext.io;
    ext.io = {
      ...real,
      readNow: undefined,
      read: (fd, buf, off, len, pos, cb) => real.read(fd, buf, off, len, pos, (err, n) => {
        if (err === null && n > 40) buf[off + n - 3] ^= 0xff;
        cb(err, n);
      }),
    };
    const [i, j] = diskKeys(e, 2);
    expect(await readThrough(e, `k${i}`)).toMatchObject({ hit: false, sync: false });
    expect(pick(e, ['miss_from_extstore', 'badcrc_from_extstore'])).toEqual({ miss_from_extstore: 1, badcrc_from_extstore: 1 });
    expect(linked(e, `k${i}`)).toBe(false);
    if (real.readNow !== undefined) {
      // The page cache holds the damaged bytes too: the read now fails its check, the device
      // read that follows fails it again, and the miss is counted once.
      ext.io = {
        ...ext.io,
        readNow: (fd, pos, head, headLen, body, bodyAt, bodyLen) => {
          const n = real.readNow!(fd, pos, head, headLen, body, bodyAt, bodyLen);
          if (n > 40) body[bodyAt + bodyLen - 3] ^= 0xff;
          return n;
        },
      };
      expect(await readThrough(e, `k${j}`)).toMatchObject({ hit: false, sync: false });
      expect(pick(e, ['miss_from_extstore', 'badcrc_from_extstore', 'get_extstore']))
        .toMatchObject({ miss_from_extstore: 2, badcrc_from_extstore: 2 });
      expect(linked(e, `k${j}`)).toBe(false);
    }
    ext.io = real;
    checkStore(e);
  });
});
