/**
 * Replies whose value lives in extstore (a header item, see src/engine/storage.ts), for every
 * protocol: the reply is reserved in the connection's Output as a hole, the value is read
 * asynchronously, and the hole is filled when the read completes, or turned into the
 * protocol's miss reply when it fails. Replies after it keep their order (src/net/connection
 * sends only up to the first pending hole).
 *
 * Use (text get, meta mg, binary get all follow this pattern):
 *
 *   const start = out.length;
 *   ...append the reply header (VALUE line / VA line / binary header, extras, key)...
 *   const valueAt = out.length - start;
 *   const hole = out.holeFrom(start, nbytes + trailerBytes, missReply);
 *   ...write the trailer (CRLF) at hole.start + valueAt + nbytes...
 *   fetchIntoHole(engine, out, view, hole, valueAt);      (inside the engine's sink call)
 *
 * The read may complete before fetchIntoHole returns (a value still in a write buffer), so
 * everything in the region except the value must be written first. A failed read drops the
 * header item only once the engine operation has returned.
 */
import type { Engine } from '../engine/engine';
import type { ItemView } from '../engine/item-view';
import type { Hole, Output } from './output';

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
