/**
 * Replies whose value lives in extstore (a header item, see src/engine/storage.ts), for every
 * protocol. When the value can be had at once (a write buffer, or the page cache), it is read
 * straight into the connection's Output behind the reply header, like a value in memory.
 * Otherwise the reply is reserved in the Output as a hole, the value is read asynchronously,
 * and the hole is filled when the read completes, or turned into the protocol's miss reply
 * when it fails. Replies after it keep their order (src/net/connection sends only up to the
 * first pending hole).
 *
 * Use (text get, meta mg, binary get all follow this pattern, inside the engine's sink call):
 *
 *   const start = out.length;
 *   ...append the reply header (VALUE line / VA line / binary header, extras, key)...
 *   appendDiskValue(engine, out, view, start, crlf, missReply);
 *
 * A failed read drops the header item only once the engine operation has returned.
 */
import type { Engine } from '../engine/engine';
import type { ItemView } from '../engine/item-view';
import type { Hole, Output } from './output';

/**
 * Append `view`'s value (and CRLF when `crlf`) to the reply begun at `start`: at once when it
 * can be read now, else through a hole whose miss reply is `miss`. False when there is no
 * memory to read it (memcached's get_oom_extstore): the reply becomes `miss` at once (the text
 * get then answers its out-of-memory error instead).
 */
export function appendDiskValue(engine: Engine, out: Output, view: ItemView, start: number, crlf: boolean,
  miss: Buffer): boolean {
  if (!engine.roomToReadDiskValue(view)) {
    view.diskReadRefused = true;
    out.length = start;
    if (miss.length > 0) out.bytes(miss, 0, miss.length);
    return false;
  }
  const nbytes = view.nbytes;
  const trailer = crlf ? 2 : 0;
  out.ensure(nbytes + trailer);
  const at = out.length;
  out.diskValues++;
  if (engine.readDiskValueNow(view, out.buf, at)) {
    out.length = at + nbytes;
    if (crlf) out.crlf();
    return true;
  }
  const valueAt = at - start;
  const hole = out.holeFrom(start, nbytes + trailer, miss);
  if (crlf) {
    out.buf[hole.start + valueAt + nbytes] = 13;
    out.buf[hole.start + valueAt + nbytes + 1] = 10;
  }
  fetchIntoHole(engine, out, view, hole, valueAt);
  return true;
}

/**
 * Read the value into a hole reserved for it (everything in the region but the value already
 * written): the read may complete before this returns (a value still in a write buffer).
 */
export function fetchIntoHole(engine: Engine, out: Output, view: ItemView, hole: Hole, valueAt: number): void {
  const nbytes = view.nbytes;
  engine.readDiskValue(view, (hit, buf, valueStart) => {
    if (hole.dead) {
      // Dropped by a truncate (counted then) or with its connection (counted now).
      if (!hole.abortCounted) engine.countAbortedDiskRead();
      return;
    }
    if (hit) out.fillHole(hole, valueAt, buf, valueStart, valueStart + nbytes);
    else out.missHole(hole);
  });
}
