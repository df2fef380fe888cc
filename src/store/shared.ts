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
 * Not for: what the arrays mean (each store module documents its own).
 */

export type SharedMemoryList = readonly SharedArrayBuffer[];

export class SharedMemory {
  private readonly buffers: SharedArrayBuffer[];
  private next = 0;
  private readonly attached: boolean;

  private constructor(buffers: SharedArrayBuffer[], attached: boolean) {
    this.buffers = buffers;
    this.attached = attached;
  }

  /** Memory for a new store. */
  static create(): SharedMemory {
    return new SharedMemory([], false);
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
    return this.attached;
  }

  /** True once every recorded buffer has been claimed again (attach mode). */
  get complete(): boolean {
    return this.next === this.buffers.length;
  }

  buffer(bytes: number): SharedArrayBuffer {
    if (!this.attached) {
      const b = new SharedArrayBuffer(bytes);
      this.buffers.push(b);
      this.next++;
      return b;
    }
    const b = this.buffers[this.next++];
    if (b === undefined || b.byteLength !== bytes) {
      throw new Error(`shared memory: request ${this.next - 1} for ${bytes} bytes does not match ${b === undefined ? 'nothing' : b.byteLength}`);
    }
    return b;
  }

  int32(count: number): Int32Array {
    return new Int32Array(this.buffer(count * 4));
  }

  uint32(count: number): Uint32Array {
    return new Uint32Array(this.buffer(count * 4));
  }

  uint8(count: number): Uint8Array {
    return new Uint8Array(this.buffer(count));
  }

  float64(count: number): Float64Array {
    return new Float64Array(this.buffer(count * 8));
  }
}
