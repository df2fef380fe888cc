/**
 * -e <memory_file>: warm restart, tried as an operator would. A server fills its store, is
 * stopped with SIGUSR1, and a new process with the same -e must serve every item again with
 * the same value, flags and CAS, with the time it was down counted against TTLs. Unclean
 * stops and damaged files must give an empty store with a log line, never a wrong value.
 * Every server is a child process on loopback, stopped by PID.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { endsWith, RawClient } from '../helpers/client';
import { Prng } from '../helpers/prng';
import { parseStats } from '../helpers/replies';
import { sleep, startServer, type ServerProcess } from '../helpers/servers';
import { loadNative } from '../../src/platform/native';

const servers: ServerProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function memoryPath(): string {
  const dir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'mcts-restart-'));
  dirs.push(dir);
  return path.join(dir, 'memory');
}

async function start(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<ServerProcess> {
  const s = await startServer({ kind: 'ours', args: ['-v', ...args], env });
  servers.push(s);
  return s;
}

interface Stored {
  key: string;
  flags: number;
  value: Buffer;
  cas: string;
}

/** A value that says what it is: its key and length at the front, then a pattern from the seed. */
function valueFor(key: string, bytes: number, rng: Prng): Buffer {
  const v = Buffer.alloc(bytes);
  const head = Buffer.from(`${key}:${bytes}:`);
  head.copy(v, 0, 0, Math.min(head.length, bytes));
  for (let i = head.length; i < bytes; i++) v[i] = 97 + rng.int(0, 25);
  return v;
}

async function fill(port: number, count: number, rng: Prng): Promise<Stored[]> {
  const c = await RawClient.connect(port);
  const items: Stored[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const key = `k${i}`;
      // Mostly small, some of several pages' worth (chunked items).
      const bytes = i % 25 === 0 ? rng.int(200_000, 1_100_000) : rng.int(1, 3000);
      const flags = rng.int(0, 0x7fffffff);
      const value = valueFor(key, bytes, rng);
      await c.send(Buffer.concat([Buffer.from(`set ${key} ${flags} 0 ${bytes}\r\n`), value, Buffer.from('\r\n')]));
      expect((await c.readUntil(endsWith('\r\n'))).toString()).toBe('STORED\r\n');
      items.push({ key, flags, value, cas: '' });
    }
    for (const it of items) it.cas = (await gets(c, it.key))!.cas;
  } finally {
    c.close();
  }
  return items;
}

async function gets(c: RawClient, key: string): Promise<{ flags: number; value: Buffer; cas: string } | null> {
  const reply = await c.request(`gets ${key}\r\n`, endsWith('END\r\n'), 10_000);
  if (reply.toString('latin1') === 'END\r\n') return null;
  const eol = reply.indexOf('\r\n');
  const [, , flags, bytes, cas] = reply.subarray(0, eol).toString().split(' ');
  return { flags: Number(flags), value: reply.subarray(eol + 2, eol + 2 + Number(bytes)), cas };
}

async function expectAll(port: number, items: readonly Stored[]): Promise<void> {
  const c = await RawClient.connect(port);
  try {
    for (const it of items) {
      const got = await gets(c, it.key);
      expect(got, it.key).not.toBeNull();
      expect(got!.flags, it.key).toBe(it.flags);
      expect(got!.cas, it.key).toBe(it.cas);
      expect(got!.value.equals(it.value), `${it.key} value`).toBe(true);
    }
  } finally {
    c.close();
  }
}

async function command(port: number, line: string, until = 'END\r\n'): Promise<string> {
  const c = await RawClient.connect(port);
  try {
    return (await c.request(line, endsWith(until), 10_000)).toString('latin1');
  } finally {
    c.close();
  }
}

async function gracefulStop(s: ServerProcess): Promise<void> {
  expect(await s.signalAndWait('SIGUSR1')).toBe(0);
  expect(s.logTail()).toMatch(/\[restart\] saved the store/);
}

const native = loadNative().addon !== null;
const modes: Array<{ name: string; threads: number; env: NodeJS.ProcessEnv }> = [
  { name: '-t 1', threads: 1, env: process.env },
  { name: '-t 4', threads: 4, env: process.env },
  { name: '-t 2 without the native addon (copied, not mapped)', threads: 2, env: { ...process.env, MEMCACHED_TS_NATIVE: 'off' } },
];

describe('warm restart (-e)', () => {
  for (const mode of modes) {
    it(`serves every item again after SIGUSR1, same value, flags and CAS (${mode.name})`, async () => {
      const file = memoryPath();
      const args = ['-m', '128', '-I', '2m', '-t', String(mode.threads), '-e', file];
      const rng = new Prng(1400 + mode.threads);
      const a = await start(args, mode.env);
      expect(parseStats(await command(a.port, 'stats settings\r\n')).get('memory_file')).toBe(file);
      const items = await fill(a.port, 300, rng);
      // A TTL that runs out while the server is down, and one that does not.
      expect(await command(a.port, 'set short 1 1 2\r\nab\r\n', '\r\n')).toBe('STORED\r\n');
      expect(await command(a.port, 'set long 2 100 2\r\ncd\r\n', '\r\n')).toBe('STORED\r\n');
      expect(await command(a.port, 'set counter 0 0 2\r\n41\r\n', '\r\n')).toBe('STORED\r\n');
      const maxCas = Math.max(...items.map((it) => Number(it.cas)));
      await gracefulStop(a);
      expect(fs.existsSync(`${file}.meta`)).toBe(true);
      await sleep(2100);

      const b = await start(args, mode.env);
      expect(b.logTail()).toMatch(/\[restart\] restored \d+ items/);
      // The metadata is used once: a crash from here on must not restore this state again.
      expect(fs.existsSync(`${file}.meta`)).toBe(false);
      await expectAll(b.port, items);
      expect(await command(b.port, 'get short\r\n')).toBe('END\r\n');
      expect(await command(b.port, 'get long\r\n')).toBe('VALUE long 2 2\r\ncd\r\nEND\r\n');
      const ttl = /t(-?\d+)/.exec(await command(b.port, 'mg long t\r\n', '\r\n'));
      expect(Number(ttl![1])).toBeLessThanOrEqual(98);
      expect(await command(b.port, 'incr counter 1\r\n', '\r\n')).toBe('42\r\n');
      // New CAS values continue past the saved ones.
      expect(await command(b.port, 'set fresh 0 0 1\r\nx\r\n', '\r\n')).toBe('STORED\r\n');
      const fresh = await gets(await RawClient.connect(b.port), 'fresh');
      expect(Number(fresh!.cas)).toBeGreaterThan(maxCas);
      // And a second round trip keeps the new item too.
      await gracefulStop(b);
      await sleep(1100);
      const c = await start(args, mode.env);
      await expectAll(c.port, items);
      expect(await command(c.port, 'get fresh\r\n')).toBe('VALUE fresh 0 1\r\nx\r\nEND\r\n');
    }, 90_000);
  }

  it('starts empty after an unclean stop (SIGKILL), with a log line', async () => {
    const file = memoryPath();
    const args = ['-m', '64', '-e', file];
    const a = await start(args);
    expect(await command(a.port, 'set x 0 0 1\r\n1\r\n', '\r\n')).toBe('STORED\r\n');
    await gracefulStop(a);
    const b = await start(args);
    expect(await command(b.port, 'get x\r\n')).toBe('VALUE x 0 1\r\n1\r\nEND\r\n');
    expect(await b.signalAndWait('SIGKILL')).toBe('SIGKILL');
    const c = await start(args);
    expect(c.logTail()).toMatch(/no metadata save file, starting with a clean cache/);
    expect(await command(c.port, 'get x\r\n')).toBe('END\r\n');
  }, 60_000);

  const damages: Array<{ name: string; damage: (file: string) => void; args?: string[]; log: RegExp }> = [
    {
      name: 'a damaged metadata file',
      damage: (file) => {
        const meta = fs.readFileSync(`${file}.meta`);
        meta[20] ^= 0x01;
        fs.writeFileSync(`${file}.meta`, meta);
      },
      log: /metadata file is damaged, starting with a clean cache/,
    },
    {
      name: 'a truncated metadata file',
      damage: (file) => fs.truncateSync(`${file}.meta`, 100),
      log: /metadata file is damaged, starting with a clean cache/,
    },
    {
      name: 'a different -m',
      damage: () => undefined,
      args: ['-m', '96'],
      log: /restart incompatible due to setting for \[maxbytes\] \[old value: 67108864\]/,
    },
    {
      name: 'a truncated memory file',
      damage: (file) => fs.truncateSync(file, 4096),
      log: /the memory file holds 4096 bytes/,
    },
    {
      name: 'a corrupted byte in the item memory',
      damage: (file) => {
        const meta = JSON.parse(fs.readFileSync(`${file}.meta`, 'latin1').split('\n')[0]) as { regions: Array<{ offset: number; size: number; used: number }> };
        const arena = meta.regions.reduce((a, r) => (r.size > a.size ? r : a));
        // Page 1 of the arena: where the first items are (page 0 is never used).
        const at = arena.offset + (1 << 20) + 64;
        const fd = fs.openSync(file, 'r+');
        const b = Buffer.alloc(1);
        fs.readSync(fd, b, 0, 1, at);
        b[0] ^= 0x20;
        fs.writeSync(fd, b, 0, 1, at);
        fs.closeSync(fd);
      },
      log: /does not match its checksum; starting with a clean cache/,
    },
  ];
  for (const d of damages) {
    it(`starts empty, never wrong, after ${d.name}`, async () => {
      const file = memoryPath();
      const a = await start(['-m', '64', '-e', file]);
      expect(await command(a.port, 'set x 0 0 5\r\nhello\r\n', '\r\n')).toBe('STORED\r\n');
      await gracefulStop(a);
      d.damage(file);
      const b = await start([...(d.args ?? ['-m', '64']), '-e', file]);
      expect(b.logTail()).toMatch(d.log);
      expect(await command(b.port, 'get x\r\n')).toBe('END\r\n');
      // The clean store works, and saves again.
      expect(await command(b.port, 'set y 0 0 1\r\n2\r\n', '\r\n')).toBe('STORED\r\n');
      await gracefulStop(b);
      const c = await start([...(d.args ?? ['-m', '64']), '-e', file]);
      expect(await command(c.port, 'get y\r\n')).toBe('VALUE y 0 1\r\n2\r\nEND\r\n');
    }, 60_000);
  }

  it('warns at startup when the memory file\'s filesystem has less room than -m', async () => {
    const file = memoryPath();
    const free = fs.statfsSync(path.dirname(file));
    const moreThanFree = Math.ceil((free.bavail * free.bsize) / 1048576) + 1024;
    const a = await start(['-m', String(moreThanFree), '-e', file]);
    expect(a.logTail()).toMatch(/its filesystem has \d+ MiB free, less than -m/);
    expect(await command(a.port, 'set x 0 0 1\r\n1\r\n', '\r\n')).toBe('STORED\r\n');
  }, 30_000);

  it('refuses to start on an empty metadata file, as memcached', async () => {
    const file = memoryPath();
    fs.writeFileSync(`${file}.meta`, '');
    await expect(start(['-e', file])).rejects.toThrow(/corrupt metadata file/);
  }, 30_000);

  it.skipIf(!native)('refuses a memory file another server is using', async () => {
    const file = memoryPath();
    await start(['-e', file]);
    await expect(start(['-e', file])).rejects.toThrow(/another process is using this memory file/);
  }, 30_000);

  /** Set `count` 4000-byte self-describing values, pipelined, and check every reply. */
  async function fillMany(port: number, count: number): Promise<void> {
    const c = await RawClient.connect(port);
    try {
      for (let i = 0; i < count; i += 50) {
        const parts: Buffer[] = [];
        const n = Math.min(50, count - i);
        for (let k = i; k < i + n; k++) parts.push(Buffer.from(`set e${k} ${k} 0 4000\r\n`), bigValue(k), Buffer.from('\r\n'));
        const reply = await c.request(Buffer.concat(parts), (b) => b.toString('latin1').split('\r\n').length - 1 >= n, 10_000);
        expect(reply.toString('latin1')).toBe('STORED\r\n'.repeat(n));
      }
    } finally {
      c.close();
    }
  }

  function bigValue(k: number): Buffer {
    const b = Buffer.alloc(4000, 97 + (k % 26));
    b.write(`e${k}:`);
    return b;
  }

  /** Every value is right or missing, never wrong: the counts of each. */
  async function checkMany(port: number, count: number): Promise<{ hits: number; misses: number }> {
    const c = await RawClient.connect(port);
    let hits = 0;
    let misses = 0;
    try {
      for (let k = 0; k < count; k++) {
        const got = await gets(c, `e${k}`);
        if (got === null) {
          misses++;
          continue;
        }
        expect(got.flags).toBe(k);
        expect(got.value.equals(bigValue(k)), `e${k}`).toBe(true);
        hits++;
      }
    } finally {
      c.close();
    }
    return { hits, misses };
  }

  it.each(['1', '4'])('keeps the flash tier too (beyond memcached): values on disk are served again (-t %s)', async (threads) => {
    const file = memoryPath();
    const ext = path.join(path.dirname(file), 'ext');
    const args = ['-t', threads, '-m', '8', '-e', file, '-o', `ext_path=${ext}:64m`];
    const a = await start(args);
    await fillMany(a.port, 4000);
    const before = await checkMany(a.port, 4000);
    // -t 1: every value of the burst reaches the disk; with more threads a burst can outrun the
    // writer and evict some, as memcached's (see test/extstore/process.test.ts).
    if (threads === '1') expect(before.misses).toBe(0);
    else expect(before.hits).toBeGreaterThan(1000);
    await gracefulStop(a);
    const b = await start(args);
    expect(b.logTail()).toMatch(new RegExp(`\\[restart\\] restored ${before.hits} items`));
    expect(await checkMany(b.port, 4000)).toEqual(before);
    const stats = parseStats(await command(b.port, 'stats\r\n'));
    // 16 MB of values in 8 MB of memory, which holds under 2,048 of them: the rest came from
    // the disk (at -t 4 fewer values survived the burst, so fewer are on disk).
    expect(Number(stats.get('get_extstore'))).toBeGreaterThan(threads === '1' ? 2000 : before.hits - 2048);
  }, 60_000);

  it('serves a damaged flash record as a miss after a restart, never as a wrong value', async () => {
    const file = memoryPath();
    const ext = path.join(path.dirname(file), 'ext');
    const args = ['-m', '8', '-e', file, '-o', `ext_path=${ext}:64m`];
    const a = await start(args);
    await fillMany(a.port, 3000);
    await gracefulStop(a);
    // Scribble over the middle of the first disk page.
    const fd = fs.openSync(ext, 'r+');
    fs.writeSync(fd, Buffer.alloc(64 * 1024, 0x5a), 0, 64 * 1024, 256 * 1024);
    fs.closeSync(fd);
    const b = await start(args);
    const after = await checkMany(b.port, 3000);
    expect(after.misses).toBeGreaterThan(0);
    expect(after.hits).toBeGreaterThan(0);
  }, 60_000);

  it('starts clean when the flash tier was configured differently', async () => {
    const file = memoryPath();
    const ext = path.join(path.dirname(file), 'ext');
    const a = await start(['-m', '8', '-e', file, '-o', `ext_path=${ext}:64m`]);
    await fillMany(a.port, 500);
    await gracefulStop(a);
    const b = await start(['-m', '8', '-e', file, '-o', `ext_path=${ext}:128m`]);
    expect(b.logTail()).toMatch(/restart incompatible due to setting for \[extstore\]/);
    expect(await checkMany(b.port, 500)).toEqual({ hits: 0, misses: 500 });
  }, 60_000);
});
