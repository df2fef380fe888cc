/**
 * Extstore benchmark: a data set about 10x memory, against memcached-ts and Debian's
 * memcached started with the same flags and the same ext_* options, side by side.
 *
 *   npx tsc -p bench/extstore/tsconfig.json && node bench/dist/extstore/run.js [options]
 *
 *   --memory MIB        -m for both servers (default 64)
 *   --ratio N           data set size / memory (default 10)
 *   --value-bytes N     value size (default 4096)
 *   --seconds N         measured phase per run (default 30)
 *   --rounds N          alternating rounds, ours then memcached (default 1)
 *   --clients N         memtier connections per thread (default 8), --load-threads N (default 2)
 *   --dir DIR           where the extstore files go (default: a fresh directory under /tmp)
 *   --memcached PATH    reference binary (default: the 1.6.45 build, scripts/memcached-reference.js)
 *   --ext OPTS          extra -o options for both (default ext_threads=4)
 *
 * Each run: a fresh server (-t 1 -U 0 -l 127.0.0.1 -m M -o ext_path=<dir>/<name>:<2x data>G,...),
 * pinned to CPU 0 with taskset when there are two cores or more (memtier on the others);
 * load: every key once (memtier, sequential, pipeline 32); settle 3 s; measure: memtier
 * 1 set : 9 gets, Gaussian keys over the whole key range (stddev = range / 6), pipeline 1.
 * Reported: ops/s, p50/p99/p99.9 (memtier's HDR histogram), hit ratio as memtier saw it,
 * the servers' own extstore counters. Results go to bench/results/tmp/extstore-<time>/.
 * Every server and memtier is stopped by PID, on error too; every step has a time limit.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

const LOOPBACK = '127.0.0.1';
const REPO = path.resolve(__dirname, '..', '..', '..');
const MIB = 1024 * 1024;

/** The reference memcached binary, from scripts/memcached-reference.js (the one place that knows it). */
function referenceMemcached(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const reference = require(path.join(REPO, 'scripts', 'memcached-reference.js')) as { referenceBin(): string };
  return reference.referenceBin();
}

interface Options {
  memoryMb: number;
  ratio: number;
  valueBytes: number;
  seconds: number;
  rounds: number;
  clients: number;
  loadThreads: number;
  dir: string | null;
  memcached: string;
  ext: string;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    memoryMb: 64, ratio: 10, valueBytes: 4096, seconds: 30, rounds: 1, clients: 8, loadThreads: 2,
    dir: null, memcached: referenceMemcached(), ext: 'ext_threads=4',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = (): string => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${a} needs a value`);
      return next;
    };
    switch (a) {
      case '--memory': o.memoryMb = Number(v()); break;
      case '--ratio': o.ratio = Number(v()); break;
      case '--value-bytes': o.valueBytes = Number(v()); break;
      case '--seconds': o.seconds = Number(v()); break;
      case '--rounds': o.rounds = Number(v()); break;
      case '--clients': o.clients = Number(v()); break;
      case '--load-threads': o.loadThreads = Number(v()); break;
      case '--dir': o.dir = v(); break;
      case '--memcached': o.memcached = v(); break;
      case '--ext': o.ext = v(); break;
      default: throw new Error(`unknown option ${a}`);
    }
  }
  return o;
}

const children = new Set<ChildProcess>();
function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}
function killAll(): void {
  for (const c of children) if (c.pid !== undefined) c.kill('SIGKILL');
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    killAll();
    process.exit(130);
  });
}

function haveTaskset(): boolean {
  return spawnSync('taskset', ['-V'], { stdio: 'ignore' }).status === 0 && os.cpus().length >= 2;
}

function pinned(cmd: string, args: string[], cpus: string | null): { file: string; args: string[] } {
  return cpus === null ? { file: cmd, args } : { file: 'taskset', args: ['-c', cpus, cmd, ...args] };
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, LOOPBACK, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Send one text command, read until END\r\n (bounded). */
async function command(port: number, text: string, timeoutMs = 5000): Promise<string> {
  return await new Promise((resolve, reject) => {
    const sock = net.connect(port, LOOPBACK);
    let out = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no reply to ${text.trim()} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(text));
    sock.on('data', (d) => {
      out += d.toString('latin1');
      if (out.endsWith('END\r\n') || out.endsWith('\r\n') && !text.startsWith('stats')) {
        clearTimeout(timer);
        sock.destroy();
        resolve(out);
      }
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

async function stats(port: number): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const line of (await command(port, 'stats\r\n')).split('\r\n')) {
    const m = /^STAT (\S+) (.*)$/.exec(line);
    if (m !== null) out[m[1]] = m[2];
  }
  return out;
}

interface Server {
  kind: 'ours' | 'memcached';
  port: number;
  child: ChildProcess;
  version: string;
}

async function startServer(kind: 'ours' | 'memcached', o: Options, extPath: string, cpus: string | null,
  logFile: string): Promise<Server> {
  const port = await freePort();
  const flags = ['-p', String(port), '-U', '0', '-l', LOOPBACK, '-t', '1', '-m', String(o.memoryMb),
    '-o', `${o.ext},ext_path=${extPath}`];
  if (process.getuid?.() === 0) flags.push('-u', 'root');
  const base = kind === 'ours'
    ? { file: process.execPath, args: [path.join(REPO, 'bin', 'memcached-ts.js'), ...flags] }
    : { file: o.memcached, args: flags };
  const cmd = pinned(base.file, base.args, cpus);
  const log = fs.openSync(logFile, 'w');
  const child = track(spawn(cmd.file, cmd.args, { stdio: ['ignore', log, log] }));
  fs.closeSync(log);
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${kind} exited at startup: ${fs.readFileSync(logFile, 'utf8')}`);
    try {
      const v = await command(port, 'version\r\n', 1000);
      return { kind, port, child, version: v.trim().replace(/^VERSION /, '') };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  child.kill('SIGKILL');
  throw new Error(`${kind} did not start within 15 s`);
}

async function stopServer(s: Server): Promise<void> {
  if (s.child.exitCode !== null) return;
  const exited = new Promise((r) => s.child.once('exit', r));
  s.child.kill('SIGTERM');
  const t = setTimeout(() => s.child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

interface MemtierResult {
  opsPerSec: number;
  p50: number | null;
  p99: number | null;
  p999: number | null;
  hitRatio: number | null;
}

async function memtier(port: number, args: string[], jsonFile: string, logFile: string, cpus: string | null,
  timeoutMs: number): Promise<MemtierResult> {
  const all = ['-s', LOOPBACK, '-p', String(port), '-P', 'memcache_text', '--hide-histogram',
    '--print-percentiles=50,99,99.9', `--json-out-file=${jsonFile}`, ...args];
  const cmd = pinned('memtier_benchmark', all, cpus);
  const log = fs.openSync(logFile, 'w');
  const child = track(spawn(cmd.file, cmd.args, { stdio: ['ignore', log, log] }));
  fs.closeSync(log);
  const code = await new Promise<number | null>((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (c) => {
      clearTimeout(t);
      resolve(c);
    });
  });
  if (code !== 0) throw new Error(`memtier exited with ${code}; log ${logFile}`);
  const j = JSON.parse(fs.readFileSync(jsonFile, 'utf8').replace(/:\s*-?(nan|inf)\b/gi, ': null')) as
    Record<string, Record<string, Record<string, unknown>>>;
  const all2 = j['ALL STATS'];
  const totals = all2.Totals;
  const pct = totals['Percentile Latencies'] as Record<string, number>;
  const gets = all2.Gets;
  const hits = Number(gets['Hits/sec'] ?? 0);
  const misses = Number(gets['Misses/sec'] ?? 0);
  return {
    opsPerSec: Number(totals['Ops/sec'] ?? 0),
    p50: pct?.['p50.00'] ?? null,
    p99: pct?.['p99.00'] ?? null,
    p999: pct?.['p99.90'] ?? null,
    hitRatio: hits + misses > 0 ? hits / (hits + misses) : null,
  };
}

interface RunResult {
  kind: 'ours' | 'memcached';
  round: number;
  version: string;
  loadSeconds: number;
  measure: MemtierResult;
  stats: Record<string, string>;
}

const STAT_KEYS = ['curr_items', 'evictions', 'get_extstore', 'miss_from_extstore', 'badcrc_from_extstore',
  'recache_from_extstore', 'extstore_objects_written', 'extstore_objects_used', 'extstore_bytes_used',
  'extstore_page_evictions', 'extstore_compact_rescues', 'extstore_io_queue'];

async function oneRun(kind: 'ours' | 'memcached', round: number, o: Options, keys: number, dir: string, outDir: string,
  cpus: { server: string | null; load: string | null }): Promise<RunResult> {
  const fileGb = Math.max(1, Math.ceil((2 * keys * o.valueBytes) / (1024 * MIB)));
  const extFile = path.join(dir, `${kind}-r${round}`);
  const tag = `${kind}-r${round}`;
  const server = await startServer(kind, o, `${extFile}:${fileGb}G`, cpus.server, path.join(outDir, `${tag}-server.log`));
  try {
    const t0 = Date.now();
    // Load: every key once, sequentially (each client a slice), pipelined.
    await memtier(server.port, ['-t', '1', '-c', '4', '--ratio=1:0', '--key-pattern=P:P', '--key-minimum=1',
      `--key-maximum=${keys}`, '-n', 'allkeys', `--data-size=${o.valueBytes}`, '--pipeline=32'],
    path.join(outDir, `${tag}-load.json`), path.join(outDir, `${tag}-load.log`), cpus.load, 600_000);
    const loadSeconds = (Date.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 3000));
    const measure = await memtier(server.port, ['-t', String(o.loadThreads), '-c', String(o.clients), '--ratio=1:9',
      '--key-pattern=G:G', '--key-minimum=1', `--key-maximum=${keys}`, `--test-time=${o.seconds}`,
      `--data-size=${o.valueBytes}`, '--pipeline=1', '--distinct-client-seed'],
    path.join(outDir, `${tag}-measure.json`), path.join(outDir, `${tag}-measure.log`), cpus.load, (o.seconds + 60) * 1000);
    const st = await stats(server.port);
    return { kind, round, version: server.version, loadSeconds, measure, stats: st };
  } finally {
    await stopServer(server);
    fs.rmSync(extFile, { force: true });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function fmt(v: number | null, digits = 0): string {
  return v === null || !Number.isFinite(v) ? '-' : v.toFixed(digits);
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(path.join(REPO, 'dist', 'cli', 'main.js'))) throw new Error('run `npm run build` first');
  if (!fs.existsSync(o.memcached)) throw new Error(`${o.memcached} not found`);
  if (spawnSync('memtier_benchmark', ['--version'], { stdio: 'ignore' }).status !== 0) throw new Error('memtier_benchmark not on PATH');
  const keys = Math.floor((o.ratio * o.memoryMb * MIB) / o.valueBytes);
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  const outDir = path.join(REPO, 'bench', 'results', 'tmp', `extstore-${stamp}`);
  fs.mkdirSync(outDir, { recursive: true });
  const dir = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-bench-ext-'));
  const pin = haveTaskset();
  const cpus = { server: pin ? '0' : null, load: pin ? `1-${os.cpus().length - 1}` : null };
  const commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).stdout.trim();
  process.stderr.write(`extstore bench: -m ${o.memoryMb}, ${keys} keys of ${o.valueBytes} bytes ` +
    `(${((keys * o.valueBytes) / MIB).toFixed(0)} MiB, ${o.ratio}x memory), ${o.seconds} s measured, ` +
    `${o.rounds} round(s), ${pin ? 'pinned' : 'unpinned'}, files in ${dir}\n`);
  const results: RunResult[] = [];
  try {
    for (let round = 1; round <= o.rounds; round++) {
      for (const kind of ['ours', 'memcached'] as const) {
        process.stderr.write(`  round ${round}: ${kind} ...`);
        const r = await oneRun(kind, round, o, keys, dir, outDir, cpus);
        results.push(r);
        process.stderr.write(` ${fmt(r.measure.opsPerSec)} ops/s, p99 ${fmt(r.measure.p99, 3)} ms, ` +
          `hit ratio ${fmt((r.measure.hitRatio ?? NaN) * 100, 1)}%, load ${r.loadSeconds.toFixed(1)} s\n`);
      }
    }
  } finally {
    killAll();
    if (o.dir === null) fs.rmSync(dir, { recursive: true, force: true });
  }
  const of = (kind: string, f: (r: RunResult) => number | null): number =>
    median(results.filter((r) => r.kind === kind).map((r) => f(r) ?? NaN));
  const row = (name: string, f: (r: RunResult) => number | null, digits: number): string => {
    const a = of('ours', f);
    const b = of('memcached', f);
    return `| ${name} | ${fmt(a, digits)} | ${fmt(b, digits)} | ${fmt(a / b, 2)}x |`;
  };
  const lines = [
    `# extstore: memcached-ts vs memcached (${commit})`,
    '',
    `-m ${o.memoryMb} -t 1 -o ${o.ext},ext_path=<file>:<size>G; ${keys} keys x ${o.valueBytes} B = ` +
    `${((keys * o.valueBytes) / MIB).toFixed(0)} MiB (${o.ratio}x memory); memtier 1:9 set:get, Gaussian keys, ` +
    `${o.loadThreads}x${o.clients} connections, ${o.seconds} s; medians of ${o.rounds} round(s).`,
    '',
    '| | memcached-ts | memcached | ratio ours / memcached |',
    '|---|---|---|---|',
    row('ops/s', (r) => r.measure.opsPerSec, 0),
    row('hit ratio %', (r) => (r.measure.hitRatio === null ? null : r.measure.hitRatio * 100), 1),
    row('get hits/s (ops/s x 0.9 x hit ratio)', (r) => (r.measure.hitRatio === null ? null : r.measure.opsPerSec * 0.9 * r.measure.hitRatio), 0),
    row('p50 ms (lower is better)', (r) => r.measure.p50, 3),
    row('p99 ms (lower is better)', (r) => r.measure.p99, 3),
    row('p99.9 ms (lower is better)', (r) => r.measure.p999, 3),
    row('load s (lower is better)', (r) => r.loadSeconds, 1),
    ...STAT_KEYS.map((k) => row(k, (r) => (r.stats[k] === undefined ? null : Number(r.stats[k])), 0)),
  ];
  const text = lines.join('\n') + '\n';
  fs.writeFileSync(path.join(outDir, 'results.md'), text);
  fs.writeFileSync(path.join(outDir, 'results.json'), JSON.stringify({ commit, options: o, keys, results }, null, 2));
  process.stdout.write(text);
  process.stderr.write(`results in ${outDir}\n`);
}

main().catch((e: unknown) => {
  killAll();
  process.stderr.write(`extstore bench: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(2);
});
