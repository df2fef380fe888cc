/**
 * What a load generator reports for one measured run, whichever generator produced it.
 *
 * Latencies are milliseconds. memtier_benchmark's percentiles come from an HDR histogram
 * (exact to its precision); memcaslap prints only a power-of-two histogram, so its
 * "percentiles" are the upper edge of the bucket holding that rank, and say so.
 */
export type PercentileSource = 'hdr' | 'log2-bucket-upper-bound' | 'none';

export interface LoadResult {
  opsPerSec: number;
  /** Requests (memtier: commands; memcaslap: keys, a multiget of 10 counts 10). */
  requests: number;
  seconds: number;
  p50Ms: number | null;
  p99Ms: number | null;
  p999Ms: number | null;
  avgMs: number | null;
  maxMs: number | null;
  percentileSource: PercentileSource;
  /** Get hits / (hits + misses) as the load generator saw them (keys, not commands). */
  hitRatio: number | null;
  connectionErrors: number;
  /** Anything odd about how these numbers were obtained. */
  warning: string | null;
}

export interface LoadGenerator {
  name: 'memtier_benchmark' | 'memcaslap';
  path: string;
  version: string;
}

/** Percentile from a histogram of (upper bound, count) buckets in ascending order. */
export function bucketPercentile(buckets: { upper: number; count: number }[], q: number): number | null {
  const total = buckets.reduce((s, b) => s + b.count, 0);
  if (total === 0) return null;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (const b of buckets) {
    seen += b.count;
    if (seen >= rank) return b.upper;
  }
  return buckets[buckets.length - 1].upper;
}
