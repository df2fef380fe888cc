/**
 * memcached-debug's `debugitem ref|unref` (src/engine/debug-refs.ts, Items.debugRef): a
 * referenced item's memory is not reused after it is unlinked until the last reference goes,
 * and the item is busy for page moves meanwhile. (Compaction's realloc rescue of a referenced
 * header runs in memcached's t/extstore.t, part of the memcached suite in `npm test`.)
 */
import { describe, expect, it } from 'vitest';
import { b, makeEngine, set, value } from './helpers';

describe('debug references', () => {
  it('keep an unlinked item\'s chunk until the last unref; a missing key is a miss', () => {
    const e = makeEngine();
    const refs = e.debugRefs;
    const k = b('k');
    expect(refs.ref(7, k, 0, 1)).toBe(false);
    expect(set(e, 'k', 'v1').result).toBe('STORED');
    const ref = e.peek(k, 0, 1);
    const cls = e.items.classOf(ref);
    const used = (): number => e.items.slabs.usedChunks[cls];
    expect(refs.ref(7, k, 0, 1)).toBe(true);
    expect(refs.ref(8, k, 0, 1)).toBe(true);
    expect(e.items.isBusy(ref)).toBe(true);
    const before = used();
    // Replaced: the old chunk stays taken (two references on it).
    expect(set(e, 'k', 'v2').result).toBe('STORED');
    expect(value(e, 'k')).toBe('v2');
    expect(used()).toBe(before + 1);
    refs.unrefSlot(7);
    expect(used()).toBe(before + 1);
    refs.unrefSlot(8);
    expect(used()).toBe(before);
    refs.unrefSlot(8); // an empty slot: nothing
    expect(used()).toBe(before);
    // unref <key> drops one reference on the item the key names now.
    const now = e.peek(k, 0, 1);
    expect(refs.ref(9, k, 0, 1)).toBe(true);
    expect(e.items.debugReferenced(now)).toBe(true);
    expect(refs.unrefKey(k, 0, 1)).toBe(true);
    expect(e.items.debugReferenced(now)).toBe(false);
    expect(refs.unrefKey(b('missing'), 0, 7)).toBe(false);
  });
});
