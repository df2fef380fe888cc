/**
 * Memory is bounded by -m: filling the cache with 1,000,000 distinct 100-byte values under
 * -m 64 at -t 1 and at -t 4 keeps resident memory under -m plus the fixed overhead the README states
 * (for the first thread and for each further one), and
 * `stats` shows the evictions that made room.
 */
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseStats } from '../helpers/replies';
import { LOOPBACK, startTarget, stopAll, type ServerProcess } from '../helpers/servers';

/** The README's stated overhead above -m for this workload (Node runtime, hash index, buffers), at -t 1. */
const OVERHEAD_MIB_MAX = 48;
/** The README's stated overhead of each serving thread after the first (a V8 isolate and its heap). */
const THREAD_OVERHEAD_MIB_MAX = 16;
const MEMORY_MIB = 64;
const VALUES = 1_000_000;
const BATCH = 5_000;

function send(sock: net.Socket, data: Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (sock.write(data)) resolve();
    else sock.once('drain', () => resolve());
  });
}

describe.each([1, 4])(`fill ${VALUES} values under -m ${MEMORY_MIB} at -t %i`, (THREADS) => {
  let server: ServerProcess;

  beforeAll(async () => {
    server = await startTarget(['-m', String(MEMORY_MIB), '-t', String(THREADS)]);
  });

  afterAll(async () => {
    await stopAll(server);
  });

  it('holds what fits, evicts the rest, and stays within -m plus the stated overhead', async () => {
    const sock = net.connect(server.port, LOOPBACK);
    await new Promise((r) => sock.once('connect', r));
    let received = '';
    sock.on('data', (d) => {
      received += d.toString('latin1');
    });
    const value = 'v'.repeat(100);
    for (let start = 0; start < VALUES; start += BATCH) {
      let chunk = '';
      for (let i = start; i < start + BATCH; i++) chunk += `set key:${i} 0 0 100 noreply\r\n${value}\r\n`;
      await send(sock, Buffer.from(chunk, 'latin1'));
    }
    await send(sock, Buffer.from('stats\r\n'));
    const deadline = Date.now() + 60_000;
    while (!received.endsWith('END\r\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    sock.destroy();
    const stats = parseStats(received);
    const items = Number(stats.get('curr_items'));
    const evictions = Number(stats.get('evictions'));
    const rssMib = server.rssKb() / 1024;
    console.log(`${server.kind}: curr_items=${items} evictions=${evictions} rss=${rssMib.toFixed(1)} MiB`);
    expect(items).toBeGreaterThan(300_000);
    expect(evictions).toBeGreaterThan(0);
    expect(items + evictions).toBeGreaterThanOrEqual(VALUES * 0.99);
    // -t N > 1: N serving threads beside the main thread, which then serves none (doc/threads.md).
    const servingWorkers = THREADS > 1 ? THREADS : 0;
    expect(rssMib).toBeLessThan(MEMORY_MIB + OVERHEAD_MIB_MAX + servingWorkers * THREAD_OVERHEAD_MIB_MAX);
  });
});
