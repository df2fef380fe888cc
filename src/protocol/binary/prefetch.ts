/**
 * The keys of the binary requests waiting in a read buffer, found ahead of running them, for
 * Engine.prefetchKeys (the text protocol's counterpart is src/protocol/text/prefetch.ts).
 * A pure function of the buffer's bytes, read as the session will read it: a request is its
 * 24-byte header, then extras, key and value (wire.ts). Every request with a key of up to
 * 250 bytes gives its key, whatever its opcode (a key that is no item's costs one wasted
 * touch). It stops at the first request not wholly in the buffer or not starting with the
 * request magic byte.
 */
import { KEY_BYTES_MAX } from '../../engine/engine';
import { HEADER_BYTES, MAGIC_REQUEST } from './wire';

/**
 * Write the [start, length) of each request's key in buf[start, end) into `spans` (two
 * entries a key), looking at no more than `requestsMax` requests and `keysMax` keys.
 * Returns the number of keys.
 */
export function collectBinaryKeys(buf: Uint8Array, start: number, end: number, spans: Int32Array, keysMax: number, requestsMax: number): number {
  let keys = 0;
  let pos = start;
  for (let r = 0; r < requestsMax && keys < keysMax; r++) {
    if (end - pos < HEADER_BYTES || buf[pos] !== MAGIC_REQUEST) break;
    const keylen = (buf[pos + 2] << 8) | buf[pos + 3];
    const extlen = buf[pos + 4];
    const bodylen = ((buf[pos + 8] << 24) | (buf[pos + 9] << 16) | (buf[pos + 10] << 8) | buf[pos + 11]) >>> 0;
    const keyAt = pos + HEADER_BYTES + extlen;
    if (extlen + keylen > bodylen || keyAt + keylen > end) break;
    if (keylen > 0 && keylen <= KEY_BYTES_MAX) {
      spans[keys * 2] = keyAt;
      spans[keys * 2 + 1] = keylen;
      keys++;
    }
    pos += HEADER_BYTES + bodylen;
  }
  return keys;
}
