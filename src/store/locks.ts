/**
 * Mutexes in shared memory, for the store's threads: one 32-bit word each in an Int32Array
 * over a SharedArrayBuffer, the futex-style mutex of Drepper's "Futexes Are Tricky":
 *
 *   0 unlocked   1 locked, nobody waiting   2 locked, someone may be waiting
 *
 * lock() takes a free mutex with one compare-and-swap; a held one is retried briefly with
 * plain loads (critical sections here are short), then marked 2 and slept on with
 * Atomics.wait, so a thread whose holder was preempted sleeps instead of burning its core.
 * unlock() swaps in 0 and wakes one sleeper only if the word said 2. Atomics operations are
 * sequentially consistent, so everything written under a mutex is seen by its next holder.
 *
 * A store no other thread attaches to (one serving thread) makes its mutexes with `atomic`
 * false: the same words and the same answers (tryLock still fails on a mutex this thread
 * holds, which the LRU walkers rely on to skip an item a command is using), but plain loads
 * and stores, which V8 compiles inline, instead of calls to its Atomics builtins (about 3% of
 * the server's cycles at pipeline 16, perf, 2026-12-06).
 *
 * Not for: reentrancy (a thread must not take a mutex it holds), fairness, or lock order,
 * which callers keep (item locks, then LRU locks, then the slab lock: doc/threads.md).
 */

/** Loads of a held mutex before sleeping on it. */
const SPINS_BEFORE_SLEEP = 64;

export class Mutexes {
  /** Times a lock() found its mutex held (contention), for stats. */
  contended = 0;

  constructor(
    /** The words, shared by every thread. */
    readonly words: Int32Array,
    /** Index of mutex 0 in `words`. */
    readonly base: number,
    readonly count: number,
    /** False: only one thread ever uses these words (see above). */
    readonly atomic = true,
  ) {
    if (base < 0 || count < 1 || base + count > words.length) throw new Error(`mutexes: [${base}, ${base + count}) outside ${words.length} words`);
  }

  lock(i: number): void {
    const w = this.words;
    const at = this.base + i;
    if (!this.atomic && w[at] === 0) {
      w[at] = 1;
      return;
    }
    let c = Atomics.compareExchange(w, at, 0, 1);
    if (c === 0) return;
    this.contended++;
    for (let spin = 0; spin < SPINS_BEFORE_SLEEP; spin++) {
      if (Atomics.load(w, at) === 0) {
        c = Atomics.compareExchange(w, at, 0, 1);
        if (c === 0) return;
      }
    }
    if (c !== 2) c = Atomics.exchange(w, at, 2);
    while (c !== 0) {
      Atomics.wait(w, at, 2);
      c = Atomics.exchange(w, at, 2);
    }
  }

  /** Take the mutex if it is free; never waits. */
  tryLock(i: number): boolean {
    const w = this.words;
    const at = this.base + i;
    if (!this.atomic) {
      if (w[at] !== 0) return false;
      w[at] = 1;
      return true;
    }
    return Atomics.compareExchange(w, at, 0, 1) === 0;
  }

  unlock(i: number): void {
    const at = this.base + i;
    if (!this.atomic) {
      this.words[at] = 0;
      return;
    }
    if (Atomics.exchange(this.words, at, 0) === 2) Atomics.notify(this.words, at, 1);
  }

  /** Is the mutex held by anyone (for assertions and stats only: the answer may be stale). */
  isHeld(i: number): boolean {
    return Atomics.load(this.words, this.base + i) !== 0;
  }
}
