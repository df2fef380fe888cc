/**
 * Extstore benchmark: a data set about 10x memory, against memcached-ts and memcached 1.6.45
 * started with the same flags and the same ext_* options, side by side.
 *
 *   npm run bench:extstore -- [options]
 *
 *   --memory MIB        -m for both servers (default 64)
 *   --ratio N           data set size / memory (default 10)
 *   --value-bytes N,..  value sizes, one data set each (default 4096,16384)
 *   --seconds N         measured phase per run (default 30)
 *   --rounds N          alternating rounds, ours first in odd rounds, memcached in even (default 1)
 *   --clients N         memtier connections per thread (default 8), --load-threads N (default 2)
 *   --load-pipeline N   pipeline depth of the load phase (default 32; at 1 memcached's writer
 *                       keeps up and it stores the whole set, so hit ratios are comparable)
 *   --dir DIR           where the extstore files go (default: a fresh directory under /tmp)
 *   --memcached PATH    reference binary (default: the 1.6.45 build, scripts/memcached-reference.js)
 *   --ext OPTS          extra -o options for both (default ext_threads=4)
 *   --threads N         -t for both servers (default 1)
 *
 * Each run: a fresh server (-t N -U 0 -l 127.0.0.1 -m M -o ext_path=<dir>/<name>:<2x data>G,...),
 * pinned to CPU 0 with taskset when there are two cores or more (memtier on the others);
 * load: every key once (memtier, sequential, pipeline 32 or --load-pipeline); settle 3 s; measure: memtier
 * 1 set : 9 gets, Gaussian keys over the whole key range (stddev = range / 6), pipeline 1.
 * Reported per value size: ops/s, p50/p99/p99.9 (memtier's HDR histogram), hit ratio as
 * memtier saw it, write amplification (extstore_bytes_written / (cmd_set x value bytes): disk
 * bytes per byte of value stored, record headers included), the servers' own extstore
 * counters, and a chart of both latency curves (latency-<bytes>.svg). Results go to
 * bench/results/tmp/extstore-<time>/.
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
  valueSizes: number[];
  seconds: number;
  rounds: number;
  clients: number;
  loadThreads: number;
  /** Pipeline depth of the load phase (memtier, 4 connections). */
  loadPipeline: number;
  dir: string | null;
  memcached: string;
  ext: string;
  threads: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    memoryMb: 64, ratio: 10, valueSizes: [4096, 16384], seconds: 30, rounds: 1, clients: 8, loadThreads: 2, loadPipeline: 32,
    dir: null, memcached: referenceMemcached(), ext: 'ext_threads=4', threads: 1,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') continue;
    const v = (): string => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${a} needs a value`);
      return next;
    };
    switch (a) {
      case '--memory': o.memoryMb = Number(v()); break;
      case '--ratio': o.ratio = Number(v()); break;
      case '--value-bytes': o.valueSizes = v().split(',').map(Number); break;
      case '--seconds': o.seconds = Number(v()); break;
      case '--rounds': o.rounds = Number(v()); break;
      case '--threads': o.threads = Number(v()); break;
      case '--clients': o.clients = Number(v()); break;
      case '--load-threads': o.loadThreads = Number(v()); break;
      case '--load-pipeline': o.loadPipeline = Number(v()); break;
      case '--dir': o.dir = v(); break;
      case '--memcached': o.memcached = v(); break;
      case '--ext': o.ext = v(); break;
      default: throw new Error(`unknown option ${a}`);
    }
  }
  if (o.valueSizes.some((b) => !(Number.isInteger(b) && b > 0))) throw new Error('--value-bytes: positive integers');
  if (!(Number.isInteger(o.threads) && o.threads >= 1 && o.threads <= 64)) throw new Error('--threads: an integer from 1 to 64');
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
  const flags = ['-p', String(port), '-U', '0', '-l', LOOPBACK, '-t', String(o.threads), '-m', String(o.memoryMb),
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

/** Percentiles asked of memtier: the table's three and the chart's curve. */
const PERCENTILES = [50, 75, 90, 95, 99, 99.5, 99.9, 99.99];

interface MemtierResult {
  opsPerSec: number;
  p50: number | null;
  p99: number | null;
  p999: number | null;
  /** [percentile, ms] for PERCENTILES memtier reported. */
  curve: [number, number][];
  hitRatio: number | null;
}

async function memtier(port: number, args: string[], jsonFile: string, logFile: string, cpus: string | null,
  timeoutMs: number): Promise<MemtierResult> {
  const all = ['-s', LOOPBACK, '-p', String(port), '-P', 'memcache_text', '--hide-histogram',
    `--print-percentiles=${PERCENTILES.join(',')}`, `--json-out-file=${jsonFile}`, ...args];
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
    curve: PERCENTILES.flatMap((q): [number, number][] => {
      const v = pct?.[`p${q.toFixed(2)}`];
      return typeof v === 'number' ? [[q, v]] : [];
    }),
    hitRatio: hits + misses > 0 ? hits / (hits + misses) : null,
  };
}

interface RunResult {
  kind: 'ours' | 'memcached';
  round: number;
  valueBytes: number;
  version: string;
  loadSeconds: number;
  /** Stats after the load and the pause, before the measured phase. */
  statsBefore: Record<string, string>;
  measure: MemtierResult;
  stats: Record<string, string>;
}

const STAT_KEYS = ['curr_items', 'evictions', 'get_extstore', 'miss_from_extstore', 'badcrc_from_extstore',
  'recache_from_extstore', 'extstore_objects_written', 'extstore_objects_used', 'extstore_bytes_used',
  'extstore_page_evictions', 'extstore_compact_rescues', 'extstore_bytes_written', 'cmd_set'];

/** Disk bytes written per byte of value stored, over the whole run (load and measured phase). */
function writeAmplification(r: RunResult): number | null {
  const written = Number(r.stats.extstore_bytes_written);
  const sets = Number(r.stats.cmd_set);
  return Number.isFinite(written) && sets > 0 ? written / (sets * r.valueBytes) : null;
}

/**
 * The same over the measured phase only (1:9 traffic once the data set is loaded): what the
 * tier writes in steady state, apart from the load, where a server that evicts values its
 * writer has not reached writes less by keeping less.
 */
function steadyWriteAmplification(r: RunResult): number | null {
  const written = Number(r.stats.extstore_bytes_written) - Number(r.statsBefore.extstore_bytes_written);
  const sets = Number(r.stats.cmd_set) - Number(r.statsBefore.cmd_set);
  return Number.isFinite(written) && sets > 0 ? written / (sets * r.valueBytes) : null;
}

async function oneRun(kind: 'ours' | 'memcached', round: number, o: Options, valueBytes: number, dir: string,
  outDir: string, cpus: { server: string | null; load: string | null }): Promise<RunResult> {
  const keys = keysFor(o, valueBytes);
  const fileGb = Math.max(1, Math.ceil((2 * keys * valueBytes) / (1024 * MIB)));
  const extFile = path.join(dir, `${kind}-r${round}`);
  const tag = `${kind}-${valueBytes}-r${round}`;
  const server = await startServer(kind, o, `${extFile}:${fileGb}G`, cpus.server, path.join(outDir, `${tag}-server.log`));
  try {
    const t0 = Date.now();
    // Load: every key once, sequentially (each client a slice), pipelined.
    await memtier(server.port, ['-t', '1', '-c', '4', '--ratio=1:0', '--key-pattern=P:P', '--key-minimum=1',
      `--key-maximum=${keys}`, '-n', 'allkeys', `--data-size=${valueBytes}`, `--pipeline=${o.loadPipeline}`],
    path.join(outDir, `${tag}-load.json`), path.join(outDir, `${tag}-load.log`), cpus.load, 600_000);
    const loadSeconds = (Date.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 3000));
    const statsBefore = await stats(server.port);
    const measure = await memtier(server.port, ['-t', String(o.loadThreads), '-c', String(o.clients), '--ratio=1:9',
      '--key-pattern=G:G', '--key-minimum=1', `--key-maximum=${keys}`, `--test-time=${o.seconds}`,
      `--data-size=${valueBytes}`, '--pipeline=1', '--distinct-client-seed'],
    path.join(outDir, `${tag}-measure.json`), path.join(outDir, `${tag}-measure.log`), cpus.load, (o.seconds + 60) * 1000);
    const st = await stats(server.port);
    return { kind, round, valueBytes, version: server.version, loadSeconds, statsBefore, measure, stats: st };
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

function keysFor(o: Options, valueBytes: number): number {
  return Math.floor((o.ratio * o.memoryMb * MIB) / valueBytes);
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(path.join(REPO, 'dist', 'cli', 'main.js'))) throw new Error('run `npm run build` first');
  if (!fs.existsSync(o.memcached)) throw new Error(`${o.memcached} not found`);
  if (spawnSync('memtier_benchmark', ['--version'], { stdio: 'ignore' }).status !== 0) throw new Error('memtier_benchmark not on PATH');
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  const outDir = path.join(REPO, 'bench', 'results', 'tmp', `extstore-${stamp}`);
  fs.mkdirSync(outDir, { recursive: true });
  const dir = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-bench-ext-'));
  const pin = haveTaskset();
  const cpus = { server: pin ? '0' : null, load: pin ? `1-${os.cpus().length - 1}` : null };
  const commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).stdout.trim();
  process.stderr.write(`extstore bench: -m ${o.memoryMb}, values of ${o.valueSizes.join(' and ')} bytes, ` +
    `${o.ratio}x memory each, ${o.seconds} s measured, ${o.rounds} round(s), ${pin ? 'pinned' : 'unpinned'}, files in ${dir}\n`);
  const results: RunResult[] = [];
  try {
    for (const valueBytes of o.valueSizes) {
      for (let round = 1; round <= o.rounds; round++) {
        // The order turns each round (see bench/run.ts).
        for (const kind of round % 2 === 1 ? ['ours', 'memcached'] as const : ['memcached', 'ours'] as const) {
          process.stderr.write(`  ${valueBytes} B, round ${round}: ${kind} ...`);
          const r = await oneRun(kind, round, o, valueBytes, dir, outDir, cpus);
          results.push(r);
          process.stderr.write(` ${fmt(r.measure.opsPerSec)} ops/s, p99 ${fmt(r.measure.p99, 3)} ms, ` +
            `hit ratio ${fmt((r.measure.hitRatio ?? NaN) * 100, 1)}%, write amp ${fmt(writeAmplification(r), 2)} (measured phase ${fmt(steadyWriteAmplification(r), 2)}), ` +
            `load ${r.loadSeconds.toFixed(1)} s\n`);
        }
      }
    }
  } finally {
    killAll();
    if (o.dir === null) fs.rmSync(dir, { recursive: true, force: true });
  }
  const lines = [
    `# extstore: memcached-ts vs memcached (${commit})`,
    '',
    `-m ${o.memoryMb} -t ${o.threads} -o ${o.ext},ext_path=<file>:<size>G; per value size a data set ${o.ratio}x memory; ` +
    `memtier 1:9 set:get, Gaussian keys over the whole set, ${o.loadThreads}x${o.clients} connections, ` +
    `${o.seconds} s; medians of ${o.rounds} round(s), alternating.`,
  ];
  for (const valueBytes of o.valueSizes) {
    const mine = results.filter((r) => r.valueBytes === valueBytes);
    const of = (kind: string, f: (r: RunResult) => number | null): number =>
      median(mine.filter((r) => r.kind === kind).map((r) => f(r) ?? NaN));
    const row = (name: string, f: (r: RunResult) => number | null, digits: number): string => {
      const a = of('ours', f);
      const b = of('memcached', f);
      return `| ${name} | ${fmt(a, digits)} | ${fmt(b, digits)} | ${fmt(a / b, 2)}x |`;
    };
    const keys = keysFor(o, valueBytes);
    lines.push('', `## ${valueBytes}-byte values: ${keys} keys, ${((keys * valueBytes) / MIB).toFixed(0)} MiB`, '',
      '| | memcached-ts | memcached | ratio ours / memcached |',
      '|---|---|---|---|',
      row('ops/s', (r) => r.measure.opsPerSec, 0),
      row('hit ratio %', (r) => (r.measure.hitRatio === null ? null : r.measure.hitRatio * 100), 1),
      row('get hits/s (ops/s x 0.9 x hit ratio)', (r) => (r.measure.hitRatio === null ? null : r.measure.opsPerSec * 0.9 * r.measure.hitRatio), 0),
      row('p50 ms (lower is better)', (r) => r.measure.p50, 3),
      row('p99 ms (lower is better)', (r) => r.measure.p99, 3),
      row('p99.9 ms (lower is better)', (r) => r.measure.p999, 3),
      row('write amplification, load + measured (lower is better)', writeAmplification, 3),
      row('write amplification, measured phase (lower is better)', steadyWriteAmplification, 3),
      row('load s (lower is better)', (r) => r.loadSeconds, 1),
      ...STAT_KEYS.map((k) => row(k, (r) => (r.stats[k] === undefined ? null : Number(r.stats[k])), 0)));
    const curve = (kind: string): [number, number][] => PERCENTILES.map((q): [number, number] =>
      [q, of(kind, (r) => r.measure.curve.find(([p]) => p === q)?.[1] ?? null)]).filter(([, v]) => Number.isFinite(v));
    const svg = latencySvg(`${valueBytes}-byte values, ${o.ratio}x memory on extstore: latency by percentile (medians)`,
      [{ name: 'memcached-ts', color: '#3566b0', points: curve('ours') }, { name: 'memcached', color: '#e38b2c', points: curve('memcached') }]);
    fs.writeFileSync(path.join(outDir, `latency-${valueBytes}.svg`), svg);
    lines.push('', `![latency, ${valueBytes}-byte values](latency-${valueBytes}.svg)`);
  }
  const text = lines.join('\n') + '\n';
  fs.writeFileSync(path.join(outDir, 'results.md'), text);
  fs.writeFileSync(path.join(outDir, 'results.json'), JSON.stringify({ commit, options: o, results }, null, 2));
  process.stdout.write(text);
  process.stderr.write(`results in ${outDir}\n`);
}

interface Curve {
  name: string;
  color: string;
  points: [number, number][];
}

/**
 * Latency (ms, log scale) against percentile, the x axis spread as -log10(1 - p) so the tail
 * (99, 99.9, 99.99) gets as much room as the body.
 */
function latencySvg(title: string, curves: Curve[]): string {
  const W = 640;
  const H = 360;
  const L = 60;
  const R = 20;
  const T = 40;
  const B = 50;
  const xs = PERCENTILES.map((p) => -Math.log10(1 - p / 100));
  const x = (p: number): number => L + ((-Math.log10(1 - p / 100) - xs[0]) / (xs[xs.length - 1] - xs[0])) * (W - L - R);
  const all = curves.flatMap((c) => c.points.map(([, v]) => v)).filter((v) => v > 0);
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...all, 1))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...all, 1))));
  const y = (v: number): number => T + (1 - (Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (H - T - B);
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${title}</text>`];
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    out.push(`<line x1="${L}" x2="${W - R}" y1="${y(d).toFixed(1)}" y2="${y(d).toFixed(1)}" stroke="#ddd"/>`,
      `<text x="${L - 6}" y="${(y(d) + 4).toFixed(1)}" text-anchor="end">${d} ms</text>`);
  }
  for (const p of PERCENTILES) {
    out.push(`<line x1="${x(p).toFixed(1)}" x2="${x(p).toFixed(1)}" y1="${T}" y2="${H - B}" stroke="#eee"/>`,
      `<text x="${x(p).toFixed(1)}" y="${H - B + 16}" text-anchor="middle">p${p}</text>`);
  }
  curves.forEach((c, i) => {
    const pts = c.points.filter(([, v]) => v > 0).map(([p, v]) => `${x(p).toFixed(1)},${y(v).toFixed(1)}`);
    if (pts.length > 0) out.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${c.color}" stroke-width="2.5"/>`);
    for (const [p, v] of c.points) if (v > 0) out.push(`<circle cx="${x(p).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3" fill="${c.color}"/>`);
    out.push(`<rect x="${L + 10 + i * 150}" y="${H - 22}" width="14" height="4" fill="${c.color}"/>`,
      `<text x="${L + 30 + i * 150}" y="${H - 16}">${c.name}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

main().catch((e: unknown) => {
  killAll();
  process.stderr.write(`extstore bench: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(2);
});
