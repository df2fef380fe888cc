/**
 * Per-command service-time histograms for the Prometheus endpoint
 * (`memcached_command_duration_seconds{command}`).
 *
 * What it is for: counting how long the server spends on each command, in fixed buckets kept
 * in typed arrays, so that an observation is a bucket search and three array writes (no
 * object, no label hashing). The protocol times a command only while `enabled` is true, which
 * the metrics endpoint sets when it starts: without -o metrics_listen the cost is one boolean
 * test per command.
 * What it is not for: end-to-end latency. It measures the server's own work on a request
 * (parsing, the engine, building the reply), not the time the request or reply spends in
 * socket buffers, nor, for storage commands, the wait for the value's bytes.
 *
 * One recorder per thread (`commandLatency`, a module-level object of each isolate): with -t N
 * the serving threads share one table (share()), each counting in a row of its own, so the
 * endpoint on thread 0 sums every thread's commands; the on/off word is shared too. Like the
 * process metrics, it is not per server when tests run several servers in one process.
 */

/** Upper bounds in seconds: memcached commands take microseconds; the tail goes to 100 ms. */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 1e-1,
];
/** Command slots: the protocol's Op numbers, which stay well below this. */
export const LATENCY_SLOTS = 64;

export interface LatencySnapshot {
  readonly slot: number;
  /** Cumulative counts per bucket (le = LATENCY_BUCKETS_SECONDS[i]), then +Inf. */
  readonly cumulative: number[];
  readonly sumSeconds: number;
  readonly count: number;
}

const BUCKETS = LATENCY_BUCKETS_SECONDS.length + 1;
/** A thread's row of float64s: counts (LATENCY_SLOTS x BUCKETS), then sums, then totals. */
const SUMS_AT = LATENCY_SLOTS * BUCKETS;
const TOTALS_AT = SUMS_AT + LATENCY_SLOTS;
const ROW = TOTALS_AT + LATENCY_SLOTS;
/** A shared table's first 8 bytes: the on/off word (Int32), padded. */
const HEADER_BYTES = 8;

/** Bytes of a table shared by `threads` serving threads (CommandLatency.share). */
export function latencyTableBytes(threads: number): number {
  return HEADER_BYTES + threads * ROW * 8;
}

export class CommandLatency {
  /** This thread's row: counts[slot * buckets + i] observations in bucket i (not cumulative). */
  private counts!: Float64Array<ArrayBufferLike>;
  private sums!: Float64Array<ArrayBufferLike>;
  private totals!: Float64Array<ArrayBufferLike>;
  /** Every row (one when not shared), for snapshot(). */
  private rows: Float64Array<ArrayBufferLike>;
  private rowCount = 1;
  private flag: Int32Array<ArrayBufferLike> = new Int32Array(1);
  /** This thread's commands are not timed (the JIT warm-up's scratch traffic): see suspend(). */
  private suspended = false;

  constructor() {
    this.rows = new Float64Array(ROW);
    this.useRow(this.rows);
  }

  /** Count into `row` (ROW float64s: counts, sums, totals). */
  private useRow(row: Float64Array<ArrayBufferLike>): void {
    this.counts = row.subarray(0, SUMS_AT);
    this.sums = row.subarray(SUMS_AT, TOTALS_AT);
    this.totals = row.subarray(TOTALS_AT, ROW);
  }

  /** Set by the metrics endpoint; the protocol times commands only while true (every thread's). */
  get enabled(): boolean {
    return !this.suspended && this.flag[0] !== 0;
  }

  set enabled(on: boolean) {
    this.flag[0] = on ? 1 : 0;
  }

  /** Run `fn` with this thread's commands untimed (the other threads' go on being timed). */
  suspend<T>(fn: () => T): T {
    const was = this.suspended;
    this.suspended = true;
    try {
      return fn();
    } finally {
      this.suspended = was;
    }
  }

  /**
   * Count into row `thread` of a table in `buffer` (latencyTableBytes(threads)) that every
   * serving thread shares; snapshot() then sums every row. What this thread counted before
   * (and whether it was enabled) carries over.
   */
  share(buffer: SharedArrayBuffer, thread: number, threads: number): void {
    if (buffer.byteLength !== latencyTableBytes(threads) || thread < 0 || thread >= threads) throw new Error('latency table: wrong size or thread');
    const was = this.rows.subarray(0, ROW);
    const wasOn = this.enabled;
    const flag = new Int32Array(buffer, 0, 1);
    if (wasOn) flag[0] = 1;
    this.flag = flag;
    this.rows = new Float64Array(buffer, HEADER_BYTES, threads * ROW);
    this.rowCount = threads;
    const row = this.rows.subarray(thread * ROW, (thread + 1) * ROW);
    for (let i = 0; i < ROW; i++) row[i] += was[i];
    this.useRow(row);
  }

  /** One command of slot `slot` took `seconds`. */
  observe(slot: number, seconds: number): void {
    if (slot < 0 || slot >= LATENCY_SLOTS) return;
    const bounds = LATENCY_BUCKETS_SECONDS;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]) i++;
    this.counts[slot * BUCKETS + i]++;
    this.sums[slot] += seconds;
    this.totals[slot]++;
  }

  /** Every slot with at least one observation, summed over every thread's row. */
  snapshot(): LatencySnapshot[] {
    const out: LatencySnapshot[] = [];
    const rows = this.rows;
    const sumOf = (at: number): number => {
      let v = 0;
      for (let t = 0; t < this.rowCount; t++) v += rows[t * ROW + at];
      return v;
    };
    for (let slot = 0; slot < LATENCY_SLOTS; slot++) {
      const count = sumOf(TOTALS_AT + slot);
      if (count === 0) continue;
      const cumulative: number[] = [];
      let running = 0;
      for (let i = 0; i < BUCKETS; i++) {
        running += sumOf(slot * BUCKETS + i);
        cumulative.push(running);
      }
      out.push({ slot, cumulative, sumSeconds: sumOf(SUMS_AT + slot), count });
    }
    return out;
  }

  /** Zero every thread's counts. */
  reset(): void {
    this.rows.fill(0);
  }
}

/** The process's recorder: the text protocol observes into it, the endpoint reads it. */
export const commandLatency = new CommandLatency();

/** A clock for timing commands: milliseconds, sub-microsecond resolution, no allocation. */
export function nowMs(): number {
  return performance.now();
}
