/**
 * `npm run bench`: this server against memcached 1.6.45, same flags, same CPU pinning,
 * measured in alternation, the order turning each round (for each workload: round 1 ours then
 * memcached, round 2 memcached then ours, ...), each run on a freshly started server.
 * Results: results.json (every round's raw numbers, medians, ratios, commit, machine),
 * results.md and chart.svg in one directory.
 *
 * `npm run bench -- --smoke` exercises every code path with tiny request counts in seconds
 * and exits non-zero if anything did not work; it is what CI runs.
 *
 * Not for: micro benchmarks of single functions (bench/micro/).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { fill, stats } from './lib/client';
import { renderSvg } from './lib/chart';
import type { LoadGenerator, LoadResult } from './lib/load';
import { runMemcaslap } from './lib/memcaslap';
import { memtierVersion, runMemtier } from './lib/memtier';
import { captureSync, installSignalCleanup, runLogged, stopAll, tail, which } from './lib/procs';
import { renderMarkdown, type Report, type WorkloadReport } from './lib/report';
import { memoryKiB, processName, startServer, stopServer, type RunningServer, type ServerCommand, type ServerConfig } from './lib/servers';
import { median, metricsOf, summarize, type RunRecord, type ServerSample } from './lib/summary';
import { cpuBetween, markCpu } from './lib/cpu';
import { makePlan, selectWorkloads, WORKLOAD_NAMES, type Phase, type Plan, type Steps, type Workload } from './lib/workloads';

const USAGE = `Usage: npm run bench -- [options]

  --smoke                 seconds-long run of every code path (tiny request counts, 1 round)
  --duration SECS         length of each timed run (default 15; smoke uses request counts)
  --warmup SECS           before each timed memtier run, the same load unmeasured for this
                          long, on both servers alike (default 2; 0: none): this server
                          compiles its hot paths (V8's JIT) in the first seconds of a new
                          load, which would otherwise count in the measured tail
  --rounds N              alternating rounds per workload (default 3; smoke 1)
  --workloads LIST        comma-separated subset of: ${WORKLOAD_NAMES.join(', ')}
  --out DIR               results directory (default bench/results/<date>-<commit>; smoke
                          and --self=memcached: under bench/results/tmp/, not committed)
  --memory MIB            -m for both servers (default 64)
  --threads N             -t for both servers (default 1)
  --tls                   the load over TLS: both servers get -Z with one self-signed
                          certificate (made with openssl for the run), memtier_benchmark
                          --tls; the harness's own fills and stats use a notls: listener
  --clients N             connections per load-generator thread (default 20)
  --load-threads N        load-generator threads (default 1)
  --fill-keys N           distinct keys the fill workload sets (default 1000000; smoke 20000)
  --load auto|memtier|memcaslap   load generator (default auto: memtier_benchmark if on
                          PATH, else memcaslap); env BENCH_LOAD
  --self ours|memcached   what runs in ours' slot (memcached: validate the harness with
                          memcached on both sides); env BENCH_SELF
  --memcached PATH        reference memcached binary (default: the 1.6.45 build of
                          scripts/install-test-deps.sh, see scripts/memcached-reference.js)
  --server-cpus LIST      taskset CPU list for the servers (default 0)
  --load-cpus LIST        taskset CPU list for the load generator (default 1)
  --no-pin                do not pin with taskset
  --no-build              do not run "npm run build" before a full run (smoke never builds)
  --render FILE           only re-render results.md and chart.svg from a results.json
  -h, --help              this text
`;

interface Options {
  smoke: boolean;
  durationSec: number;
  /** Unmeasured seconds of the measured load before each timed memtier run (0: none). */
  warmupSec: number;
  rounds: number;
  workloads: Workload[];
  out: string | null;
  memoryMiB: number;
  threads: number;
  clients: number;
  loadThreads: number;
  fillKeys: number | null;
  load: 'auto' | 'memtier' | 'memcaslap';
  self: 'ours' | 'memcached';
  memcached: string;
  serverCpus: string;
  loadCpus: string;
  pin: boolean;
  build: boolean;
  tls: boolean;
}

class UsageError extends Error {}

/** A throwaway self-signed certificate and key for --tls, in `dir` (openssl req, EC P-256). */
function selfSignedCertificate(dir: string): { certPath: string; keyPath: string } {
  const certPath = path.join(dir, 'tls-cert.pem');
  const keyPath = path.join(dir, 'tls-key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=127.0.0.1'], { stdio: 'pipe', timeout: 30_000 });
  return { certPath, keyPath };
}

function positiveInt(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer, got "${v}"`);
  return n;
}

function nonNegativeInt(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} must be a whole number of seconds, got "${v}"`);
  return n;
}

function parseOptions(argv: string[]): Options | { render: string } | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      smoke: { type: 'boolean' },
      duration: { type: 'string' },
      rounds: { type: 'string' },
      workloads: { type: 'string' },
      out: { type: 'string' },
      memory: { type: 'string' },
      threads: { type: 'string' },
      tls: { type: 'boolean' },
      clients: { type: 'string' },
      'load-threads': { type: 'string' },
      'fill-keys': { type: 'string' },
      load: { type: 'string' },
      self: { type: 'string' },
      memcached: { type: 'string' },
      'server-cpus': { type: 'string' },
      'load-cpus': { type: 'string' },
      'no-pin': { type: 'boolean' },
      'no-build': { type: 'boolean' },
      warmup: { type: 'string' },
      render: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help === true) return null;
  if (values.render !== undefined) return { render: values.render };
  const smoke = values.smoke === true;
  const load = (values.load ?? process.env.BENCH_LOAD ?? 'auto').trim();
  if (load !== 'auto' && load !== 'memtier' && load !== 'memcaslap') throw new UsageError(`--load must be auto, memtier or memcaslap, got "${load}"`);
  const self = (values.self ?? process.env.BENCH_SELF ?? 'ours').trim();
  if (self !== 'ours' && self !== 'memcached') throw new UsageError(`--self must be ours or memcached, got "${self}"`);
  let workloads: Workload[];
  try {
    workloads = selectWorkloads(values.workloads ?? null);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return {
    smoke,
    durationSec: positiveInt('duration', values.duration, 15),
    warmupSec: nonNegativeInt('warmup', values.warmup, smoke ? 0 : 2),
    rounds: positiveInt('rounds', values.rounds, smoke ? 1 : 3),
    workloads,
    out: values.out ?? null,
    memoryMiB: positiveInt('memory', values.memory, 64),
    threads: positiveInt('threads', values.threads, 1),
    clients: positiveInt('clients', values.clients, 20),
    loadThreads: positiveInt('load-threads', values['load-threads'], 1),
    fillKeys: values['fill-keys'] === undefined ? null : positiveInt('fill-keys', values['fill-keys'], 1),
    load,
    self,
    memcached: values.memcached ?? referenceMemcached(),
    serverCpus: values['server-cpus'] ?? '0',
    loadCpus: values['load-cpus'] ?? '1',
    pin: values['no-pin'] !== true,
    tls: values.tls === true,
    build: values['no-build'] !== true && !smoke,
  };
}

/** The reference memcached binary, from scripts/memcached-reference.js (the one place that knows it). */
function referenceMemcached(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const reference = require(path.join(findRepoRoot(), 'scripts', 'memcached-reference.js')) as { referenceBin(): string };
  return reference.referenceBin();
}

function findRepoRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        if ((JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === 'memcached-ts') return dir;
      } catch {
        // keep looking
      }
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the memcached-ts repository root above the bench harness');
    dir = up;
  }
}

function gitCommit(repo: string): { id: string | null; dirty: boolean | null } {
  const id = captureSync('git', ['-C', repo, 'rev-parse', 'HEAD']);
  const status = captureSync('git', ['-C', repo, 'status', '--porcelain', '--', 'src', 'bin', 'package.json']);
  const ok = id !== null && /^[0-9a-f]{40}\s*$/.test(id);
  return { id: ok ? (id as string).trim() : null, dirty: status === null || !ok ? null : status.trim() !== '' };
}

function newestMtimeMs(dir: string): number {
  let newest = 0;
  if (!fs.existsSync(dir)) return newest;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtimeMs(p));
    else newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** Writes whatever results exist when the run is interrupted (set once runs begin). */
let interruptHook: (() => void) | null = null;

/** Median cores used by others during measured phases above which the report warns. */
const BUSY_MACHINE_CORES = 0.3;

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function toNum(v: string | undefined): number | null {
  if (v === undefined) return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

interface Context {
  opts: Options;
  plan: Plan;
  repo: string;
  logsDir: string;
  generator: LoadGenerator;
  tasksetPath: string | null;
  pinning: { server: string; load: string } | null;
}

function countTimeoutMs(ctx: Context): number {
  return ctx.opts.smoke ? 60_000 : 900_000;
}

async function runPhase(ctx: Context, phase: Phase, server: RunningServer, logBase: string): Promise<{ load: LoadResult | null; fill: RunRecord['fill'] }> {
  const { opts, plan } = ctx;
  const loadCpus = ctx.pinning?.load ?? null;
  if (phase.kind === 'memtier') {
    const load = await runMemtier({
      path: ctx.generator.path,
      port: server.tlsPort ?? server.port,
      threads: opts.loadThreads,
      clients: opts.clients,
      args: server.tlsPort === null ? phase.args : [...phase.args, '--tls', '--tls-skip-verify'],
      jsonFile: `${logBase}.json`,
      logFile: `${logBase}.log`,
      timeoutMs: phase.bounded === 'time' ? (opts.durationSec + 60) * 1000 : countTimeoutMs(ctx),
      stallMs: opts.smoke ? 10_000 : 20_000,
      tasksetPath: ctx.tasksetPath,
      cpus: loadCpus,
    });
    return { load, fill: null };
  }
  if (phase.kind === 'memcaslap') {
    const load = await runMemcaslap({
      path: ctx.generator.path,
      port: server.port,
      threads: opts.loadThreads,
      clients: opts.clients * opts.loadThreads,
      workload: phase.workload,
      seconds: plan.smoke ? null : opts.durationSec,
      operations: plan.smoke ? plan.smokeRequestsPerClient * plan.connections : null,
      configFile: `${logBase}.cfg`,
      logFile: `${logBase}.log`,
      timeoutMs: plan.smoke ? 60_000 : (opts.durationSec + 60) * 1000,
      tasksetPath: ctx.tasksetPath,
      cpus: loadCpus,
    });
    return { load, fill: null };
  }
  const result = await fill({
    port: server.port,
    keyPrefix: 'memtier-',
    keyFirst: 1,
    keyCount: phase.keyCount,
    valueBytes: phase.valueBytes,
    connections: 4,
    batch: 64,
    timeoutMs: countTimeoutMs(ctx),
  });
  fs.writeFileSync(`${logBase}.log`, `${JSON.stringify(result)}\n`);
  return { load: null, fill: result };
}

/**
 * The measured memtier phase again, for `seconds` and unmeasured: the servers serve the
 * measured load before it is timed (V8 compiles this server's hot paths in the first seconds
 * of a load; memcached has nothing to warm). Null for count-bounded and non-memtier phases.
 */
function warmupPhase(measured: Phase, seconds: number): Phase | null {
  if (seconds <= 0 || measured.kind !== 'memtier' || measured.bounded !== 'time') return null;
  const args = measured.args.map((a) => (a.startsWith('--test-time=') ? `--test-time=${seconds}` : a));
  return { ...measured, what: `warm up ${seconds} s`, args };
}

async function oneRun(ctx: Context, workload: Workload, steps: Steps, round: number, command: ServerCommand, serverConfig: ServerConfig): Promise<RunRecord> {
  const started = Date.now();
  const record: RunRecord = {
    workload: workload.name,
    round,
    role: command.role,
    label: command.label,
    startedAt: new Date(started).toISOString(),
    wallSeconds: 0,
    setup: [],
    load: null,
    fill: null,
    server: null,
    cpu: null,
    error: null,
  };
  const base = path.join(ctx.logsDir, `${workload.name}-r${round}-${command.role}`);
  let server: RunningServer | null = null;
  try {
    server = await startServer(command, serverConfig, `${base}-server.log`);
    const name = processName(server.pid);
    if (name === 'taskset') throw new Error('taskset did not exec the server: its PID is not the server');
    for (const [i, phase] of steps.setup.entries()) {
      const t = Date.now();
      const r = await runPhase(ctx, phase, server, `${base}-setup${i}`);
      if (r.load !== null && r.load.connectionErrors > 0) throw new Error(`${phase.what}: ${r.load.connectionErrors} connection errors`);
      if (r.fill !== null && r.fill.stored !== r.fill.sets) throw new Error(`${phase.what}: ${r.fill.sets - r.fill.stored} sets not STORED`);
      record.setup.push({ what: phase.what, seconds: (Date.now() - t) / 1000 });
    }
    const warm = warmupPhase(steps.measured, ctx.opts.warmupSec);
    if (warm !== null) {
      const r = await runPhase(ctx, warm, server, `${base}-warmup`);
      if (r.load !== null && r.load.connectionErrors > 0) throw new Error(`warm-up: ${r.load.connectionErrors} connection errors`);
      record.setup.push({ what: warm.what, seconds: ctx.opts.warmupSec });
    }
    const before = await stats(server.port);
    const cpuBefore = markCpu(server.pid);
    const measured = await runPhase(ctx, steps.measured, server, `${base}-run`);
    record.cpu = cpuBetween(cpuBefore, markCpu(server.pid));
    const after = await stats(server.port);
    record.load = measured.load;
    record.fill = measured.fill;
    const mem = memoryKiB(server.pid);
    const diff = (k: string): number | null => {
      const a = toNum(after[k]);
      const b = toNum(before[k]);
      return a === null || b === null ? null : a - b;
    };
    const hits = diff('get_hits');
    const misses = diff('get_misses');
    const sample: ServerSample = {
      version: server.version,
      pid: server.pid,
      port: server.port,
      cpusAllowed: server.cpusAllowed,
      currItems: toNum(after.curr_items),
      totalItems: toNum(after.total_items),
      evictions: toNum(after.evictions),
      getHits: hits,
      getMisses: misses,
      hitRatio: hits !== null && misses !== null && hits + misses > 0 ? hits / (hits + misses) : null,
      itemBytes: toNum(after.bytes),
      rssKiB: mem.rssKiB,
      hwmKiB: mem.hwmKiB,
    };
    record.server = sample;
    const completed = record.load?.requests ?? record.fill?.stored ?? 0;
    if (completed <= 0) throw new Error('no operations completed');
    if (record.load !== null && record.load.connectionErrors > 0) throw new Error(`${record.load.connectionErrors} connection errors`);
    if (record.fill !== null && record.fill.failed > 0 && record.fill.stored === 0) throw new Error(`fill: every set failed (${record.fill.failed})`);
  } catch (err) {
    record.error = (err as Error).message;
  } finally {
    if (server !== null) await stopServer(server);
    record.wallSeconds = (Date.now() - started) / 1000;
  }
  return record;
}

function describeRun(r: RunRecord): string {
  if (r.error !== null) return `FAILED: ${r.error.split('\n')[0]}`;
  const m = metricsOf(r);
  const parts = [`${Math.round(m.opsPerSec ?? 0).toLocaleString('en-US')} ops/s`];
  if (m.p99Ms !== null) parts.push(`p99 ${m.p99Ms.toFixed(3)} ms`);
  if (m.hitRatio !== null) parts.push(`hit ${(m.hitRatio * 100).toFixed(1)}%`);
  if (m.currItems !== null) parts.push(`items ${m.currItems.toLocaleString('en-US')}`);
  if (m.rssMiB !== null) parts.push(`RSS ${m.rssMiB.toFixed(1)} MiB`);
  if (m.serverCpuUsPerOp !== null) parts.push(`server CPU ${m.serverCpuUsPerOp.toFixed(1)} µs/op`);
  if (r.fill !== null && r.fill.failed > 0) parts.push(`${r.fill.failed} sets refused`);
  if (r.load?.warning != null) parts.push(`(warning: ${r.load.warning})`);
  return parts.join('  ');
}

/** Re-render the Markdown and the chart of an existing results.json, next to it. */
function render(jsonFile: string): number {
  const report = JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as Report;
  if (report.schema !== 1) {
    log(`bench: ${jsonFile}: unknown schema ${String(report.schema)}`);
    return 2;
  }
  // Summaries are recomputed from the runs, so a file written before a summary field existed
  // renders with it too.
  for (const w of report.workloads) if (w.runs.length > 0) w.summary = summarize(w.runs);
  const dir = path.dirname(jsonFile);
  fs.writeFileSync(path.join(dir, 'results.md'), renderMarkdown(report));
  fs.writeFileSync(path.join(dir, 'chart.svg'), renderSvg(report));
  process.stdout.write(`rendered ${path.join(dir, 'results.md')} and ${path.join(dir, 'chart.svg')}\n`);
  return 0;
}

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(process.argv.slice(2));
  } catch (err) {
    log(`bench: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed === null) {
    process.stdout.write(USAGE);
    return 0;
  }
  if ('render' in parsed) return render(parsed.render);
  const opts = parsed;
  const startedAt = new Date();
  const repo = findRepoRoot();
  const commit = gitCommit(repo);
  const notes: string[] = [];

  // Load generator.
  const memtierPath = which('memtier_benchmark');
  const memcaslapPath = which('memcaslap') ?? which('memaslap');
  let generator: LoadGenerator;
  if (opts.load === 'memtier' || (opts.load === 'auto' && memtierPath !== null)) {
    if (memtierPath === null) {
      log('bench: memtier_benchmark is not on PATH');
      return 2;
    }
    generator = { name: 'memtier_benchmark', path: memtierPath, version: memtierVersion(captureSync(memtierPath, ['--version'])) };
  } else {
    if (memcaslapPath === null) {
      log('bench: neither memtier_benchmark nor memcaslap (libmemcached-tools) is on PATH');
      return 2;
    }
    const v = /v?(\d+\.\d+\S*)/.exec(captureSync(memcaslapPath, ['-V']) ?? '');
    generator = { name: 'memcaslap', path: memcaslapPath, version: v === null ? 'unknown' : v[1] };
    notes.push('memcaslap was the load generator: no pipelining, no key distributions, latency percentiles only as power-of-two bucket edges, and multiget throughput counts keys.');
  }

  // Servers.
  if (!fs.existsSync(opts.memcached)) {
    log(`bench: reference memcached not found at ${opts.memcached} (apt-get install memcached, or --memcached PATH)`);
    return 2;
  }
  const memcachedVersion = captureSync(opts.memcached, ['-V']);
  const oursCommand: ServerCommand =
    opts.self === 'memcached'
      ? { role: 'ours', label: "memcached (in ours' slot)", file: opts.memcached, args: [] }
      : { role: 'ours', label: 'memcached-ts', file: process.execPath, args: [path.join(repo, 'bin', 'memcached-ts.js')] };
  const memcachedCommand: ServerCommand = { role: 'memcached', label: 'memcached', file: opts.memcached, args: [] };
  if (opts.self === 'memcached') notes.push("--self=memcached: memcached ran in both slots (harness validation); ratios should be close to 1.00x.");

  // CPU pinning.
  const cores = os.cpus().length;
  const tasksetPath = which('taskset');
  let pinning: Context['pinning'] = null;
  if (!opts.pin) notes.push('unpinned (--no-pin).');
  else if (tasksetPath === null) notes.push('unpinned: taskset (util-linux) is not on PATH.');
  else if (cores < 2) notes.push(`unpinned: ${cores} core(s); server and load generator need one each.`);
  else {
    pinning = { server: opts.serverCpus, load: opts.loadCpus };
    // Keep the harness itself (and its filler) off the server's CPU too.
    captureSync(tasksetPath, ['-a', '-p', '-c', opts.loadCpus, String(process.pid)]);
  }
  for (const n of notes) log(`bench: ${n}`);

  // Output locations.
  const stamp = startedAt.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const runId = `${stamp}-${commit.id?.slice(0, 8) ?? 'nocommit'}`;
  // Smoke runs and harness validations (--self=memcached) are not results: they go under
  // bench/results/tmp/, which is not committed.
  const scratch = opts.smoke ? `smoke-${runId}` : opts.self === 'memcached' ? `self-memcached-${runId}` : null;
  const outDir = path.resolve(opts.out ?? (scratch !== null ? path.join(repo, 'bench', 'results', 'tmp', scratch) : path.join(repo, 'bench', 'results', runId)));
  const logsDir = scratch !== null || opts.out !== null ? path.join(outDir, 'logs') : path.join(repo, 'bench', 'results', 'tmp', `${runId}-logs`);
  fs.mkdirSync(logsDir, { recursive: true });

  installSignalCleanup((signal) => {
    log(`\nbench: ${signal}: stopping every server and load generator`);
    if (interruptHook !== null) {
      try {
        interruptHook();
      } catch (err) {
        log(`bench: could not write partial results: ${(err as Error).message}`);
      }
    }
  });

  // Build ours (a full run measures the current source, not a stale dist/).
  let oursBuildStale: boolean | null = null;
  if (opts.self === 'ours') {
    if (opts.build) {
      log('bench: npm run build');
      const npm = which('npm');
      const outcome = npm === null ? null : await runLogged(npm, ['run', 'build', '--prefix', repo], path.join(logsDir, 'build.log'), 300_000);
      if (outcome === null || outcome.code !== 0) {
        log(`bench: the build failed (log ${path.join(logsDir, 'build.log')}):\n${tail(path.join(logsDir, 'build.log'), 1500)}`);
        return 1;
      }
    }
    const entry = path.join(repo, 'dist', 'cli', 'main.js');
    if (!fs.existsSync(entry)) {
      log(`bench: ${entry} does not exist: run "npm run build" first`);
      return 2;
    }
    oursBuildStale = newestMtimeMs(path.join(repo, 'src')) > fs.statSync(entry).mtimeMs;
    if (oursBuildStale) {
      const msg = 'dist/ is older than src/: the measured server may not be the current source (run "npm run build").';
      notes.push(msg);
      log(`bench: WARNING: ${msg}`);
    }
  }
  if (!opts.smoke && opts.rounds < 3) notes.push(`only ${opts.rounds} round(s): the issue asks for at least 3 for quotable medians.`);

  const plan = makePlan({ smoke: opts.smoke, durationSec: opts.durationSec, memoryMiB: opts.memoryMiB, connections: opts.clients * opts.loadThreads, fillKeys: opts.fillKeys });
  const ctx: Context = { opts, plan, repo, logsDir, generator, tasksetPath, pinning };
  if (opts.tls && generator.name !== 'memtier_benchmark') throw new Error('--tls needs memtier_benchmark (memcaslap has no TLS)');
  const tls = opts.tls ? selfSignedCertificate(logsDir) : null;
  const serverConfig: ServerConfig = { memoryMiB: opts.memoryMiB, threads: opts.threads, tls, cpus: pinning?.server ?? null, tasksetPath, startTimeoutMs: 15_000 };

  const workloadReports: WorkloadReport[] = [];
  const plans: { w: Workload; steps: Steps | null; report: WorkloadReport }[] = [];
  for (const w of opts.workloads) {
    const steps = generator.name === 'memtier_benchmark' ? w.memtier(plan) : w.memcaslap(plan);
    const report: WorkloadReport = {
      name: w.name,
      label: w.label,
      description: w.description,
      focus: w.focus,
      params: w.params(plan),
      skipped: typeof steps === 'string' ? steps : null,
      runs: [],
      summary: null,
    };
    workloadReports.push(report);
    plans.push({ w, steps: typeof steps === 'string' ? null : steps, report });
    if (typeof steps === 'string') log(`bench: skipping ${w.name}: ${steps}`);
  }

  const totalRuns = plans.filter((p) => p.steps !== null).length * opts.rounds * 2;
  let done = 0;
  const runStart = Date.now();
  log(
    `bench: ${totalRuns} runs (${plans.filter((p) => p.steps !== null).map((p) => p.w.name).join(', ')}), ${opts.rounds} round(s), ` +
      `${generator.name} ${generator.version}, ${oursCommand.label} vs ${memcachedCommand.label}; logs in ${logsDir}`,
  );
  const failures: Report['failures'] = [];
  const writeResults = (interrupted: boolean): { jsonFile: string; mdFile: string; svgFile: string; md: string } => {
    for (const p of plans) if (p.report.runs.length > 0) p.report.summary = summarize(p.report.runs);
    const allRuns = workloadReports.flatMap((w) => w.runs);
    const other = median(allRuns.filter((r) => r.error === null).map((r) => metricsOf(r).otherCpuCores));
    const runNotes = [...notes];
    if (interrupted) runNotes.push('INTERRUPTED: the run was stopped before it finished; only completed runs are included.');
    if (other !== null && other > BUSY_MACHINE_CORES) {
      runNotes.push(`other processes (and kernel work not charged to a process) used a median ${other.toFixed(2)} cores during measured phases: the machine was not quiet, so treat these numbers with care.`);
    }
    const finishedAt = new Date();
    const report: Report = {
      schema: 1,
      kind: opts.smoke ? 'smoke' : 'full',
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      wallSeconds: (finishedAt.getTime() - startedAt.getTime()) / 1000,
      commit,
      machine: { cores, availableParallelism: os.availableParallelism(), cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown', kernel: os.release(), arch: os.arch() },
      node: process.version,
      servers: {
        ours: {
          label: oursCommand.label,
          command: [oursCommand.file, ...oursCommand.args],
          version: workloadReports.flatMap((w) => w.runs).find((r) => r.role === 'ours' && r.server !== null)?.server?.version ?? null,
        },
        memcached: {
          label: memcachedCommand.label,
          command: [memcachedCommand.file],
          version: workloadReports.flatMap((w) => w.runs).find((r) => r.role === 'memcached' && r.server !== null)?.server?.version ?? (/memcached (\S+)/.exec(memcachedVersion ?? '')?.[1] ?? null),
        },
      },
      loadGenerator: { ...generator, threads: opts.loadThreads, clientsPerThread: opts.clients },
      settings: {
        memoryMiB: opts.memoryMiB,
        threads: opts.threads,
        rounds: opts.rounds,
        durationSec: opts.durationSec,
        warmupSec: opts.warmupSec,
        pinning,
        workloads: opts.workloads.map((w) => w.name),
        oursBuildStale,
        tls: opts.tls,
      },
      plan,
      workloads: workloadReports,
      failures,
      notes: runNotes,
    };
    fs.mkdirSync(outDir, { recursive: true });
    const jsonFile = path.join(outDir, 'results.json');
    const mdFile = path.join(outDir, 'results.md');
    const svgFile = path.join(outDir, 'chart.svg');
    fs.writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
    const md = renderMarkdown(report);
    fs.writeFileSync(mdFile, md);
    fs.writeFileSync(svgFile, renderSvg(report));
    return { jsonFile, mdFile, svgFile, md };
  };
  interruptHook = () => {
    const w = writeResults(true);
    log(`bench: partial results: ${w.jsonFile}`);
  };

  for (const p of plans) {
    if (p.steps === null) continue;
    for (let round = 1; round <= opts.rounds; round++) {
      // Odd rounds ours first, even rounds memcached first: whichever way the machine drifts
      // within a round, it favours each server in as many rounds.
      const order = round % 2 === 1 ? [oursCommand, memcachedCommand] : [memcachedCommand, oursCommand];
      for (const command of order) {
        const elapsed = (Date.now() - runStart) / 1000;
        const left = done === 0 ? '?' : clock((elapsed / done) * (totalRuns - done));
        const what = [...p.steps.setup.map((s) => s.what), 'measure'].join(', ');
        log(`[${String(done + 1).padStart(String(totalRuns).length)}/${totalRuns} ${clock(elapsed)} elapsed, ~${left} left] ${p.w.name} round ${round}/${opts.rounds} ${command.label}: ${what}`);
        const record = await oneRun(ctx, p.w, p.steps, round, command, serverConfig);
        done++;
        p.report.runs.push(record);
        if (record.error !== null) failures.push({ workload: p.w.name, round, role: command.role, error: record.error });
        log(`    ${describeRun(record)}`);
      }
    }
    p.report.summary = summarize(p.report.runs);
    const q = p.report.summary.ratios;
    log(`  ${p.w.name}: ours / memcached ops/s ${q.opsPerSec?.toFixed(2) ?? '–'}x${q.hitRatio !== null ? `, hit ratio ${q.hitRatio.toFixed(3)}x` : ''}${q.currItems !== null && p.w.focus === 'capacity' ? `, items ${q.currItems.toFixed(2)}x, RSS ${q.rssMiB?.toFixed(2) ?? '–'}x` : ''}`);
  }

  const { jsonFile, mdFile, svgFile, md } = writeResults(false);
  interruptHook = null;
  process.stdout.write(`\n${md}\n`);
  process.stdout.write(`results: ${jsonFile}\n         ${mdFile}\n         ${svgFile}\nlogs:    ${logsDir}\n`);
  if (failures.length > 0) {
    log(`bench: ${failures.length} run(s) failed`);
    return 1;
  }
  return 0;
}

main()
  .then(async (code) => {
    await stopAll();
    process.exitCode = code;
  })
  .catch(async (err: unknown) => {
    log(`bench: ${(err as Error).stack ?? String(err)}`);
    await stopAll();
    process.exitCode = 1;
  });
