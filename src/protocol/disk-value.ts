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
 *   fetchIntoHole(engine, out, ref, hole, valueAt);
 *
 * The read may complete before fetchIntoHole returns (a value still in a write buffer), so
 * everything in the region except the value must be written first. The caller may still
 * bump and count `ref` afterwards: a failed read unlinks the header item only once the
 * caller has returned.
 */
import type { Engine } from '../engine/engine';
import type { Hole, Output } from './output';

export function fetchIntoHole(engine: Engine, out: Output, ref: number, hole: Hole, valueAt: number): void {
  const storage = engine.storage;
  if (storage === null) throw new Error('header item without extstore');
  const nbytes = engine.items.nbytes(ref);
  storage.fetch(ref, (hit, buf, valueStart) => {
    if (hole.dead) {
      storage.counters.get_aborted_extstore++;
      return;
    }
    if (hit) out.fillHole(hole, valueAt, buf, valueStart, valueStart + nbytes);
    else out.missHole(hole);
  });
}
