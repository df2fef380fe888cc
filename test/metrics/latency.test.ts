/**
 * CommandLatency (src/metrics/latency.ts): with -t N every serving thread counts into its own
 * row of one shared table and the endpoint's snapshot sums the rows; the on/off word is
 * shared, the warm-up's suspension is not. Real threads, so the table really is shared.
 */
import { Worker } from 'node:worker_threads';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CommandLatency, latencyTableBytes } from '../../src/metrics/latency';

const REPO = path.resolve(__dirname, '..', '..');

/** A worker thread that counts `n` observations of slot `slot` into row `thread` of `table`. */
function countIn(table: SharedArrayBuffer, thread: number, threads: number, slot: number, n: number): Promise<void> {
  const source = `
    const { workerData, parentPort } = require('node:worker_threads');
    const { CommandLatency } = require(${JSON.stringify(path.join(REPO, 'dist', 'metrics', 'latency.js'))});
    const l = new CommandLatency();
    l.share(workerData.table, workerData.thread, workerData.threads);
    if (!l.enabled) throw new Error('the shared on/off word was not seen');
    for (let i = 0; i < workerData.n; i++) l.observe(workerData.slot, 3e-6);
    // Suspended (the warm-up): not counted, and the other threads stay enabled.
    l.suspend(() => { if (l.enabled) throw new Error('suspended but enabled'); });
    parentPort.postMessage('done');`;
  return new Promise((resolve, reject) => {
    const w = new Worker(source, { eval: true, workerData: { table, thread, threads, slot, n } });
    w.once('message', () => resolve());
    w.once('error', reject);
  });
}

describe('CommandLatency across threads', () => {
  it('sums every thread\'s row; the on/off word is shared; what was counted before sharing carries over', async () => {
    const threads = 3;
    const table = new SharedArrayBuffer(latencyTableBytes(threads));
    const main = new CommandLatency();
    main.enabled = true;
    main.observe(5, 2e-6);
    main.share(table, 0, threads);
    expect(main.enabled).toBe(true);
    await Promise.all([countIn(table, 1, threads, 5, 1000), countIn(table, 2, threads, 7, 250)]);
    main.observe(5, 2e-6);
    const snap = main.snapshot();
    const five = snap.find((h) => h.slot === 5);
    const seven = snap.find((h) => h.slot === 7);
    expect(five?.count).toBe(1002);
    expect(seven?.count).toBe(250);
    // 2 µs and 3 µs fall in the (2.5 µs, 5 µs] bucket and below: cumulative counts end at the total.
    expect(five?.cumulative.at(-1)).toBe(1002);
    expect(five?.cumulative[1]).toBe(2);
    expect(five?.sumSeconds).toBeCloseTo(2 * 2e-6 + 1000 * 3e-6, 12);
    main.enabled = false;
    expect(main.suspend(() => main.enabled)).toBe(false);
    main.reset();
    expect(main.snapshot()).toEqual([]);
  });

  it('refuses a table of the wrong size or a row outside it', () => {
    const l = new CommandLatency();
    expect(() => l.share(new SharedArrayBuffer(latencyTableBytes(2)), 0, 3)).toThrow(/latency table/);
    expect(() => l.share(new SharedArrayBuffer(latencyTableBytes(2)), 2, 2)).toThrow(/latency table/);
  });
});
