/**
 * The request path's optimized code outlives the objects it was compiled for.
 *
 * V8 holds the hidden classes of the objects its optimized code was compiled for weakly. When
 * those objects are gone, a full GC frees the classes and discards the code ("marking
 * dependent code ... reason: weak objects" under --trace-deopt), and the next clients run
 * interpreted. Two places keep such objects on purpose (doc/network.md):
 *
 * - the last closed connection of each kind (src/net/connection.ts, shapeKeepers), for the
 *   moment every client has gone;
 * - the JIT warm-up's sessions and scratch engine (src/protocol/warmup.ts), for an idle server
 *   waiting for its first client.
 *
 * Each case runs the built server under --trace-opt and --trace-deopt, gets `retrieve` (the
 * text get) optimized, forces a full GC with a heap snapshot (--heapsnapshot-signal) and looks
 * for that deopt of the request path. Both can fail: with keepShapes() made a no-op in the
 * built server the first listed 3 or 4 of these functions (retrieve, parseRequest, item,
 * processLine); with the warm-up's objects dropped, the second listed 8 (2026-12-07, Node 20).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { lines, RawClient } from '../helpers/client';
import { canConnect, freePort, LOOPBACK, REPO_ROOT, sleep, stopProcess, trackProcess } from '../helpers/servers';

const SERVER = path.join(REPO_ROOT, 'bin', 'memcached-ts.js');
const START_TIMEOUT_MS = 15_000;
/** How long the load may take to get the get path optimized. */
const OPTIMIZE_TIMEOUT_MS = 20_000;
/** How long the heap snapshot (a full GC) may take to be written, and the close to be seen. */
const SNAPSHOT_TIMEOUT_MS = 20_000;
/** The warm-up's length in the second case: long enough for `retrieve` to be compiled on a busy machine. */
const WARMUP_MS = 1_000;
/** Requests per pipelined batch of the load: half sets, half gets. */
const BATCH_PAIRS = 50;
/** Functions of the text request path (src/protocol/text/session.ts, src/net/connection.ts). */
const REQUEST_PATH = ['retrieve', 'feed', 'processLine', 'parseRequest', 'parseSimple', 'item', 'onBytes'];
const RETRIEVE_OPTIMIZED = /completed optimizing[^\n]*<JSFunction retrieve /;

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

interface Traced {
  child: ChildProcess;
  port: number;
  dir: string;
  /** What V8 printed so far (its --trace-opt/--trace-deopt lines go to standard output). */
  trace: () => string;
  /** What the server logged so far (standard error). */
  log: () => string;
}

async function startTraced(extraArgs: string[]): Promise<Traced> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-optimized-code-'));
  dirs.push(dir);
  const port = await freePort();
  const child = spawn(process.execPath, ['--trace-opt', '--trace-deopt', '--heapsnapshot-signal=SIGUSR2',
    `--diagnostic-dir=${dir}`, SERVER, '-p', String(port), '-l', LOOPBACK, '-U', '0', '-t', '1', '-m', '16', '-vv',
    ...extraArgs,
    ...(process.getuid?.() === 0 ? ['-u', 'root'] : [])],
  { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  trackProcess(child);
  // Kept apart: a chunk of one stream must not land inside a line of the other.
  let trace = '';
  let log = '';
  child.stdout?.on('data', (d: Buffer) => { trace += d.toString('latin1'); });
  child.stderr?.on('data', (d: Buffer) => { log += d.toString('latin1'); });
  const startBy = Date.now() + START_TIMEOUT_MS;
  while (!(await canConnect(port))) {
    if (child.exitCode !== null || Date.now() > startBy) {
      await stopProcess(child);
      throw new Error(`server did not start: ${log.slice(-2000)}`);
    }
    await sleep(50);
  }
  return { child, port, dir, trace: () => trace, log: () => log };
}

/** The whole snapshot is on disk: Node creates the file before the GC and writes it after. */
function snapshotComplete(dir: string): boolean {
  const name = fs.readdirSync(dir).find((f) => f.endsWith('.heapsnapshot'));
  if (name === undefined) return false;
  const file = path.join(dir, name);
  const size = fs.statSync(file).size;
  if (size === 0) return false;
  const fd = fs.openSync(file, 'r');
  try {
    const last = Buffer.alloc(1);
    fs.readSync(fd, last, 0, 1, size - 1);
    return last[0] === 0x7d; // '}'
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Force one full GC (a heap snapshot). Returns the request-path functions deoptimized for weak
 * objects since `retrieve` was optimized, by this GC or any before it. A "weak objects" line
 * whose function cannot be read fails the test: V8 changed its output, and the check would
 * otherwise see nothing.
 */
async function discardedByFullGc(s: Traced): Promise<string[]> {
  s.child.kill('SIGUSR2');
  const snapshotBy = Date.now() + SNAPSHOT_TIMEOUT_MS;
  while (!snapshotComplete(s.dir)) {
    if (Date.now() > snapshotBy) throw new Error('no complete heap snapshot was written');
    await sleep(100);
  }
  // The trace lines of that GC come through a pipe.
  await sleep(500);
  const from = s.trace().search(RETRIEVE_OPTIMIZED);
  expect(from).toBeGreaterThanOrEqual(0);
  const weak = s.trace().slice(from).split('\n').filter((l) => l.includes('reason: weak objects'));
  const names = weak.map((l) => /SharedFunctionInfo ([^>]*)>/.exec(l)?.[1]);
  expect(names, `unreadable deopt lines: ${weak.join('\n')}`).not.toContain(undefined);
  return names.filter((name): name is string => name !== undefined && REQUEST_PATH.includes(name));
}

it('a full GC after the last client closed keeps the get path optimized', async () => {
  const s = await startTraced([]);
  try {
    const value = 'v'.repeat(32);
    let batch = '';
    for (let i = 0; i < BATCH_PAIRS; i++) batch += `set key:${i} 0 0 ${value.length}\r\n${value}\r\nget key:${i}\r\n`;
    // STORED, VALUE, the data and END per pair: 4 lines.
    const client = await RawClient.connect(s.port);
    const optimizeBy = Date.now() + OPTIMIZE_TIMEOUT_MS;
    let batches = 0;
    try {
      while (!RETRIEVE_OPTIMIZED.test(s.trace())) {
        if (Date.now() > optimizeBy) throw new Error(`retrieve was not optimized after ${batches} batches`);
        await client.request(batch, lines(4 * BATCH_PAIRS));
        batches++;
      }
    } finally {
      client.close();
    }
    // The server has closed its side (-vv: "<N connection closed.").
    const closedBy = Date.now() + SNAPSHOT_TIMEOUT_MS;
    while (!/<\d+ connection closed\./.test(s.log())) {
      if (Date.now() > closedBy) throw new Error('the server did not report the close');
      await sleep(20);
    }
    expect(await discardedByFullGc(s)).toEqual([]);
  } finally {
    await stopProcess(s.child);
  }
}, 60_000);

it('a full GC before the first client keeps what the JIT warm-up compiled', async () => {
  const s = await startTraced(['-o', `warmup_ms=${WARMUP_MS}`]);
  try {
    // The warm-up ran before the port answered; V8 installs the code it compiled for it on
    // its next turn, if not before.
    const compiledBy = Date.now() + START_TIMEOUT_MS;
    while (!RETRIEVE_OPTIMIZED.test(s.trace()) && Date.now() < compiledBy) await sleep(50);
    expect(s.trace()).toMatch(RETRIEVE_OPTIMIZED);
    expect(await discardedByFullGc(s)).toEqual([]);
  } finally {
    await stopProcess(s.child);
  }
}, 60_000);
