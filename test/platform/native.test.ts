/**
 * The optional native addon (native/memcached_ts_native.c) and its loader: TCP_FASTOPEN on a
 * listening socket found through listeningFd(), SO_REUSEPORT sockets that share a port,
 * scheduling policy per thread, errno-carrying errors, and the fallbacks without the addon.
 *
 * The addon is built by `npm ci` (the install script) where a C compiler exists. Without it
 * the addon tests are skipped with that reason, and the fallback tests still run.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { listeningFd } from '../../src/net/node-internals';
import { loadNative } from '../../src/platform/native';
import { readProcScheduling, threadScheduling } from '../../src/platform/sched';
import { enableTcpFastOpen, reusePortSocket, tcpFastOpenQueue } from '../../src/platform/sockets';

const REPO = path.resolve(__dirname, '..', '..');
const load = loadNative();
const addon = load.addon;
const whyNoAddon = load.addon === null ? load.reason : '';
if (addon === null) console.warn(`native addon tests skipped: the addon is ${whyNoAddon}`);
const withAddon = addon === null ? describe.skip : describe;

const servers: net.Server[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

function listen(server: net.Server, options: net.ListenOptions, backlog?: number): Promise<void> {
  servers.push(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    if (backlog === undefined) server.listen(options, () => resolve());
    else server.listen(options, backlog, () => resolve());
  });
}

describe('listeningFd', () => {
  it('finds the descriptor of a listening server, and nothing for one that is not listening', async () => {
    const server = net.createServer();
    expect(listeningFd(server)).toBeNull();
    await listen(server, { host: '127.0.0.1', port: 0 });
    const fd = listeningFd(server);
    expect(fd).not.toBeNull();
    expect(fd).toBeGreaterThan(2);
  });
});

withAddon('native addon', () => {
  it('sets TCP_FASTOPEN on a listening socket and reads it back', async () => {
    const server = net.createServer();
    await listen(server, { host: '127.0.0.1', port: 0 });
    const fd = listeningFd(server) as number;
    expect(tcpFastOpenQueue(fd)).toBe(0);
    expect(enableTcpFastOpen(fd, 16)).toBe(16);
    expect(tcpFastOpenQueue(fd)).toBe(16);
  });

  it('reports failures with the errno name, number and system call', () => {
    let error: (Error & { code?: string; errno?: number; syscall?: string }) | null = null;
    try {
      addon!.setTcpFastOpen(987654, 1);
    } catch (e) {
      error = e as typeof error;
    }
    expect(error?.code).toBe('EBADF');
    expect(error?.errno).toBe(9);
    expect(error?.syscall).toBe('setsockopt(TCP_FASTOPEN)');
    expect(() => addon!.getScheduler(2 ** 30)).toThrow(/sched_getscheduler: No such process/);
    expect(() => addon!.setTcpFastOpen(-1 as number, 1)).toThrow(TypeError);
  });

  it('creates SO_REUSEPORT sockets that share one port between two servers', async () => {
    const first = reusePortSocket('127.0.0.1', 0);
    const a = net.createServer();
    await listen(a, { fd: first }, 128);
    const port = (a.address() as net.AddressInfo).port;
    const b = net.createServer();
    await listen(b, { fd: reusePortSocket('127.0.0.1', port) }, 128);
    expect((b.address() as net.AddressInfo).port).toBe(port);
    // A plain socket cannot take the port while they hold it.
    await expect(listen(net.createServer(), { host: '127.0.0.1', port, exclusive: true })).rejects.toThrow(/EADDRINUSE/);
    servers.pop();

    const accepted = [0, 0];
    a.on('connection', (s) => { accepted[0]++; s.destroy(); });
    b.on('connection', (s) => { accepted[1]++; s.destroy(); });
    const connections = 64;
    await Promise.all(Array.from({ length: connections }, () => new Promise<void>((resolve) => {
      const c = net.connect(port, '127.0.0.1');
      sockets.push(c);
      c.on('close', () => resolve());
      c.on('error', () => resolve());
    })));
    // The kernel hashes each connection to one socket: both get some of 64 (a miss has odds 2^-63).
    expect(accepted[0] + accepted[1]).toBe(connections);
    expect(accepted[0]).toBeGreaterThan(0);
    expect(accepted[1]).toBeGreaterThan(0);
  });

  it('makes IPv6 sockets IPv6-only and refuses names that are not IP literals', async () => {
    const fd = reusePortSocket('::1', 0);
    const server = net.createServer();
    await listen(server, { fd }, 16);
    expect((server.address() as net.AddressInfo).family).toBe('IPv6');
    expect(() => reusePortSocket('localhost', 0)).toThrow(TypeError);
  });

  it('yieldAfterPoll keeps no event loop alive, and closes with the thread that made it', () => {
    // A worker thread installs it and ends; then the main thread does and ends. A handle that
    // kept its loop alive would time out here; one left open at a worker's teardown would abort.
    const r = spawnSync(process.execPath, ['-e', `
      const { Worker } = require('node:worker_threads');
      const addonPath = ${JSON.stringify(load.addon === null ? '' : load.path)};
      const w = new Worker('const a = require(' + JSON.stringify(addonPath) + '); a.yieldAfterPoll(); let n = 0; const t = () => { if (++n < 20) setTimeout(t, 1); }; t();', { eval: true });
      w.on('exit', (code) => {
        const a = require(addonPath);
        a.yieldAfterPoll();
        let n = 0;
        const t = () => { if (++n < 20) setImmediate(t); else console.log('done', code); };
        t();
      });
    `], { encoding: 'utf8', timeout: 20_000 });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('done 0');
  });

  it('setThreadName names the calling thread only (15 bytes kept), and refuses an empty name', () => {
    const r = spawnSync(process.execPath, ['-e', `
      const { Worker } = require('node:worker_threads');
      const fs = require('node:fs');
      const addonPath = ${JSON.stringify(load.addon === null ? '' : load.path)};
      const before = fs.readFileSync('/proc/thread-self/comm', 'utf8').trim();
      const w = new Worker(
        'const a = require(' + JSON.stringify(addonPath) + '); const fs = require("node:fs");' +
        'a.setThreadName("mc-worker"); const one = fs.readFileSync("/proc/thread-self/comm", "utf8").trim();' +
        'a.setThreadName("a-name-longer-than-fifteen"); const two = fs.readFileSync("/proc/thread-self/comm", "utf8").trim();' +
        'let empty = "accepted"; try { a.setThreadName(""); } catch (e) { empty = e.name; }' +
        'require("node:worker_threads").parentPort.postMessage([one, two, empty]);', { eval: true });
      w.on('message', (m) => {
        console.log(JSON.stringify([before, ...m, fs.readFileSync('/proc/thread-self/comm', 'utf8').trim()]));
      });
    `], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status, r.stderr).toBe(0);
    const [before, one, two, empty, after] = JSON.parse(r.stdout) as string[];
    expect(one).toBe('mc-worker');
    expect(two).toBe('a-name-longer-t');
    expect(empty).toBe('TypeError');
    // The main thread's name is its own.
    expect(after).toBe(before);
  });

  it('reads each thread scheduling policy as /proc does', () => {
    const fromAddon = threadScheduling(process.pid, 'addon');
    expect(fromAddon).toEqual(readProcScheduling(process.pid));
    expect(addon!.getScheduler(0)).toEqual([0, 0]);
  });

  it('-k locks each new slab page (VmLck grows) and the process survives garbage collection', () => {
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', `
      const fs = require('fs');
      const { lockMemory } = require(${JSON.stringify(path.join(REPO, 'dist/platform/startup.js'))});
      const { defaultSettings } = require(${JSON.stringify(path.join(REPO, 'dist/settings.js'))});
      const locked = () => Number(/VmLck:\\s+(\\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]);
      const slabs = { onNewPage: null };
      const warnings = [];
      const lines = lockMemory({ ...defaultSettings(), lockMemory: true }, slabs, (level, text) => warnings.push(text));
      const before = locked();
      const pages = [];
      for (let i = 0; i < 4; i++) { const p = Buffer.from(new SharedArrayBuffer(1 << 20)); slabs.onNewPage(p); pages.push(p); }
      const after = locked();
      let junk = [];
      for (let i = 0; i < 300; i++) { junk.push(new Array(100000).fill(i)); if (junk.length > 30) junk.shift(); }
      junk = null;
      for (let i = 0; i < 3; i++) gc();
      pages[2].fill(1);
      console.log(JSON.stringify({ lines, warnings, before, after }));
    `], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { lines: { text: string }[]; warnings: string[]; before: number; after: number };
    expect(out.lines.map((l) => l.text)).toEqual(['-k: item memory (slab pages) is locked in RAM as it is allocated']);
    if (process.getuid?.() === 0) {
      expect(out.warnings).toEqual([]);
      expect(out.after - out.before).toBeGreaterThanOrEqual(4 * 1024);
    } else {
      // RLIMIT_MEMLOCK (often 8 MiB) may stop it: then one warning, in memcached's words.
      expect(out.warnings.length).toBeLessThanOrEqual(1);
    }
  });

  const thp = fs.existsSync('/sys/kernel/mm/transparent_hugepage/enabled');
  (thp ? it : it.skip)('advises huge pages over the whole 2 MiB pages of the store buffers (VmFlags hg in smaps)', () => {
    const r = spawnSync(process.execPath, ['-e', `
      const fs = require('fs');
      const { adviseHugePages } = require(${JSON.stringify(path.join(REPO, 'dist/platform/startup.js'))});
      // Bytes of mappings the kernel marks MADV_HUGEPAGE ("hg" in VmFlags).
      const advisedKiB = () => {
        let total = 0, size = 0;
        for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\\n')) {
          const m = /^Size:\\s+(\\d+) kB/.exec(line);
          if (m) size = Number(m[1]);
          if (line.startsWith('VmFlags:') && line.split(' ').includes('hg')) total += size;
        }
        return total;
      };
      const before = advisedKiB();
      const small = adviseHugePages([new SharedArrayBuffer(1 << 20)]);
      const big = new SharedArrayBuffer(16 << 20);
      const line = adviseHugePages([big]);
      const after = advisedKiB();
      new Uint8Array(big).fill(7);
      const ok = new Uint8Array(big).every((b) => b === 7);
      console.log(JSON.stringify({ before, after, small: small.text, line: line.text, ok }));
    `], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { before: number; after: number; small: string; line: string; ok: boolean };
    // A 1 MiB buffer holds no whole 2 MiB page; 16 MiB holds at least 14 MiB of them.
    expect(out.small).toMatch(/advised over 0 MiB/);
    const mib = Number(/advised over (\d+) MiB/.exec(out.line)?.[1]);
    expect(mib).toBeGreaterThanOrEqual(14);
    expect(mib).toBeLessThanOrEqual(16);
    expect(out.after - out.before).toBeGreaterThanOrEqual(mib * 1024);
    expect(out.ok).toBe(true);
  });

  it('mlockall stays out of the server: V8 aborts when it gives locked pages back (root, Node 20)', () => {
    // Why -k locks slab pages instead: madvise(MADV_DONTNEED) on locked memory fails with
    // EINVAL, and V8 treats that as fatal. If this ever passes without a crash, mlockall may
    // be reconsidered.
    if (process.getuid?.() !== 0) return;
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', `
      require(${JSON.stringify(load.addon === null ? '' : load.path)}).lockAllMemory();
      let junk = [];
      for (let i = 0; i < 400; i++) { junk.push(new Array(200000).fill(i)); if (junk.length > 50) junk.shift(); }
      junk = null;
      for (let i = 0; i < 5; i++) gc();
    `], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status === 0 && r.signal === null, 'node survived mlockall and page releases').toBe(false);
  });
});

describe('without the addon', () => {
  it('MEMCACHED_TS_NATIVE=off makes the loader report it as disabled', () => {
    const r = spawnSync(process.execPath, ['-e', `
      const { loadNative } = require(${JSON.stringify(path.join(REPO, 'dist/platform/native.js'))});
      const { checkPlatform } = require(${JSON.stringify(path.join(REPO, 'dist/platform/startup.js'))});
      const { defaultSettings } = require(${JSON.stringify(path.join(REPO, 'dist/settings.js'))});
      const s = { ...defaultSettings(), lockMemory: true, tcpFastOpenQueue: 16 };
      console.log(JSON.stringify([loadNative(), checkPlatform(s), checkPlatform(defaultSettings())]));
    `], { encoding: 'utf8', env: { ...process.env, MEMCACHED_TS_NATIVE: 'off' }, timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    const [loaded, refusal, none] = JSON.parse(r.stdout) as [{ addon: null; reason: string }, string, null];
    expect(loaded).toEqual({ addon: null, reason: 'disabled by MEMCACHED_TS_NATIVE=off' });
    expect(refusal).toBe('-k (locked memory) and -o tcp_fastopen=16 need the native addon, which is disabled by MEMCACHED_TS_NATIVE=off');
    expect(none).toBeNull();
  });

  it('/proc gives the scheduling policy of every thread', () => {
    const main = readProcScheduling(process.pid);
    expect(main.policy).toMatch(/^SCHED_/);
    expect(main.priority).toBeGreaterThanOrEqual(0);
  });
});
