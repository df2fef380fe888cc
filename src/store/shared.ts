/**
 * Shared memory for the store: every array the store keeps (slab bookkeeping, LRU lists,
 * counters, the hash table, the arena) is a typed array over a SharedArrayBuffer, so each
 * serving thread can see the same store.
 *
 * The thread that creates the store takes its memory from a SharedMemory in "create" mode:
 * each request makes a new SharedArrayBuffer and records it. Another thread attaches with
 * the recorded list (passed as workerData): the same requests, in the same order (the store
 * is built from the same options by the same code), get the same buffers back. A request
 * whose size differs from what was recorded means the two sides disagree on the layout, a
 * programming error, and throws.
 *
 * -e (warm restart, src/store/memory-file.ts): a SharedMemory made with a backing hands each
 * "state" buffer to it as it is made, and the backing maps it onto the memory file or fills it
 * from there; "fresh" buffers (locks, statistics) always start zeroed. A backing that restores
 * a saved store makes the SharedMemory `attaching`, so the store modules leave the restored
 * values in place, as a second thread does.
 *
 * Not for: what the arrays mean (each store module documents its own).
 */

import { Mutexes } from './locks';

export type SharedMemoryList = readonly SharedArrayBuffer[];

/** How a buffer takes part in a warm restart. */
export interface BufferSpec {
  /** Restarted zeroed, never saved: locks and statistics. */
  readonly fresh?: boolean;
  /** Bytes in use from the start of the buffer (what a save writes); default the whole buffer. */
  readonly used?: () => number;
}

/** Where the store's "state" buffers live across a restart (src/store/memory-file.ts). */
export interface MemoryBacking {
  /** The buffers hold a saved store: the store modules must not initialise them. */
  readonly restoring: boolean;
  /** A state buffer was just made (zeroed): back it by the file, or fill it from there. */
  adopt(buffer: SharedArrayBuffer, used: () => number): void;
}

/** A buffer restarted zeroed (see BufferSpec). */
export const FRESH: BufferSpec = { fresh: true };

export class SharedMemory {
  private readonly buffers: SharedArrayBuffer[];
  private next = 0;
  private readonly attached: boolean;

  private readonly backing: MemoryBacking | null;
  /**
   * Set by the creator before the store is built when no other thread will ever attach
   * (one serving thread): the store's mutexes then take and release their words with plain
   * loads and stores instead of atomic operations (src/store/locks.ts).
   */
  oneThread = false;

  private constructor(buffers: SharedArrayBuffer[], attached: boolean, backing: MemoryBacking | null = null) {
    this.buffers = buffers;
    this.attached = attached;
    this.backing = backing;
  }

  /** Memory for a new store; `backing`: -e's memory file (a saved store it restores, or a new one). */
  static create(backing: MemoryBacking | null = null): SharedMemory {
    return new SharedMemory([], false, backing);
  }

  /** The memory of an existing store, from `list()` of the creating side. */
  static attach(list: SharedMemoryList): SharedMemory {
    return new SharedMemory([...list], true);
  }

  /** Every buffer handed out, in order: what another thread attaches with. */
  list(): SharedMemoryList {
    return this.buffers;
  }

  /** Attaching to an existing store: initial values are already in place, leave them. */
  get attaching(): boolean {
    return this.attached || this.backing?.restoring === true;
  }

  /** True once every recorded buffer has been claimed again (attach mode). */
  get complete(): boolean {
    return this.next === this.buffers.length;
  }

  buffer(bytes: number, spec: BufferSpec = {}): SharedArrayBuffer {
    if (!this.attached) {
      const b = new SharedArrayBuffer(bytes);
      this.buffers.push(b);
      this.next++;
      if (this.backing !== null && spec.fresh !== true) this.backing.adopt(b, spec.used ?? (() => bytes));
      return b;
    }
    const b = this.buffers[this.next++];
    if (b === undefined || b.byteLength !== bytes) {
      throw new Error(`shared memory: request ${this.next - 1} for ${bytes} bytes does not match ${b === undefined ? 'nothing' : b.byteLength}`);
    }
    return b;
  }

  int32(count: number, spec?: BufferSpec): Int32Array {
    return new Int32Array(this.buffer(count * 4, spec));
  }

  uint32(count: number, spec?: BufferSpec): Uint32Array {
    return new Uint32Array(this.buffer(count * 4, spec));
  }

  uint8(count: number, spec?: BufferSpec): Uint8Array {
    return new Uint8Array(this.buffer(count, spec));
  }

  /** Lock words (src/store/locks.ts): never saved, zero (unlocked) after a restart. */
  locks(count: number): Int32Array {
    return this.int32(count, FRESH);
  }

  /** `count` mutexes over fresh lock words, atomic unless the store is `oneThread`. */
  mutexes(count: number): Mutexes {
    return new Mutexes(this.locks(count), 0, count, !this.oneThread);
  }

  float64(count: number, spec?: BufferSpec): Float64Array {
    return new Float64Array(this.buffer(count * 8, spec));
  }
}
