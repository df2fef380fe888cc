/**
 * memcached-debug's leaked item references, for `debugitem ref|unref` (only with
 * `-o debug_commands`; see src/protocol/text/admin.ts). A reference keeps an item's memory
 * from being reused after it is unlinked (Items.debugRef), as a reply in flight holds one in
 * memcached; compaction then rescues a referenced header by giving it a new header item
 * (Storage's realloc rescue). Each connection has one slot, as memcached's
 * `debug_item_reffed`. The references live on the thread that runs the background work (the
 * command is forwarded there).
 *
 * Not for: anything outside memcached's own test suite.
 */
import { hashKey } from '../store/hash';
import type { Items } from '../store/items';

export interface KeyLocks {
  lockKey(hash: number): void;
  unlockKey(hash: number): void;
  /** A live item's reference without bumping it (0: none). */
  lookup(key: Uint8Array, start: number, len: number, hash: number): number;
}

export class DebugRefs {
  /** Connection id → the item its slot references. */
  private readonly slots = new Map<number, number>();

  constructor(private readonly items: Items, private readonly locks: KeyLocks) {}

  /** Reference the live item named by the key in connection `connId`'s slot; false when none. */
  ref(connId: number, key: Uint8Array, start: number, len: number): boolean {
    const hash = hashKey(key, start, len);
    this.locks.lockKey(hash);
    const ref = this.locks.lookup(key, start, len, hash);
    if (ref !== 0) {
      this.items.debugRef(ref);
      this.slots.set(connId, ref);
    }
    this.locks.unlockKey(hash);
    return ref !== 0;
  }

  /** Drop the reference in connection `connId`'s slot (nothing when it is empty). */
  unrefSlot(connId: number): void {
    const ref = this.slots.get(connId);
    if (ref === undefined) return;
    this.slots.delete(connId);
    this.items.debugUnref(ref);
  }

  /** Drop one reference on the item the key names now; false when there is none. */
  unrefKey(key: Uint8Array, start: number, len: number): boolean {
    const hash = hashKey(key, start, len);
    this.locks.lockKey(hash);
    const ref = this.locks.lookup(key, start, len, hash);
    if (ref !== 0) this.items.debugUnref(ref);
    this.locks.unlockKey(hash);
    return ref !== 0;
  }
}
