/**
 * What protocol code may know of an item, and what an engine operation answers: one reused
 * object per session (no allocation per request), filled by the engine.
 *
 * The engine is the only door into the store (doc/architecture.md): protocol code never
 * holds an item reference. A reading operation (get, mg, me) calls its sink with the view
 * while the engine holds the item's lock; during that call `key*` and `copyValue` are
 * valid, and the numbers stay true afterwards. Storage operations hand out an opaque
 * handle for the item being filled (a number the protocol only passes back).
 */

/** The protocol a request came in on: memcached counts some things per protocol. */
export const enum Proto {
  Text = 0,
  Meta = 1,
  Binary = 2,
}

/** Why an allocation failed. */
export const enum AllocFailure {
  None = 0,
  TooLarge = 1,
  NoMemory = 2,
}

/** Renders what a reply needs of an item; called under the item's lock. */
export interface ItemSink {
  item(view: ItemView): void;
}

/** Reads a value's bytes for a view during a sink call (implemented by the engine). */
export interface ValueSource {
  copyValue(view: ItemView, dst: Uint8Array, dstOffset: number, dstView: DataView<ArrayBufferLike> | null): number;
}

export class ItemView {
  // ---------------------------------------------------------------- the item
  /** Client flags. */
  flags = 0;
  cas = 0;
  /** Value length in bytes. */
  nbytes = 0;
  /** Server-relative expiry time (0: never). */
  exptime = 0;
  /** Server-relative time of the last access. */
  lastAccess = 0;
  /** Fetched since it was stored (memcached's ITEM_FETCHED). */
  fetched = false;
  /** The key was given base64-encoded (meta b). */
  keyBinary = false;
  /** Slab class (memcached's slabs_clsid). */
  cls = 0;
  /** memcached's size of the item (header, key, suffix, value, CRLF), for `me` and dumps. */
  memcachedSize = 0;
  /** The value lives in extstore: read it with Engine.readDiskValue during the sink call. */
  onDisk = false;
  /** Set by the sink: there was no memory to read the value from disk (counted as a miss). */
  diskReadRefused = false;
  /** Set by the sink with diskReadRefused: the get fails whole and counts nothing (text get). */
  refusalUncounted = false;
  /** Meta: the item was invalidated (stale, X). */
  stale = false;
  /** Meta: a win token was already handed out for it (Z). */
  tokenSent = false;
  /** The key, valid during a sink call. */
  keyBuf: Uint8Array = EMPTY;
  keyStart = 0;
  keyLen = 0;

  // ---------------------------------------------------------------- operation results
  /** The protocol of the request, set by the session once. */
  proto: Proto = Proto.Text;
  /** Why the last allocation failed. */
  failure: AllocFailure = AllocFailure.None;
  /** incr/decr: the new value, when `deltaSmall` is -1. */
  delta = 0n;
  /** incr/decr: the new value when below 2^53 and computed without bigints; else -1. */
  deltaSmall = -1;
  /** incr/decr: the value did not fit in place (or a reply held the item): a copy was stored. */
  copied = false;
  /** append/prepend: the stored size of the merged value (-1: not an append/prepend). */
  storedBytes = -1;
  /** Meta: this request won the right to recache (W). */
  won = false;
  /** Meta: the item was created by this request (N). */
  created = false;

  /** Engine-internal: the item the view describes. Protocol code must not use it. */
  ref = 0;
  /** Engine-internal. */
  source: ValueSource | null = null;

  constructor(proto: Proto = Proto.Text) {
    this.proto = proto;
  }

  /**
   * Copy the value into dst at dstOffset (only during a sink call); `dstView` (a DataView over
   * dst's bytes, as Output keeps) makes short copies faster. Returns its length.
   */
  copyValue(dst: Uint8Array, dstOffset: number, dstView: DataView<ArrayBufferLike> | null = null): number {
    return this.source!.copyValue(this, dst, dstOffset, dstView);
  }

  /** Seconds left before expiry as memcached prints them (-1: never). */
  ttl(now: number): number {
    return this.exptime === 0 ? -1 : this.exptime - now;
  }
}

const EMPTY = new Uint8Array(0);
