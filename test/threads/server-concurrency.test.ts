/**
 * -t 4 under concurrent, pipelined load from several processes (issue 12): invariants, not
 * timings. Load processes (load-client.cjs) open several connections each, which the kernel
 * spreads over the serving threads; afterwards counters add up, no cas update is lost, no
 * value is torn, and the server's own counters agree with what the clients saw. Runs against
 * the implementation under test (MCTS_TARGET=memcached checks the test itself). Every loop is
 * bounded in rounds and by a deadline; the server listens on 127.0.0.1 and is stopped by PID.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseStats } from '../helpers/replies';
import { LOOPBACK, startTarget, stopAll, trackProcess, type ServerProcess } from '../helpers/servers';
import { perKeyTotals, sentPerConnection, stressed, total, type Report } from './reports';

const CLIENT = path.join(__dirname, 'load-client.cjs');
const PROCESSES = 3;
const CONNECTIONS = 6;
const DEADLINE_MS = stressed(30_000);
/** Requests per write of each load-client.cjs connection (passed to it). */
const CLIENT_PIPELINE = 16;
const TIMEOUT_MS = stressed(90_000);


let server: ServerProcess | undefined;
afterEach(async () => {
  await stopAll(server);
  server = undefined;
});

function load(port: number, mode: string, rounds: number, keys: number): Promise<Report[]> {
  return Promise.all(Array.from({ length: PROCESSES }, (_, p) => new Promise<Report>((resolve, reject) => {
    const child = spawn(process.execPath, [CLIENT, String(port), mode, String(CONNECTIONS), String(rounds), String(keys), String(p + 1), String(DEADLINE_MS), String(CLIENT_PIPELINE)],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    trackProcess(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('exit', (code) => {
      if (code === 0) resolve(JSON.parse(out) as Report);
      else reject(new Error(`load process ${p} (${mode}) exited ${String(code)}: ${err}`));
    });
  })));
}

async function command(port: number, text: string, until: string): Promise<string> {
  const sock = net.connect(port, LOOPBACK);
  let got = '';
  await new Promise<void>((resolve, reject) => {
    sock.on('error', reject);
    sock.on('data', (d) => {
      got += d.toString('latin1');
      if (got.endsWith(until)) resolve();
    });
    sock.write(text);
  });
  sock.destroy();
  return got;
}


describe('-t 4 under concurrent pipelined load', () => {
  it('incr from 18 connections in 3 processes: every counter equals the increments sent', async () => {
    server = await startTarget(['-t', '4']);
    const keys = 10;
    await command(server.port, Array.from({ length: keys }, (_, k) => `set k${k} 0 0 1\r\n0\r\n`).join(''), 'STORED\r\n'.repeat(keys));
    const rounds = stressed(2_000);
    const reports = await load(server.port, 'incr', rounds, keys);
    const totals = perKeyTotals(reports, keys);
    const reply = await command(server.port, `get ${Array.from({ length: keys }, (_, k) => `k${k}`).join(' ')}\r\n`, 'END\r\n');
    for (let k = 0; k < keys; k++) expect(reply).toContain(`VALUE k${k} 0 ${String(totals[k]).length}\r\n${totals[k]}\r\n`);
    const sent = total(reports, 'done');
    expect(sent).toBe(PROCESSES * CONNECTIONS * sentPerConnection(rounds, CLIENT_PIPELINE));
    const stats = parseStats(await command(server.port, 'stats\r\n', 'END\r\n'));
    expect(Number(stats.get('incr_hits'))).toBe(sent);
    expect(stats.get('threads')).toBe('4');
  }, TIMEOUT_MS);

  it('cas read-modify-write loops from 18 connections lose no update', async () => {
    server = await startTarget(['-t', '4']);
    const keys = 4;
    await command(server.port, Array.from({ length: keys }, (_, k) => `set k${k} 0 0 1\r\n0\r\n`).join(''), 'STORED\r\n'.repeat(keys));
    const rounds = stressed(300);
    const reports = await load(server.port, 'cas', rounds, keys);
    const totals = perKeyTotals(reports, keys);
    const reply = await command(server.port, `get ${Array.from({ length: keys }, (_, k) => `k${k}`).join(' ')}\r\n`, 'END\r\n');
    for (let k = 0; k < keys; k++) expect(reply).toContain(`VALUE k${k} 0 ${String(totals[k]).length}\r\n${totals[k]}\r\n`);
    const updates = PROCESSES * CONNECTIONS * sentPerConnection(rounds, CLIENT_PIPELINE);
    expect(total(reports, 'done')).toBe(updates);
    const stats = parseStats(await command(server.port, 'stats\r\n', 'END\r\n'));
    expect(Number(stats.get('cas_hits'))).toBe(updates);
    expect(Number(stats.get('cas_badval'))).toBe(total(reports, 'retries'));
  }, TIMEOUT_MS);

  it('self-checking values of random sizes under eviction are never torn, and hits add up', async () => {
    server = await startTarget(['-t', '4', '-m', '32']);
    const reports = await load(server.port, 'values', stressed(3_000), 20_000);
    const sum = (f: Exclude<keyof Report, 'perKey'>): number => total(reports, f);
    expect(sum('torn')).toBe(0);
    expect(sum('hits')).toBeGreaterThan(1000);
    const stats = parseStats(await command(server.port, 'stats\r\n', 'END\r\n'));
    expect(Number(stats.get('get_hits'))).toBe(sum('hits'));
    expect(Number(stats.get('get_misses'))).toBe(sum('misses'));
    expect(Number(stats.get('cmd_set'))).toBe(sum('stored') + sum('noMemory'));
    expect(Number(stats.get('evictions'))).toBeGreaterThan(0);
    // The per-class view agrees with the totals (stats items sums every thread's rows too).
    const items = parseStats(await command(server.port, 'stats slabs\r\n', 'END\r\n'));
    let classHits = 0;
    for (const [name, value] of items) if (/^\d+:get_hits$/.test(name)) classHits += Number(value);
    expect(classHits).toBe(sum('hits'));
  }, TIMEOUT_MS);

  it('extstore: values on disk, read on every thread, are never torn; deletions on every thread reach the page counters', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-ext-threads-'));
    try {
      // ext_item_age=0: the writer moves every COLD value to disk, so most gets read from it.
      server = await startTarget(['-t', '4', '-m', '16', '-o', `ext_path=${dir}/ext:128m,ext_item_age=0,ext_recache_rate=50`]);
      const keys = 4_000;
      const reports = await load(server.port, 'disk', stressed(2_000), keys);
      const sum = (f: Exclude<keyof Report, 'perKey'>): number => total(reports, f);
      expect(sum('torn')).toBe(0);
      expect(sum('hits')).toBeGreaterThan(1000);
      const stats = parseStats(await command(server.port, 'stats\r\n', 'END\r\n'));
      expect(stats.get('threads')).toBe('4');
      // Served on four threads (before, extstore made the server say it served on one).
      if (server.kind !== 'memcached') expect(fs.readFileSync(server.logPath, 'utf8')).not.toContain('serving on one thread');
      // As memcached counts them: a get that finds a header is a hit at once; when its value
      // is gone from disk by the time it is read (a page evicted for room, which the longer
      // MCTS_STRESS runs reach), it is counted again in miss_from_extstore and answered as a miss.
      const lostOnDisk = Number(stats.get('miss_from_extstore'));
      expect(Number(stats.get('get_hits')) - lostOnDisk).toBe(sum('hits'));
      expect(Number(stats.get('get_misses')) + lostOnDisk).toBe(sum('misses'));
      expect(Number(stats.get('delete_hits'))).toBe(sum('deleted'));
      expect(Number(stats.get('get_extstore'))).toBeGreaterThan(500);
      expect(Number(stats.get('extstore_objects_written'))).toBeGreaterThan(1000);
      expect(Number(stats.get('badcrc_from_extstore'))).toBe(0);
      // Delete every key from 12 connections (on several threads): every header goes, and
      // with it every object thread 0's pages count.
      const conns = 12;
      await Promise.all(Array.from({ length: conns }, (_, c) => {
        const mine = Array.from({ length: keys }, (_, k) => k).filter((k) => k % conns === c);
        return command(server!.port, mine.map((k) => `delete k${k} noreply\r\n`).join('') + 'mn\r\n', 'MN\r\n');
      }));
      let used = -1;
      for (const deadline = Date.now() + 5_000; Date.now() < deadline;) {
        const after = parseStats(await command(server.port, 'stats\r\n', 'END\r\n'));
        used = Number(after.get('extstore_objects_used'));
        if (used === 0 && Number(after.get('curr_items')) === 0) {
          expect(Number(after.get('extstore_bytes_used'))).toBe(0);
          break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(used).toBe(0);
    } finally {
      await stopAll(server);
      server = undefined;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, TIMEOUT_MS);
});
