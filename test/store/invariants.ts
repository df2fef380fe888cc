/**
 * Store invariants, checked by walking slab memory: every chunk is accounted for exactly
 * once (free list, live item, data chunk of a live item), counters agree with what the walk
 * finds, every linked item is found by its key and sits in the LRU its header names.
 * Throws an Error describing the first violation.
 */
import type { Engine } from '../../src/engine/engine';
import { hashKey } from '../../src/store/hash';
import { IF_CHUNKED, IF_LINKED } from '../../src/store/items';
import { GLOBAL_POOL, KIND_DATA, KIND_FREE, KIND_ITEM, makeRef } from '../../src/store/slabs';

export interface StoreCensus {
  items: number;
  chunkedItems: number;
  dataChunks: number;
  freeChunks: number;
}

export function checkStore(e: Engine, opts: { allowUnlinked?: boolean } = {}): StoreCensus {
  const slabs = e.slabs;
  const items = e.items;
  const fail = (msg: string): never => {
    throw new Error(`store invariant: ${msg}`);
  };
  const largest = slabs.largestClass;
  const used = new Float64Array(largest + 1);
  const freeSeen = new Set<number>();
  const census: StoreCensus = { items: 0, chunkedItems: 0, dataChunks: 0, freeChunks: 0 };
  let bytes = 0;
  const pagesSeen = new Float64Array(largest + 1);
  for (let page = 1; page <= slabs.highestPage; page++) {
    const cls = slabs.pageClass[page];
    if (cls === GLOBAL_POOL) continue;
    pagesSeen[cls]++;
    const size = slabs.classSize[cls];
    const end = slabs.carvedBytes(page);
    const u = slabs.pageWords(page);
    const base = slabs.pageWordBase(page);
    for (let off = 0; off < end; off += size) {
      const ref = makeRef(page, off);
      const word = u[base + (off >>> 2)];
      const kind = word & 3;
      if (kind === KIND_FREE) {
        if (word !== (KIND_FREE | (cls << 16)) && !e.mover.running) fail(`chunk ${ref} of class ${cls} has free word ${word.toString(16)}`);
        if (word === (KIND_FREE | (cls << 16))) freeSeen.add(ref);
        continue;
      }
      used[cls]++;
      if (kind === KIND_DATA) {
        const owner = u[base + (off >>> 2) + 1];
        if ((items.iflags(owner) & IF_CHUNKED) === 0) fail(`data chunk ${ref} owned by non-chunked ${owner}`);
        const table = items.chunkTableOffset(owner) >>> 2;
        let found = false;
        for (let i = 0; i < items.chunkCount(owner); i++) if (items.u32(owner)[table + i] === ref) found = true;
        if (!found) fail(`data chunk ${ref} not in its owner's table`);
        census.dataChunks++;
        continue;
      }
      if (kind !== KIND_ITEM) fail(`chunk ${ref} has kind ${kind}`);
      if ((word & IF_LINKED) === 0) {
        if (opts.allowUnlinked) continue;
        fail(`unlinked item chunk ${ref} in class ${cls}`);
      }
      census.items++;
      bytes += items.itemBytes(ref);
      if ((word & IF_CHUNKED) !== 0) {
        census.chunkedItems++;
        if (items.classOf(ref) !== largest) fail(`chunked item ${ref} in LRU class ${items.classOf(ref)}`);
        if (items.chunkClassOf(ref) !== cls) fail(`chunked item header ${ref} class ${items.chunkClassOf(ref)} in page of ${cls}`);
      } else if (items.classOf(ref) !== cls) {
        fail(`item ${ref} says class ${items.classOf(ref)} in a page of class ${cls}`);
      }
      const k = Buffer.from(items.page(ref).subarray(items.keyOffset(ref), items.keyOffset(ref) + items.nkey(ref)));
      if (items.index.find(hashKey(k, 0, k.length), k, 0, k.length) !== ref) fail(`item ${k.toString('latin1')} not found by its key`);
    }
  }
  for (let cls = 1; cls <= largest; cls++) {
    if (pagesSeen[cls] !== slabs.pagesPerClass[cls]) fail(`class ${cls}: ${pagesSeen[cls]} pages seen, ${slabs.pagesPerClass[cls]} counted`);
    let n = 0;
    for (let ref = slabs.freeHead[cls]; ref !== 0; ref = slabs.u32Of(ref)[((ref & 0x7ffffff) << 1) + 1]) {
      if (!freeSeen.has(ref)) fail(`free list of class ${cls} holds ${ref}, not a free chunk of the class`);
      n++;
      if (n > 1e7) fail('free list loops');
    }
    if (n !== slabs.freeCount[cls]) fail(`class ${cls}: ${n} chunks on the free list, ${slabs.freeCount[cls]} counted`);
    census.freeChunks += n;
    if (!e.mover.running && used[cls] !== slabs.usedChunks[cls]) fail(`class ${cls}: ${used[cls]} chunks used, ${slabs.usedChunks[cls]} counted`);
    for (let seg = 0; seg < 4; seg++) {
      const id = (cls << 2) | seg;
      let count = 0;
      let prev = 0;
      for (let ref = items.lruHead[id]; ref !== 0; ref = items.next(ref)) {
        if (items.prev(ref) !== prev) fail(`LRU ${cls}/${seg}: broken prev link at ${ref}`);
        if (items.classOf(ref) !== cls || items.segment(ref) !== seg) fail(`LRU ${cls}/${seg} holds an item of ${items.classOf(ref)}/${items.segment(ref)}`);
        prev = ref;
        count++;
        if (count > 1e7) fail('LRU loops');
      }
      if (items.lruTail[id] !== prev) fail(`LRU ${cls}/${seg}: tail is not the last item`);
      if (count !== items.lruCount[id]) fail(`LRU ${cls}/${seg}: ${count} items, ${items.lruCount[id]} counted`);
    }
  }
  if (census.items !== items.currItems) fail(`${census.items} linked items, curr_items ${items.currItems}`);
  if (bytes !== items.currBytes) fail(`${bytes} bytes in linked items, bytes ${items.currBytes}`);
  return census;
}
