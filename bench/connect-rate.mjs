#!/usr/bin/env node
// Connection rate side by side with memcached: clients that connect, send `version`, read the
// reply and close, over and over (PHP's clients without persistent connections, health
// checks). Alternates memcached-ts and memcached, prints connections/s, client latency and the
// server's CPU per connection (/proc/<pid>/stat, every thread) per run, then medians and
// ratios. Servers listen on 127.0.0.1 only and are stopped by PID. doc/network.md,
// "Connections".
//
//   npm run bench:connect -- [--threads N] [--rounds R] [--seconds S] [--concurrency C]
//                            [--memcached PATH] [--no-pin]
//
// With --threads 1 (and without --no-pin) the servers run on CPU 0 and the client on CPU 1;
// with more threads both are unpinned, as a default -t 4 server runs.
import { spawn, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;
/** A client run may overrun its seconds by this much before it is killed. */
const CLIENT_GRACE_MS = 15_000;

function parseArgs(argv) {
  const o = {
    threads: 1, rounds: 3, seconds: 4, concurrency: 8, pin: true,
    memcached: path.join(process.env.MCTS_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'memcached-ts'), 'memcached-1.6.45', 'memcached'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const count = (v, max) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${a} takes an integer 1..${max}`);
      return n;
    };
    if (a === '--threads') o.threads = count(next(), 64);
    else if (a === '--rounds') o.rounds = count(next(), 20);
    else if (a === '--seconds') o.seconds = count(next(), 120);
    else if (a === '--concurrency') o.concurrency = count(next(), 256);
    else if (a === '--memcached') o.memcached = next();
    else if (a === '--no-pin') o.pin = false;
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

/** The client side, run as its own process: `--client PORT CONCURRENCY SECONDS`. */
function runClient(port, concurrency, seconds) {
  const end = Date.now() + seconds * 1000;
  const latenciesUs = [];
  let done = 0;
  let errors = 0;
  let live = concurrency;
  const one = () => {
    if (Date.now() >= end) {
      if (--live === 0) {
        latenciesUs.sort((a, b) => a - b);
        const at = (q) => latenciesUs.length === 0 ? 0 : latenciesUs[Math.min(latenciesUs.length - 1, Math.floor(latenciesUs.length * q))];
        process.stdout.write(JSON.stringify({ connections: done, errors, seconds, p50Us: at(0.5), p99Us: at(0.99) }) + '\n');
      }
      return;
    }
    const t0 = process.hrtime.bigint();
    const s = net.connect(port, '127.0.0.1', () => s.write('version\r\n'));
    let finished = false;
    const finish = (ok) => {
      if (finished) return;
      finished = true;
      if (ok) {
        done++;
        latenciesUs.push(Number(process.hrtime.bigint() - t0) / 1e3);
      } else {
        errors++;
      }
      s.destroy();
      one();
    };
    s.once('data', (d) => finish(d.toString('latin1').startsWith('VERSION ')));
    s.on('error', () => finish(false));
    s.on('close', () => finish(false));
  };
  for (let i = 0; i < concurrency; i++) one();
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function answersVersion(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write('version\r\n'));
    s.setTimeout(1000, () => { s.destroy(); resolve(false); });
    s.once('data', (d) => { s.destroy(); resolve(d.toString('latin1').startsWith('VERSION ')); });
    s.on('error', () => resolve(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function hasTaskset() {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** utime + stime of every thread of `pid`, in clock ticks. */
function cpuTicks(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

async function stopByPid(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

async function measure(kind, o, pinned) {
  const port = await freePort();
  const args = ['-p', String(port), '-U', '0', '-l', '127.0.0.1', '-t', String(o.threads), '-c', '4096'];
  if (process.getuid?.() === 0) args.push('-u', 'root');
  const command = kind === 'ours' ? [process.execPath, path.join(ROOT, 'bin', 'memcached-ts.js'), ...args] : [o.memcached, ...args];
  const serverCmd = pinned ? ['taskset', '-c', '0', ...command] : command;
  const server = spawn(serverCmd[0], serverCmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  server.stderr.on('data', (d) => { log += d.toString(); });
  try {
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await answersVersion(port))) {
      if (server.exitCode !== null || Date.now() > deadline) throw new Error(`${kind} did not start: ${log}`);
      await sleep(50);
    }
    await sleep(500);
    const before = cpuTicks(server.pid);
    const clientCmd = [process.execPath, fileURLToPath(import.meta.url), '--client', String(port), String(o.concurrency), String(o.seconds)];
    const full = pinned ? ['taskset', '-c', '1', ...clientCmd] : clientCmd;
    const out = execFileSync(full[0], full.slice(1), { encoding: 'utf8', timeout: o.seconds * 1000 + CLIENT_GRACE_MS });
    const ticks = cpuTicks(server.pid) - before;
    const r = JSON.parse(out.trim().split('\n').pop());
    const ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    return {
      rate: r.connections / r.seconds, p50Us: r.p50Us, p99Us: r.p99Us, errors: r.errors,
      cpuUsPerConnection: r.connections === 0 ? 0 : (ticks / ticksPerSecond) * 1e6 / r.connections,
    };
  } finally {
    await stopByPid(server);
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main() {
  if (process.argv[2] === '--client') {
    runClient(Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5]));
    return;
  }
  const o = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(o.memcached)) throw new Error(`no memcached at ${o.memcached} (bash scripts/install-test-deps.sh builds 1.6.45; or --memcached PATH)`);
  const pinned = o.pin && o.threads === 1 && os.availableParallelism() >= 2 && hasTaskset();
  console.log(`connect, version, close from ${o.concurrency} connections at once, ${o.seconds} s per run, -t ${o.threads}, ` +
    `${pinned ? 'servers on CPU 0, client on CPU 1' : 'unpinned'}, ${o.rounds} alternating rounds`);
  const runs = { ours: [], memcached: [] };
  for (let round = 1; round <= o.rounds; round++) {
    for (const kind of ['ours', 'memcached']) {
      const m = await measure(kind, o, pinned);
      runs[kind].push(m);
      console.log(`round ${round} ${kind.padEnd(9)} ${Math.round(m.rate).toLocaleString('en-US').padStart(7)} connections/s  ` +
        `p50 ${Math.round(m.p50Us)} µs  p99 ${Math.round(m.p99Us)} µs  server CPU ${m.cpuUsPerConnection.toFixed(0)} µs/connection` +
        (m.errors > 0 ? `  (${m.errors} failed)` : ''));
    }
  }
  const ratio = (f) => median(runs.ours.map((m, i) => f(m) / f(runs.memcached[i])));
  console.log(`medians: memcached-ts ${Math.round(median(runs.ours.map((m) => m.rate)))} connections/s, ` +
    `${median(runs.ours.map((m) => m.cpuUsPerConnection)).toFixed(0)} µs/connection; memcached ` +
    `${Math.round(median(runs.memcached.map((m) => m.rate)))} connections/s, ${median(runs.memcached.map((m) => m.cpuUsPerConnection)).toFixed(0)} µs/connection`);
  console.log(`ratio ours/memcached (median of per-round ratios): connections/s ${ratio((m) => m.rate).toFixed(2)}x, ` +
    `server CPU per connection ${ratio((m) => m.cpuUsPerConnection).toFixed(2)}x`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
