/**
 * Micro benchmark: `SlabAllocator.alloc` and `SlabAllocator.free` (src/store/slabs.ts), the
 * chunk allocation behind every set. Steady state: chunks come off and go back on a class's
 * free list (pages carved once, during warm-up), as in a cache that is full and churning.
 */
import { SharedMemory } from '../../src/store/shared';
import { SlabAllocator } from '../../src/store/slabs';
import { measure, runMain, type MicroOptions, type MicroResult } from './timing';

/** memcached's defaults: -m 64, 1 MiB pages, -n 48, -f 1.25, 512 KiB slab_chunk_max. */
function allocator(): SlabAllocator {
  return new SlabAllocator({
    memoryLimitBytes: 64 * 1024 * 1024,
    pageBytes: 1024 * 1024,
    chunkSizeBytes: 48,
    growthFactor: 1.25,
    slabChunkMaxBytes: 512 * 1024,
  }, SharedMemory.create());
}

export function run(opts: MicroOptions): MicroResult[] {
  const results: MicroResult[] = [];
  for (const [itemBytes, batch] of [
    [174, 1024],
    [4170, 64],
  ] as const) {
    const slabs = allocator();
    const cls = slabs.classFor(itemBytes);
    if (cls === 0) throw new Error(`no slab class holds ${itemBytes} bytes`);
    const held = new Uint32Array(batch);
    results.push(
      measure(
        `alloc+free: ${itemBytes}-byte item (class ${cls}, ${slabs.classSize[cls]} B)`,
        (n) => {
          // One operation = one alloc plus one free; chunks are taken `batch` at a time and
          // all given back, so the free list is exercised in LIFO order as a churning cache does.
          let acc = 0;
          for (let done = 0; done < n; ) {
            const k = Math.min(batch, n - done);
            for (let i = 0; i < k; i++) {
              const ref = slabs.alloc(cls);
              if (ref === 0) throw new Error('slab allocator out of memory in the benchmark');
              held[i] = ref;
              acc ^= ref;
            }
            for (let i = k - 1; i >= 0; i--) slabs.free(held[i], cls);
            done += k;
          }
          return acc;
        },
        opts,
      ),
    );
  }
  return results;
}

if (require.main === module) runMain('SlabAllocator.alloc/free (src/store/slabs.ts)', run);
