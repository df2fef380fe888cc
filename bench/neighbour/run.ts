/**
 * What SCHED_FIFO buys (`npm run bench:neighbour`): the same memtier_benchmark load against
 * memcached-ts and memcached 1.6.45, each pinned to the server CPU, in three conditions:
 *
 *   quiet       nothing else on the server's CPU;
 *   neighbour   a CPU-hungry process (a shell busy loop, SCHED_OTHER, bounded by `timeout`
 *               and stopped by PID) pinned to the server's CPU for the whole measured run;
 *   neighbour + chrt -f 50   the same, with the server launched under `chrt -f 50`, as an
 *               operator launches it (scripts/memcached-ts-rt, the systemd unit).
 *
 * Rounds alternate the order of the servers. Reports the median ops/s, p50, p99 and p99.9
 * of each (server, condition), and for each server the change real-time scheduling makes
 * under the neighbour. memtier runs pinned to the load CPU.
 *
 * Options: --seconds (10), --rounds (3), --pipeline (1), --priority (50), --server-cpus (0),
 * --load-cpus (1), --memcached <path> (default: the reference 1.6.45 the tests build).
 * Writes results.md and results.json under bench/results/tmp/neighbour-<time>/.
 * Needs root (or CAP_SYS_NICE) for chrt.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fill, stats } from '../lib/client';
import { runMemtier } from '../lib/memtier';
import { installSignalCleanup, runDirectory, spawnLogged, stopAll, stopProcess, which } from '../lib/procs';
import { startServer, stopServer, type ServerCommand, type ServerConfig } from '../lib/servers';

// Compiled to bench/dist/neighbour/neighbour/.
const REPO = path.resolve(__dirname, '..', '..', '..', '..');
const KEYS = 100_000;
const VALUE_BYTES = 100;

interface Options {
  seconds: number;
  rounds: number;
  pipeline: number;
  priority: number;
  serverCpus: string;
  loadCpus: string;
  memcached: string;
}

type Condition = 'quiet' | 'neighbour' | 'neighbour + chrt -f';
const CONDITIONS: Condition[] = ['quiet', 'neighbour', 'neighbour + chrt -f'];

interface Sample {
  server: string;
  condition: Condition;
  round: number;
  schedPolicy: string;
  opsPerSec: number;
  p50Ms: number | null;
  p99Ms: number | null;
  p999Ms: number | null;
}

function referenceMemcached(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const reference = require(path.join(REPO, 'scripts', 'memcached-reference.js')) as { referenceBin(): string };
  return reference.referenceBin();
}

function parseOptions(argv: string[]): Options {
  const o: Options = { seconds: 10, rounds: 3, pipeline: 1, priority: 50, serverCpus: '0', loadCpus: '1', memcached: '' };
  for (let i = 0; i < argv.length; i += 2) {
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${argv[i]} needs a value`);
    switch (argv[i]) {
      case '--seconds': o.seconds = Number(v); break;
      case '--rounds': o.rounds = Number(v); break;
      case '--pipeline': o.pipeline = Number(v); break;
      case '--priority': o.priority = Number(v); break;
      case '--server-cpus': o.serverCpus = v; break;
      case '--load-cpus': o.loadCpus = v; break;
      case '--memcached': o.memcached = v; break;
      default: throw new Error(`unknown option ${argv[i]}`);
    }
  }
  for (const k of ['seconds', 'rounds', 'pipeline', 'priority'] as const) {
    if (!(Number.isInteger(o[k]) && o[k] > 0)) throw new Error(`--${k} must be a positive integer`);
  }
  if (o.memcached === '') o.memcached = referenceMemcached();
  return o;
}

function median(xs: Array<number | null>): number | null {
  const v = xs.filter((x): x is number => x !== null).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}

async function measure(o: Options, base: ServerCommand, condition: Condition, round: number, dir: string,
  memtier: string, taskset: string, chrt: string): Promise<Sample> {
  const command: ServerCommand = condition === 'neighbour + chrt -f'
    ? { ...base, file: chrt, args: ['-f', String(o.priority), base.file, ...base.args] }
    : base;
  const config: ServerConfig = { memoryMiB: 64, threads: 1, tls: null, cpus: o.serverCpus, tasksetPath: taskset, startTimeoutMs: 15_000 };
  const tag = `${base.role}-${condition.replace(/[^a-z]+/g, '-')}-r${round}`;
  const server = await startServer(command, config, path.join(dir, `${tag}-server.log`));
  let hog: ReturnType<typeof spawnLogged> | null = null;
  try {
    await fill({ port: server.port, keyPrefix: 'memtier-', keyFirst: 1, keyCount: KEYS, valueBytes: VALUE_BYTES,
      connections: 4, batch: 64, timeoutMs: 120_000 });
    const policy = (await stats(server.port).catch(() => ({} as Record<string, string>)))['sched_policy'] ?? policyOf(server.pid);
    if (condition !== 'quiet') {
      // The neighbour: a busy loop on the server's CPU, bounded by timeout(1) as well.
      hog = spawnLogged(taskset, ['-c', o.serverCpus, 'timeout', String(o.seconds + 30), 'sh', '-c', 'while :; do :; done'],
        path.join(dir, `${tag}-neighbour.log`));
    }
    const load = await runMemtier({
      path: memtier,
      port: server.port,
      threads: 1,
      clients: 20,
      args: ['--ratio=1:10', `--data-size=${VALUE_BYTES}`, '--key-minimum=1', `--key-maximum=${KEYS}`, '--key-pattern=R:R',
        `--pipeline=${o.pipeline}`, `--test-time=${o.seconds}`, '--distinct-client-seed'],
      jsonFile: path.join(dir, `${tag}.json`),
      logFile: path.join(dir, `${tag}.log`),
      timeoutMs: (o.seconds + 60) * 1000,
      stallMs: 20_000,
      tasksetPath: taskset,
      cpus: o.loadCpus,
    });
    return {
      server: base.label, condition, round, schedPolicy: policy,
      opsPerSec: load.opsPerSec, p50Ms: load.p50Ms, p99Ms: load.p99Ms, p999Ms: load.p999Ms,
    };
  } finally {
    if (hog !== null) await stopProcess(hog);
    await stopServer(server);
  }
}

/** memcached has no sched_policy stat: ask the kernel (chrt -p). */
function policyOf(pid: number): string {
  try {
    const out = execFileSync('chrt', ['-p', String(pid)], { encoding: 'utf8' });
    return /policy:\s*(\S+)/.exec(out)?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function render(o: Options, commit: string, samples: Sample[], versions: string[]): string {
  const fmt = (v: number | null, digits = 3): string => (v === null ? 'n/a' : v.toFixed(digits));
  const servers = [...new Set(samples.map((s) => s.server))];
  const rows: string[] = [];
  const med = (server: string, c: Condition, k: 'opsPerSec' | 'p50Ms' | 'p99Ms' | 'p999Ms'): number | null =>
    median(samples.filter((s) => s.server === server && s.condition === c).map((s) => s[k]));
  for (const server of servers) {
    for (const c of CONDITIONS) {
      const policy = samples.find((s) => s.server === server && s.condition === c)?.schedPolicy ?? '';
      rows.push(`| ${server} | ${c} | ${policy} | ${Math.round(med(server, c, 'opsPerSec') ?? 0).toLocaleString('en-US')} | ` +
        `${fmt(med(server, c, 'p50Ms'))} | ${fmt(med(server, c, 'p99Ms'))} | ${fmt(med(server, c, 'p999Ms'))} |`);
    }
  }
  const gain = servers.map((server) => {
    const ratio = (k: 'p99Ms' | 'p999Ms' | 'opsPerSec'): string => {
      const a = med(server, 'neighbour', k);
      const b = med(server, 'neighbour + chrt -f', k);
      return a === null || b === null || b === 0 ? 'n/a' : `${(a / b).toFixed(2)}x`;
    };
    return `| ${server} | ${ratio('p99Ms')} | ${ratio('p999Ms')} | ${ratio('opsPerSec')} (ops/s without / with) |`;
  });
  return [
    `# A CPU-hungry neighbour on the server's CPU, with and without SCHED_FIFO (commit ${commit}, ${new Date().toISOString()})`,
    '',
    `memtier_benchmark 1:10 sets:gets, ${VALUE_BYTES} B values over ${KEYS} keys, 20 connections, pipeline ${o.pipeline}, ` +
      `${o.seconds} s; server on CPU ${o.serverCpus} (-t 1 -m 64), memtier on CPU ${o.loadCpus}; medians of ${o.rounds} rounds, ` +
      `servers alternating. Servers: ${versions.join(', ')}.`,
    '',
    '| server | condition | policy | ops/s | p50 ms | p99 ms | p99.9 ms |',
    '|---|---|---|--:|--:|--:|--:|',
    ...rows,
    '',
    `What \`chrt -f ${o.priority}\` buys under the neighbour (latency without / with; above 1x is better with):`,
    '',
    '| server | p99 | p99.9 | ops/s |',
    '|---|--:|--:|--:|',
    ...gain,
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const memtier = which('memtier_benchmark');
  const taskset = which('taskset');
  const chrt = which('chrt');
  if (memtier === null || taskset === null || chrt === null) throw new Error('needs memtier_benchmark, taskset and chrt on PATH');
  const { dir, commit } = runDirectory(REPO, 'neighbour');
  installSignalCleanup(() => undefined);
  const root = typeof process.getuid === 'function' && process.getuid() === 0 ? ['-u', 'root'] : [];
  const ours: ServerCommand = { role: 'ours', label: 'memcached-ts', file: process.execPath, args: [path.join(REPO, 'bin', 'memcached-ts.js'), ...root] };
  const theirs: ServerCommand = { role: 'memcached', label: 'memcached', file: o.memcached, args: [...root] };
  const versions = [`memcached-ts (${commit})`, `memcached ${execFileSync(o.memcached, ['-V'], { encoding: 'utf8' }).trim().replace(/^memcached /, '')}`];
  const samples: Sample[] = [];
  try {
    for (let round = 1; round <= o.rounds; round++) {
      const order = round % 2 === 1 ? [ours, theirs] : [theirs, ours];
      for (const condition of CONDITIONS) {
        for (const server of order) {
          process.stderr.write(`neighbour bench: round ${round}, ${server.label}, ${condition}\n`);
          samples.push(await measure(o, server, condition, round, dir, memtier, taskset, chrt));
        }
      }
    }
  } finally {
    await stopAll();
  }
  const text = render(o, commit, samples, versions);
  fs.writeFileSync(path.join(dir, 'results.md'), text);
  fs.writeFileSync(path.join(dir, 'results.json'), JSON.stringify({ commit, options: o, samples }, null, 2));
  process.stdout.write(text);
  process.stderr.write(`results in ${dir}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`neighbour bench failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  void stopAll().then(() => process.exit(1));
});
