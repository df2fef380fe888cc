/**
 * The timing loop shared by the micro benchmarks: calibrate a batch size so one sample takes
 * about `sampleMs`, warm up (so V8 has optimised the code), then take `samples` timed batches
 * and report the median ns per operation with the fastest and slowest sample beside it.
 *
 * An operation returns a number that is folded into a sink, so the JIT cannot drop it as
 * dead code. Not for: comparing against memcached (bench/run.ts does that).
 */

export interface MicroOptions {
  /** Tiny sample counts and times: checks the benchmark works, measures nothing. */
  quick: boolean;
}

export interface MicroResult {
  name: string;
  nsPerOp: number;
  minNsPerOp: number;
  maxNsPerOp: number;
  samples: number;
  opsPerSample: number;
}

let sink = 0;

/** Read the sink (so it is observably used). */
export function sinkValue(): number {
  return sink;
}

function timeBatch(op: (n: number) => number, n: number): number {
  const t0 = process.hrtime.bigint();
  sink ^= op(n) | 0;
  return Number(process.hrtime.bigint() - t0);
}

/**
 * Measure `op`, which performs the operation `n` times and returns something derived from
 * the results.
 */
export function measure(name: string, op: (n: number) => number, opts: MicroOptions): MicroResult {
  const sampleNs = (opts.quick ? 2 : 25) * 1e6;
  const warmupNs = (opts.quick ? 10 : 300) * 1e6;
  const samples = opts.quick ? 3 : 21;

  let n = 64;
  for (;;) {
    const ns = timeBatch(op, n);
    if (ns >= sampleNs / 4 || n >= 1 << 28) break;
    n *= 2;
  }
  let warmed = 0;
  while (warmed < warmupNs) warmed += timeBatch(op, n);
  // Re-calibrate now that the code is optimised.
  const perOp = timeBatch(op, n) / n;
  n = Math.max(16, Math.round(sampleNs / Math.max(perOp, 0.05)));

  const perOpNs: number[] = [];
  for (let i = 0; i < samples; i++) perOpNs.push(timeBatch(op, n) / n);
  perOpNs.sort((a, b) => a - b);
  return {
    name,
    nsPerOp: perOpNs[perOpNs.length >> 1],
    minNsPerOp: perOpNs[0],
    maxNsPerOp: perOpNs[perOpNs.length - 1],
    samples,
    opsPerSample: n,
  };
}

/**
 * Measure several variants of one operation with their samples interleaved (a sample of each
 * in turn), so that a machine whose speed drifts (other tenants, memory bandwidth) shifts
 * them all alike and their ratio stays meaningful. Batch size is calibrated on the first.
 */
export function measureAlternating(cases: [string, (n: number) => number][], opts: MicroOptions): MicroResult[] {
  const sampleNs = (opts.quick ? 2 : 25) * 1e6;
  const warmupNs = (opts.quick ? 10 : 300) * 1e6;
  const samples = opts.quick ? 3 : 21;
  const first = cases[0][1];
  let n = 64;
  for (;;) {
    const ns = timeBatch(first, n);
    if (ns >= sampleNs / 4 || n >= 1 << 28) break;
    n *= 2;
  }
  for (const [, op] of cases) {
    let warmed = 0;
    while (warmed < warmupNs) warmed += timeBatch(op, n);
  }
  n = Math.max(16, Math.round(sampleNs / Math.max(timeBatch(first, n) / n, 0.05)));
  const perOpNs: number[][] = cases.map(() => []);
  for (let i = 0; i < samples; i++) {
    cases.forEach(([, op], c) => perOpNs[c].push(timeBatch(op, n) / n));
  }
  return cases.map(([name], c) => {
    const sorted = perOpNs[c].sort((a, b) => a - b);
    return { name, nsPerOp: sorted[sorted.length >> 1], minNsPerOp: sorted[0], maxNsPerOp: sorted[sorted.length - 1], samples, opsPerSample: n };
  });
}

export function formatResult(r: MicroResult): string {
  const f = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
  return `${r.name.padEnd(44)} ${f(r.nsPerOp).padStart(9)} ns/op   (min ${f(r.minNsPerOp)}, max ${f(r.maxNsPerOp)}; ${r.samples} x ${r.opsPerSample} ops)`;
}

export function parseMicroArgs(argv: string[]): MicroOptions {
  return { quick: argv.includes('--quick') };
}

/** Run a benchmark file's cases and print them, when the file is run on its own. */
export function runMain(title: string, run: (opts: MicroOptions) => MicroResult[]): void {
  const opts = parseMicroArgs(process.argv.slice(2));
  process.stdout.write(`${title}${opts.quick ? ' (--quick: timings are not meaningful)' : ''}\n`);
  for (const r of run(opts)) process.stdout.write(`  ${formatResult(r)}\n`);
}
