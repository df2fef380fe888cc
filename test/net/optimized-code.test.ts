/**
 * The request path's optimized code outlives the last client (src/net/connection.ts,
 * shapeKeepers; doc/network.md, "Code that survives the last client").
 *
 * V8 holds the hidden classes of a connection's objects weakly in the code it optimized for
 * them. Without a closed connection kept, a full GC after every client has gone frees those
 * classes and discards the optimized get path ("marking dependent code ... reason: weak
 * objects" under --trace-deopt). The test runs the built server under --trace-opt and
 * --trace-deopt, sends sets and gets until `retrieve` (the text get) is optimized, closes the
 * client, forces a full GC with a heap snapshot (--heapsnapshot-signal) and looks for that
 * deopt of the request path's functions. It can fail: with keepShapes() made a no-op in the
 * built server it listed retrieve, parseRequest and item (2026-12-07, Node 20).
 */
import { spawn } from 'node:child_process';
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
/** How long the heap snapshot (a full GC) may take to be written. */
const SNAPSHOT_TIMEOUT_MS = 20_000;
/** Requests per pipelined batch of the load: half sets, half gets. */
const BATCH_PAIRS = 50;
/** Functions of the text request path (src/protocol/text/session.ts, src/net/connection.ts). */
const REQUEST_PATH = ['retrieve', 'feed', 'processLine', 'parseRequest', 'parseSimple', 'item', 'onBytes'];

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function snapshotWritten(dir: string): boolean {
  return fs.readdirSync(dir).some((f) => f.endsWith('.heapsnapshot'));
}

it('a full GC after the last client closed keeps the get path optimized', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-optimized-code-'));
  dirs.push(dir);
  const port = await freePort();
  const child = spawn(process.execPath, ['--trace-opt', '--trace-deopt', '--heapsnapshot-signal=SIGUSR2', SERVER,
    '-p', String(port), '-l', LOOPBACK, '-U', '0', '-t', '1', '-m', '16', ...(process.getuid?.() === 0 ? ['-u', 'root'] : [])],
  { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  trackProcess(child);
  let trace = '';
  child.stdout.on('data', (d: Buffer) => { trace += d.toString('latin1'); });
  child.stderr.on('data', (d: Buffer) => { trace += d.toString('latin1'); });
  try {
    const startBy = Date.now() + START_TIMEOUT_MS;
    while (!(await canConnect(port))) {
      if (child.exitCode !== null || Date.now() > startBy) throw new Error(`server did not start: ${trace.slice(-2000)}`);
      await sleep(50);
    }

    const value = 'v'.repeat(32);
    let batch = '';
    for (let i = 0; i < BATCH_PAIRS; i++) batch += `set key:${i} 0 0 ${value.length}\r\n${value}\r\nget key:${i}\r\n`;
    // STORED and END per pair, and VALUE + data lines per get: 4 lines a pair.
    const client = await RawClient.connect(port);
    const optimizeBy = Date.now() + OPTIMIZE_TIMEOUT_MS;
    let batches = 0;
    try {
      while (!/completed optimizing[^\n]*<JSFunction retrieve /.test(trace)) {
        if (Date.now() > optimizeBy) throw new Error(`retrieve was not optimized after ${batches} batches`);
        await client.request(batch, lines(4 * BATCH_PAIRS));
        batches++;
      }
    } finally {
      client.close();
    }
    // Let the server see the close, then one full GC.
    await sleep(300);
    const mark = trace.length;
    child.kill('SIGUSR2');
    const snapshotBy = Date.now() + SNAPSHOT_TIMEOUT_MS;
    while (!snapshotWritten(dir)) {
      if (Date.now() > snapshotBy) throw new Error('no heap snapshot was written');
      await sleep(100);
    }
    await sleep(500);
    const discarded = trace.slice(mark).split('\n')
      .filter((l) => l.includes('reason: weak objects'))
      .map((l) => /SharedFunctionInfo (\w+)>/.exec(l)?.[1] ?? l)
      .filter((name) => REQUEST_PATH.includes(name));
    expect(discarded).toEqual([]);
  } finally {
    await stopProcess(child);
  }
}, 60_000);
