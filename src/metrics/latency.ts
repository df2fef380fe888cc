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
 * One recorder per process (`commandLatency`): like the process metrics, it is not per server
 * when tests run several servers in one process.
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

export class CommandLatency {
  /** Set by the metrics endpoint; the protocol times commands only while true. */
  enabled = false;
  private readonly buckets = LATENCY_BUCKETS_SECONDS.length + 1;
  /** counts[slot * buckets + i]: observations in bucket i (not cumulative). */
  private readonly counts = new Float64Array(LATENCY_SLOTS * (LATENCY_BUCKETS_SECONDS.length + 1));
  private readonly sums = new Float64Array(LATENCY_SLOTS);
  private readonly totals = new Float64Array(LATENCY_SLOTS);

  /** One command of slot `slot` took `seconds`. */
  observe(slot: number, seconds: number): void {
    if (slot < 0 || slot >= LATENCY_SLOTS) return;
    const bounds = LATENCY_BUCKETS_SECONDS;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]) i++;
    this.counts[slot * this.buckets + i]++;
    this.sums[slot] += seconds;
    this.totals[slot]++;
  }

  /** Every slot with at least one observation. */
  snapshot(): LatencySnapshot[] {
    const out: LatencySnapshot[] = [];
    for (let slot = 0; slot < LATENCY_SLOTS; slot++) {
      if (this.totals[slot] === 0) continue;
      const cumulative: number[] = [];
      let running = 0;
      for (let i = 0; i < this.buckets; i++) {
        running += this.counts[slot * this.buckets + i];
        cumulative.push(running);
      }
      out.push({ slot, cumulative, sumSeconds: this.sums[slot], count: this.totals[slot] });
    }
    return out;
  }

  reset(): void {
    this.counts.fill(0);
    this.sums.fill(0);
    this.totals.fill(0);
  }
}

/** The process's recorder: the text protocol observes into it, the endpoint reads it. */
export const commandLatency = new CommandLatency();

/** A clock for timing commands: milliseconds, sub-microsecond resolution, no allocation. */
export function nowMs(): number {
  return performance.now();
}
