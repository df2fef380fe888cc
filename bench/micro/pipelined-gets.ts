/**
 * Micro benchmark: pipelined get hits through TextSession#feed over a filled store, the work
 * a worker does per read event at pipeline 16 minus the socket: parse 16 "get <key>" lines,
 * find each item (a random bucket and item header: memory the caches mostly do not hold),
 * copy each value into the reply. Keys are memtier's names over a key set of KEYS items
 * with 100-byte values, drawn at random per line, as memtier_benchmark's uniform pattern.
 */
import { adviseHugePages } from '../../src/platform/startup';
import { makeFixture } from './session-fixture';
import { measureAlternating, runMain, type MicroOptions, type MicroResult } from './timing';

const KEYS = 90_000;
const PIPELINE = Number(process.env.MICRO_PIPELINE ?? 16);
const PER_LINE = Number(process.env.MICRO_KEYS_PER_LINE ?? 1);
const BATCHES = 8192;

export function run(opts: MicroOptions): MicroResult[] {
  const fx = makeFixture();
  // As the server does at startup (src/cli/main.ts): huge pages for the store's memory.
  adviseHugePages(fx.engine.memoryList());
  const value = 'x'.repeat(100);
  const fill: string[] = [];
  for (let i = 1; i <= KEYS; i++) {
    fill.push(`set memtier-${i} 0 0 100 noreply\r\n${value}\r\n`);
    if (fill.length === 16 || i === KEYS) {
      fx.send(fill.join(''));
      fill.length = 0;
    }
  }
  let seed = 12345;
  const rnd = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed;
  };
  const batches: Buffer[] = [];
  for (let b = 0; b < (opts.quick ? 64 : BATCHES); b++) {
    let text = '';
    for (let i = 0; i < PIPELINE; i++) {
      text += 'get';
      for (let k = 0; k < PER_LINE; k++) text += ` memtier-${1 + (rnd() % KEYS)}`;
      text += '\r\n';
    }
    batches.push(Buffer.from(text, 'latin1'));
  }
  const check = fx.send(batches[0]);
  const hits = check.split('VALUE ').length - 1;
  if (hits !== PIPELINE * PER_LINE) throw new Error(`expected ${PIPELINE} hits, got ${hits}: ${check.slice(0, 80)}`);
  const { session, out } = fx;
  let next = 0;
  const settings = fx.engine.settings;
  const prefetchDefault = settings.prefetchKeys;
  const feedBatches = (prefetchKeys: number) => (n: number): number => {
    settings.prefetchKeys = prefetchKeys;
    let acc = 0;
    for (let i = 0; i < n; i++) {
      const buf = batches[next];
      next = (next + 1) % batches.length;
      session.feed(buf, 0, buf.length);
      acc += out.length;
      out.length = 0;
    }
    return acc;
  };
  const label = (prefetchKeys: number): string => `${PIPELINE} gets per read, prefetch_keys=${prefetchKeys} (per get)`;
  const results = measureAlternating([
    [label(prefetchDefault), feedBatches(prefetchDefault)],
    [label(0), feedBatches(0)],
  ], opts);
  settings.prefetchKeys = prefetchDefault;
  return results.map((r) => ({ ...r, nsPerOp: r.nsPerOp / PIPELINE, minNsPerOp: r.minNsPerOp / PIPELINE, maxNsPerOp: r.maxNsPerOp / PIPELINE }));
}

if (require.main === module) runMain('TextSession#feed: pipelined get hits over a filled store', run);
