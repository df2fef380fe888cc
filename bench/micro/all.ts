/**
 * `npm run bench:micro`: every micro benchmark in turn (`-- --quick` for a seconds-long check
 * that they still run). Each file also runs alone:
 *   node bench/dist/micro/bench/micro/<name>.js [--quick]
 */
import { run as hashKey } from './hash-key';
import { run as pipelinedGets } from './pipelined-gets';
import { run as slabAlloc } from './slab-alloc';
import { formatResult, parseMicroArgs, sinkValue, type MicroOptions, type MicroResult } from './timing';
import { run as tokenize } from './tokenize';
import { run as writeValue } from './write-value';

const suites: [string, (opts: MicroOptions) => MicroResult[]][] = [
  ['parser: TextSession#tokenize (src/protocol/text/session.ts)', tokenize],
  ['hashing: hashKey (src/store/hash.ts)', hashKey],
  ['slab allocation: SlabAllocator.alloc/free (src/store/slabs.ts)', slabAlloc],
  ['response building: a get hit through TextSession#feed (src/protocol/text/session.ts)', writeValue],
  ['prefetching: 16 pipelined gets over a filled store, prefetch on and off (src/protocol/text/prefetch.ts)', pipelinedGets],
];

function main(): number {
  const opts = parseMicroArgs(process.argv.slice(2));
  process.stdout.write(`micro benchmarks, Node ${process.version}${opts.quick ? ' (--quick: timings are not meaningful)' : ''}\n`);
  let failed = 0;
  for (const [title, run] of suites) {
    process.stdout.write(`${title}\n`);
    try {
      for (const r of run(opts)) process.stdout.write(`  ${formatResult(r)}\n`);
    } catch (err) {
      failed++;
      process.stdout.write(`  FAILED: ${(err as Error).message}\n`);
    }
  }
  // Keep the sink observable so no measured work is dead code.
  if (sinkValue() === 0.5) process.stdout.write('\n');
  return failed === 0 ? 0 : 1;
}

process.exitCode = main();
