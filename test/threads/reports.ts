/**
 * What a load thread or process of the concurrency tests reports (engine-worker.cjs,
 * load-client.cjs), and the sums the tests check.
 */
export interface Report {
  done: number;
  perKey: number[];
  torn: number;
  hits: number;
  misses: number;
  stored: number;
  noMemory: number;
  retries: number;
  /** Deletes answered DELETED (load-client.cjs's disk mode). */
  deleted?: number;
}

/** Per key, how many updates all the reports made. */
export function perKeyTotals(reports: readonly Report[], keys: number): number[] {
  const totals = new Array<number>(keys).fill(0);
  for (const r of reports) r.perKey.forEach((n, i) => { totals[i] += n; });
  return totals;
}

/** One counter summed over the reports. */
export function total(reports: readonly Report[], field: Exclude<keyof Report, 'perKey'>): number {
  return reports.reduce((a, r) => a + (r[field] ?? 0), 0);
}

/**
 * `MCTS_STRESS=N` (`npm run test:stress`): the concurrency suites run N times their rounds,
 * with N times their deadlines and test timeouts, for a longer local run. Unset it is 1, the
 * bounded run CI makes. Anything but a whole number from 1 to 1000 is refused.
 */
export function stressFactor(value: string | undefined): number {
  if (value === undefined || value === '') return 1;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new Error(`MCTS_STRESS: a whole number from 1 to 1000, not "${value}"`);
  return n;
}

/** This run's stress factor (1 unless MCTS_STRESS says otherwise). */
export const STRESS = stressFactor(process.env.MCTS_STRESS);

/** A round count, deadline or timeout of the CI run, scaled by STRESS. */
export function stressed(n: number): number {
  return n * STRESS;
}

/** The requests a load-client.cjs connection sends for `rounds`: whole pipelines of `pipeline`. */
export function sentPerConnection(rounds: number, pipeline: number): number {
  return Math.ceil(rounds / pipeline) * pipeline;
}
