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
