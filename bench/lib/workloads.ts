/**
 * The workloads of issue #3, each as: unmeasured setup phases (prefill, warm-up), then one
 * measured phase, for memtier_benchmark and, where it can express it, for memcaslap.
 *
 * Key counts follow from -m so that "prefilled so gets hit" and "a keyspace about 10x what -m
 * holds" stay true when -m changes. One item with a 100-byte value and a memtier key
 * ("memtier-1234567") takes a 192-byte chunk in memcached 1.6 at the default -f 1.25 and -n 48
 * (48-byte header + key + "\0" + value + CRLF + 8-byte CAS = 174 bytes → class 4, 192 bytes);
 * a 4 KiB value takes a 4544-byte chunk.
 */
import type { MemcaslapWorkload } from './memcaslap';

export const WORKLOAD_NAMES = ['mix-p1', 'mix-p16', 'set-get-4k', 'multiget-10', 'zipf', 'fill'] as const;
export type WorkloadName = (typeof WORKLOAD_NAMES)[number];

const CHUNK_BYTES_100 = 192;
const CHUNK_BYTES_4K = 4544;
/** Share of -m the prefilled key sets may take, so nothing is evicted before the run. */
const PREFILL_MEMORY_SHARE = 0.4;
const ZIPF_EXPONENT = 0.99;
/**
 * Zipfian sets in the warm-up, per item -m holds. At exponent 0.99 over 10x the capacity,
 * 4x capacity sets touch about 1.1x capacity distinct keys, 6x about 1.4x: enough that the
 * cache is full and evicting before the measured run, so the hit ratio reflects what each
 * server chose to keep.
 */
const ZIPF_WARM_SETS_PER_CAPACITY = 6;
/** Total requests of the measured zipf run per second of --duration (a count, not a time, so
 * both servers answer exactly the same number of requests and hit ratios compare). */
const ZIPF_REQUESTS_PER_DURATION_SECOND = 80_000;
const MIB = 1024 * 1024;

export interface Plan {
  smoke: boolean;
  durationSec: number;
  memoryMiB: number;
  /** Connections in total (load-generator threads x clients per thread). */
  connections: number;
  /** Smoke runs: requests per connection instead of a duration. */
  smokeRequestsPerClient: number;
  /** Items of 100 bytes memcached holds in -m (an estimate from its chunk size). */
  capacity100: number;
  mixKeys: number;
  keys4k: number;
  zipfKeys: number;
  zipfWarmSets: number;
  zipfRequests: number;
  fillKeys: number;
}

export function makePlan(o: { smoke: boolean; durationSec: number; memoryMiB: number; connections: number; fillKeys: number | null }): Plan {
  const bytes = o.memoryMiB * MIB;
  const capacity100 = Math.floor(bytes / CHUNK_BYTES_100);
  const mixKeys = o.smoke ? 2_000 : Math.min(100_000, Math.floor((bytes * PREFILL_MEMORY_SHARE) / CHUNK_BYTES_100));
  const keys4k = o.smoke ? 200 : Math.min(5_000, Math.floor((bytes * PREFILL_MEMORY_SHARE) / CHUNK_BYTES_4K));
  return {
    smoke: o.smoke,
    durationSec: o.durationSec,
    memoryMiB: o.memoryMiB,
    connections: o.connections,
    smokeRequestsPerClient: 300,
    capacity100,
    mixKeys: Math.max(mixKeys, 100),
    keys4k: Math.max(keys4k, 20),
    zipfKeys: capacity100 * 10,
    zipfWarmSets: o.smoke ? 2_000 : capacity100 * ZIPF_WARM_SETS_PER_CAPACITY,
    zipfRequests: o.smoke ? 300 * o.connections : o.durationSec * ZIPF_REQUESTS_PER_DURATION_SECOND,
    fillKeys: o.fillKeys ?? (o.smoke ? 20_000 : 1_000_000),
  };
}

/** An unmeasured or measured step of a workload. */
export type Phase =
  | { kind: 'memtier'; what: string; args: string[]; bounded: 'time' | 'count' }
  | { kind: 'memcaslap'; what: string; workload: MemcaslapWorkload }
  | { kind: 'fill'; what: string; keyCount: number; valueBytes: number };

export interface Steps {
  setup: Phase[];
  measured: Phase;
}

export interface Workload {
  name: WorkloadName;
  /** Short label for the chart. */
  label: string;
  description: string;
  /** Which numbers the report puts first. */
  focus: 'throughput' | 'hit-ratio' | 'capacity';
  memtier(plan: Plan): Steps;
  /** Steps for memcaslap, or why it cannot run this workload. */
  memcaslap(plan: Plan): Steps | string;
  /** Parameters recorded with the results. */
  params(plan: Plan): Record<string, number | string>;
}

const perClient = (total: number, plan: Plan): number => Math.max(1, Math.ceil(total / plan.connections));

/** Length of a measured memtier run: --test-time, or a request count in smoke runs. */
function length(plan: Plan): { args: string[]; bounded: 'time' | 'count' } {
  return plan.smoke
    ? { args: ['-n', String(plan.smokeRequestsPerClient)], bounded: 'count' }
    : { args: [`--test-time=${plan.durationSec}`], bounded: 'time' };
}

/** Unmeasured: set every key of the range once, with the harness's own pipelined filler. */
function prefill(keys: number, valueBytes: number): Phase {
  return { kind: 'fill', what: `prefill ${keys} keys of ${valueBytes} bytes`, keyCount: keys, valueBytes };
}

function uniform(keys: number, valueBytes: number, ratio: string, pipeline: number, plan: Plan, extra: string[] = []): Phase {
  const len = length(plan);
  return {
    kind: 'memtier',
    what: 'measured',
    args: [`--ratio=${ratio}`, '--key-pattern=R:R', '--key-minimum=1', `--key-maximum=${keys}`, '-d', String(valueBytes), `--pipeline=${pipeline}`, '--distinct-client-seed', ...extra, ...len.args],
    bounded: len.bounded,
  };
}

/** memcaslap's per-connection key window; it only takes whole thousands ("5k"), 1k at least. */
const window = (keys: number, plan: Plan): number => Math.max(1, Math.floor(keys / plan.connections / 1000)) * 1000;

const mix = (pipeline: number): Workload => ({
  name: pipeline === 1 ? 'mix-p1' : 'mix-p16',
  label: `1:10 100B p${pipeline}`,
  description: `memtier's memcache_text default mix: 1 set per 10 gets, 100-byte values, uniform keys over a prefilled key set (gets hit), pipeline ${pipeline}`,
  focus: 'throughput',
  memtier: (plan) => ({ setup: [prefill(plan.mixKeys, 100)], measured: uniform(plan.mixKeys, 100, '1:10', pipeline, plan) }),
  memcaslap: (plan) =>
    pipeline !== 1
      ? 'memcaslap cannot pipeline requests'
      : { setup: [], measured: { kind: 'memcaslap', what: 'measured', workload: { valueBytes: 100, setShare: 1 / 11, multiget: 1, windowKeys: window(plan.mixKeys, plan) } } },
  params: (plan) => ({ ratio: '1:10', valueBytes: 100, pipeline, keys: plan.mixKeys }),
});

export const WORKLOADS: Workload[] = [
  mix(1),
  mix(16),
  {
    name: 'set-get-4k',
    label: '1:1 4KiB',
    description: '1 set per get, 4 KiB values, uniform keys over a prefilled key set, pipeline 1',
    focus: 'throughput',
    memtier: (plan) => ({ setup: [prefill(plan.keys4k, 4096)], measured: uniform(plan.keys4k, 4096, '1:1', 1, plan) }),
    memcaslap: (plan) => ({ setup: [], measured: { kind: 'memcaslap', what: 'measured', workload: { valueBytes: 4096, setShare: 0.5, multiget: 1, windowKeys: window(plan.keys4k, plan) } } }),
    params: (plan) => ({ ratio: '1:1', valueBytes: 4096, pipeline: 1, keys: plan.keys4k }),
  },
  {
    name: 'multiget-10',
    label: 'multiget 10',
    description: 'gets of 10 keys each (memtier --ratio=0:10 --multi-key-get=10), 100-byte values, prefilled so every key hits',
    focus: 'throughput',
    memtier: (plan) => ({ setup: [prefill(plan.mixKeys, 100)], measured: uniform(plan.mixKeys, 100, '0:10', 1, plan, ['--multi-key-get=10']) }),
    // memcaslap only gets what it has set: 1 set per 9 multigets keeps its window populated.
    memcaslap: (plan) => ({ setup: [], measured: { kind: 'memcaslap', what: 'measured', workload: { valueBytes: 100, setShare: 0.1, multiget: 10, windowKeys: window(plan.mixKeys, plan) } } }),
    params: (plan) => ({ keysPerGet: 10, valueBytes: 100, keys: plan.mixKeys }),
  },
  {
    name: 'zipf',
    label: 'zipf 0.99',
    description: `zipfian keys (exponent ${ZIPF_EXPONENT}) over a keyspace 10x what -m holds, 1:10 set:get, 100-byte values; warmed with zipfian sets first; the same request count for both servers`,
    focus: 'hit-ratio',
    memtier: (plan) => {
      const keyRange = ['--key-pattern=Z:Z', `--key-zipf-exp=${ZIPF_EXPONENT}`, '--key-minimum=1', `--key-maximum=${plan.zipfKeys}`, '-d', '100'];
      return {
        setup: [
          {
            kind: 'memtier',
            what: `warm with ${plan.zipfWarmSets} zipfian sets`,
            // --distinct-client-seed: without it every connection sends the same key sequence.
            // --randomize: the warm-up's sequences differ from the measured run's.
            args: ['--ratio=1:0', ...keyRange, '--pipeline=16', '--randomize', '--distinct-client-seed', '-n', String(perClient(plan.zipfWarmSets, plan))],
            bounded: 'count',
          },
        ],
        measured: {
          kind: 'memtier',
          what: 'measured',
          args: ['--ratio=1:10', ...keyRange, '--pipeline=1', '--distinct-client-seed', '-n', String(perClient(plan.zipfRequests, plan))],
          bounded: 'count',
        },
      };
    },
    memcaslap: () => 'memcaslap has no zipfian (or any chosen) key distribution',
    params: (plan) => ({ zipfExponent: ZIPF_EXPONENT, keys: plan.zipfKeys, estimatedCapacityItems: plan.capacity100, warmSets: plan.zipfWarmSets, requests: plan.zipfRequests, valueBytes: 100, ratio: '1:10' }),
  },
  {
    name: 'fill',
    label: 'fill',
    description: 'sets of distinct keys with 100-byte values (the harness\'s pipelined filler, 4 connections) into a server with default flags; then items held (curr_items) and resident memory (VmRSS)',
    focus: 'capacity',
    // The harness's own filler for both generators: memtier stops reading a connection at the
    // first reply it cannot parse (a SERVER_ERROR when memory is short), while the filler
    // counts such refusals and keeps going.
    memtier: (plan) => ({ setup: [], measured: { kind: 'fill', what: 'measured', keyCount: plan.fillKeys, valueBytes: 100 } }),
    memcaslap: (plan) => ({ setup: [], measured: { kind: 'fill', what: 'measured', keyCount: plan.fillKeys, valueBytes: 100 } }),
    params: (plan) => ({ keys: plan.fillKeys, valueBytes: 100 }),
  },
];

export function selectWorkloads(names: string | null): Workload[] {
  if (names === null || names.trim() === '' || names === 'all') return WORKLOADS;
  const wanted = names.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const w of wanted) {
    if (!WORKLOADS.some((x) => x.name === w)) throw new Error(`unknown workload "${w}"; known: ${WORKLOAD_NAMES.join(', ')}`);
  }
  return WORKLOADS.filter((w) => wanted.includes(w.name));
}
