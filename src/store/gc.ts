/**
 * A full garbage collection on request, for the rare moments when the store has just dropped
 * a large typed array (the old table after a hash index growth). V8 frees such a backing
 * store only when it collects, and with an allocation-free hot path that can take a long
 * time, leaving megabytes of dead memory resident. Enabling `gc()` at runtime is a
 * documented V8 flag; if that ever fails, collection is simply left to V8.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gcFn: (() => void) | null | undefined;

export function collectGarbage(): boolean {
  if (gcFn === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('gc') as () => void;
    } catch {
      gcFn = null;
    }
  }
  if (gcFn === null) return false;
  gcFn();
  return true;
}
