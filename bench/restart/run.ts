/**
 * Warm restart, measured as an operator would see a deploy (`npm run bench:restart`):
 *
 *   1. start memcached-ts with -e <file on /dev/shm> (and, in the flash run, an ext_path
 *      holding several times -m), fill it, and read it with memtier_benchmark (random keys
 *      over the whole set): the hit ratio before;
 *   2. SIGUSR1: how long until the process has saved and exited;
 *   3. start a new process with the same flags: how long until it answers, how many items
 *      it restored;
 *   4. the same memtier read: the hit ratio after, which should equal the one before.
 *
 * Options: --memory MiB (default 1024), --seconds per read run (10), --flash-ratio (4: the
 * flash run's data set over -m; 0 skips that run), --threads (-t, default 4).
 * Writes results.md and results.json under bench/results/tmp/restart-<time>/.
 * Every server is on loopback and stopped by PID; every child is bounded in time.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import * as zlib from 'node:zlib';
import { fill, stats, version } from '../lib/client';
import { runMemtier } from '../lib/memtier';
import { installSignalCleanup, runDirectory, spawnLogged, stopAll, stopProcess, tail, waitExit, which } from '../lib/procs';
import { freePort } from '../lib/servers';

// Compiled to bench/dist/restart/restart/.
const REPO = path.resolve(__dirname, '..', '..', '..', '..');
const BIN = path.join(REPO, 'bin', 'memcached-ts.js');
const KEY_PREFIX = 'memtier-';
const STOP_TIMEOUT_MS = 120_000;
const START_TIMEOUT_MS = 120_000;

interface Options {
  memoryMiB: number;
  seconds: number;
  flashRatio: number;
  threads: number;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { memoryMiB: 1024, seconds: 10, flashRatio: 4, threads: 4 };
  for (let i = 0; i < argv.length; i++) {
    const value = Number(argv[i + 1]);
    switch (argv[i]) {
      case '--memory': o.memoryMiB = value; i++; break;
      case '--seconds': o.seconds = value; i++; break;
      case '--flash-ratio': o.flashRatio = value; i++; break;
      case '--threads': o.threads = value; i++; break;
      default: throw new Error(`unknown option ${argv[i]} (--memory MiB, --seconds N, --flash-ratio N, --threads N)`);
    }
    if (!Number.isFinite(value) || value < 0) throw new Error(`${argv[i - 1]} needs a number`);
  }
  return o;
}

interface Variant {
  name: string;
  valueBytes: number;
  keys: number;
  extPath: string | null;
  extBytes: number;
}

interface Outcome {
  variant: string;
  keys: number;
  valueBytes: number;
  coldStartMs: number;
  fillSeconds: number;
  itemsBefore: number;
  hitRatioBefore: number;
  getsPerSecBefore: number;
  stopMs: number;
  saveLine: string;
  startMs: number;
  restoreLine: string;
  itemsAfter: number;
  hitRatioAfter: number;
  getsPerSecAfter: number;
  diskGetsAfter: number;
  /** Keys `mg` found before and after, and whether every key's CAS, flags and size matched. */
  keysFoundBefore: number;
  keysFoundAfter: number;
  sameCasFlagsSize: boolean;
}

async function startOurs(args: string[], logFile: string): Promise<{ child: ChildProcess; port: number; ms: number }> {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawnLogged(process.execPath, [BIN, '-p', String(port), '-U', '0', '-l', '127.0.0.1', ...args], logFile);
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`memcached-ts exited at startup:\n${tail(logFile)}`);
    try {
      await version(port, 500);
      return { child, port, ms: performance.now() - t0 };
    } catch {
      if (Date.now() > deadline) throw new Error(`memcached-ts did not answer within ${START_TIMEOUT_MS} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/**
 * Every key's metadata as `mg <key> c f s` answers it (CAS, flags, size, or EN for a miss),
 * folded into one CRC-32, with the count of hits: equal before and after a restart means
 * every item came back with the same CAS, flags and size.
 */
async function metadataDigest(port: number, keys: number): Promise<{ crc: number; hits: number }> {
  const sock = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  let crc = 0;
  let hits = 0;
  let pending = '';
  const BATCH = 1000;
  try {
    for (let first = 1; first <= keys; first += BATCH) {
      const last = Math.min(keys, first + BATCH - 1);
      let req = '';
      for (let k = first; k <= last; k++) req += `mg ${KEY_PREFIX}${k} c f s\r\n`;
      sock.write(req);
      let lines: string[] = [];
      while (lines.length < last - first + 1) {
        const chunk: Buffer = await new Promise((resolve, reject) => {
          sock.once('data', resolve);
          sock.once('error', reject);
        });
        pending += chunk.toString('latin1');
        const parts = pending.split('\r\n');
        pending = parts.pop() ?? '';
        lines = lines.concat(parts);
      }
      for (const line of lines) {
        if (line.startsWith('HD')) hits++;
        crc = zlib.crc32(line + '\n', crc);
      }
    }
  } finally {
    sock.destroy();
  }
  return { crc, hits };
}

async function readRun(memtier: string, port: number, keys: number, o: Options, dir: string, tag: string): Promise<{ hitRatio: number; getsPerSec: number }> {
  const r = await runMemtier({
    path: memtier,
    port,
    threads: 2,
    clients: 10,
    args: ['--ratio=0:1', `--key-prefix=${KEY_PREFIX}`, '--key-minimum=1', `--key-maximum=${keys}`, '--key-pattern=R:R',
      `--test-time=${o.seconds}`, '--distinct-client-seed'],
    jsonFile: path.join(dir, `${tag}.json`),
    logFile: path.join(dir, `${tag}.log`),
    timeoutMs: (o.seconds + 60) * 1000,
    stallMs: 20_000,
    tasksetPath: null,
    cpus: null,
  });
  return { hitRatio: r.hitRatio ?? 0, getsPerSec: r.opsPerSec };
}

async function runVariant(v: Variant, o: Options, memtier: string, dir: string): Promise<Outcome> {
  const shm = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'mcts-bench-restart-'));
  const memoryFile = path.join(shm, 'memory');
  const args = ['-m', String(o.memoryMiB), '-t', String(o.threads), '-e', memoryFile, '-v'];
  if (v.extPath !== null) args.push('-o', `ext_path=${v.extPath}:${Math.ceil(v.extBytes / 1048576)}m`);
  if (process.getuid?.() === 0) args.push('-u', 'root');
  try {
    const log1 = path.join(dir, `${v.name}-before.log`);
    const a = await startOurs(args, log1);
    const filled = await fill({ port: a.port, keyPrefix: KEY_PREFIX, keyFirst: 1, keyCount: v.keys, valueBytes: v.valueBytes,
      connections: 4, batch: 64, timeoutMs: 600_000 });
    const before = await readRun(memtier, a.port, v.keys, o, dir, `${v.name}-read-before`);
    const itemsBefore = Number((await stats(a.port))['curr_items']);
    const digestBefore = await metadataDigest(a.port, v.keys);
    const t0 = performance.now();
    a.child.kill('SIGUSR1');
    if (!(await waitExit(a.child, STOP_TIMEOUT_MS))) throw new Error(`no exit within ${STOP_TIMEOUT_MS} ms of SIGUSR1`);
    const stopMs = performance.now() - t0;
    const saveLine = /\[restart\] saved[^\n]*/.exec(fs.readFileSync(log1, 'utf8'))?.[0] ?? '(no save line)';
    const log2 = path.join(dir, `${v.name}-after.log`);
    const b = await startOurs(args, log2);
    try {
      const restoreLine = /\[restart\][^\n]*/.exec(fs.readFileSync(log2, 'utf8'))?.[0] ?? '(no restart line)';
      const itemsAfter = Number((await stats(b.port))['curr_items']);
      const digestAfter = await metadataDigest(b.port, v.keys);
      const after = await readRun(memtier, b.port, v.keys, o, dir, `${v.name}-read-after`);
      const s = await stats(b.port);
      return {
        variant: v.name, keys: v.keys, valueBytes: v.valueBytes, coldStartMs: a.ms, fillSeconds: filled.seconds,
        itemsBefore, hitRatioBefore: before.hitRatio, getsPerSecBefore: before.getsPerSec,
        stopMs, saveLine, startMs: b.ms, restoreLine, itemsAfter,
        hitRatioAfter: after.hitRatio, getsPerSecAfter: after.getsPerSec, diskGetsAfter: Number(s['get_extstore'] ?? 0),
        keysFoundBefore: digestBefore.hits, keysFoundAfter: digestAfter.hits,
        sameCasFlagsSize: digestBefore.crc === digestAfter.crc && digestBefore.hits === digestAfter.hits,
      };
    } finally {
      await stopProcess(b.child);
    }
  } finally {
    fs.rmSync(shm, { recursive: true, force: true });
    if (v.extPath !== null) fs.rmSync(v.extPath, { force: true });
  }
}

function render(o: Options, commit: string, results: Outcome[]): string {
  const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;
  const lines = [
    `# Warm restart, -m ${o.memoryMiB} -t ${o.threads} (commit ${commit}, ${new Date().toISOString()})`,
    '',
    '| run | items | hit ratio before | stop (SIGUSR1 to exit) | start (to first reply) | cold start | items after | hit ratio after | every key: same CAS, flags, size | gets/s before | gets/s after |',
    '|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|',
    ...results.map((r) => `| ${r.variant} | ${r.itemsBefore} | ${pct(r.hitRatioBefore)} | ${(r.stopMs / 1000).toFixed(2)} s | ` +
      `${(r.startMs / 1000).toFixed(2)} s | ${(r.coldStartMs / 1000).toFixed(2)} s | ${r.itemsAfter} | ${pct(r.hitRatioAfter)} | ` +
      `${r.sameCasFlagsSize ? 'yes' : 'NO'} (${r.keysFoundAfter} of ${r.keysFoundBefore} found) | ` +
      `${Math.round(r.getsPerSecBefore)} | ${Math.round(r.getsPerSecAfter)} |`),
    '',
    ...results.flatMap((r) => [`- ${r.variant}: ${r.keys} keys of ${r.valueBytes} B; ${r.saveLine}; ${r.restoreLine}` +
      (r.diskGetsAfter > 0 ? `; ${r.diskGetsAfter} gets served from disk after the restart` : '')]),
    '',
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const memtier = which('memtier_benchmark');
  if (memtier === null) throw new Error('memtier_benchmark is not on PATH (bench/README.md says how to build it)');
  const { dir, commit } = runDirectory(REPO, 'restart');
  installSignalCleanup(() => undefined);
  const memoryBytes = o.memoryMiB * 1048576;
  const variants: Variant[] = [
    // 90% of -m in 1 KiB values: the memory holds (nearly) all of it.
    { name: 'memory', valueBytes: 1000, keys: Math.floor((memoryBytes * 0.9) / 1100), extPath: null, extBytes: 0 },
  ];
  if (o.flashRatio > 0) {
    const dataBytes = memoryBytes * o.flashRatio;
    variants.push({ name: `flash ${o.flashRatio}x`, valueBytes: 4096, keys: Math.floor(dataBytes / 4096),
      extPath: path.join(os.tmpdir(), `mcts-bench-restart-ext-${process.pid}`), extBytes: Math.ceil(dataBytes * 1.25) });
  }
  const results: Outcome[] = [];
  try {
    for (const v of variants) {
      process.stderr.write(`restart bench: ${v.name} (${v.keys} keys of ${v.valueBytes} B)\n`);
      results.push(await runVariant(v, o, memtier, dir));
    }
  } finally {
    await stopAll();
  }
  const text = render(o, commit, results);
  fs.writeFileSync(path.join(dir, 'results.md'), text);
  fs.writeFileSync(path.join(dir, 'results.json'), JSON.stringify({ commit, options: o, results }, null, 2));
  process.stdout.write(text);
  process.stderr.write(`results in ${dir}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`restart bench failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  void stopAll().then(() => process.exit(1));
});
