/**
 * What the text protocol's command modules (meta.ts, admin.ts) see of a session: the
 * tokenized request line, the reply helpers and the value state machine. TextSession
 * (session.ts) implements it; the modules depend on this interface, not on the session, so
 * no module of the text family imports another in a loop.
 */
import type { Engine, HeldItems, StoreMode } from '../../engine/engine';
import type { Watcher } from '../../metrics/logger';
import type { Output } from '../output';
import type { ConnectionInfo, FeedStatus } from '../session';

function bytes(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

/** memcached's fixed replies. */
export const R = {
  STORED: bytes('STORED\r\n'),
  NOT_STORED: bytes('NOT_STORED\r\n'),
  EXISTS: bytes('EXISTS\r\n'),
  NOT_FOUND: bytes('NOT_FOUND\r\n'),
  DELETED: bytes('DELETED\r\n'),
  TOUCHED: bytes('TOUCHED\r\n'),
  END: bytes('END\r\n'),
  OK: bytes('OK\r\n'),
  ERROR: bytes('ERROR\r\n'),
  VALUE: bytes('VALUE '),
  BAD_FORMAT: bytes('CLIENT_ERROR bad command line format\r\n'),
  BAD_CHUNK: bytes('CLIENT_ERROR bad data chunk\r\n'),
  TOO_LARGE: bytes('SERVER_ERROR object too large for cache\r\n'),
  NO_MEMORY_STORE: bytes('SERVER_ERROR out of memory storing object\r\n'),
  NO_MEMORY: bytes('SERVER_ERROR out of memory\r\n'),
  BAD_EXPTIME: bytes('CLIENT_ERROR invalid exptime argument\r\n'),
  BAD_DELTA: bytes('CLIENT_ERROR invalid numeric delta argument\r\n'),
  NON_NUMERIC: bytes('CLIENT_ERROR cannot increment or decrement non-numeric value\r\n'),
};

/** Finishes a storage command once its value has arrived (meta ms renders its own reply). */
export interface ValueCompletion {
  finish(s: TextRequest, handle: number, mode: StoreMode, casIn: number): void;
}

export interface TextRequest extends HeldItems {
  readonly engine: Engine;
  readonly out: Output;
  readonly conn: ConnectionInfo;
  status: FeedStatus;

  /** The buffer holding the request line; tokens are offsets into it. */
  readonly line: Buffer;
  readonly tokStart: Int32Array;
  readonly tokEnd: Int32Array;
  readonly ntokens: number;
  /** The value length of a storage command's line. */
  readonly vlen: number;
  /** noreply was given on this line. */
  readonly noreplyGiven: boolean;

  tokLen(i: number): number;
  tokEquals(i: number, word: Buffer): boolean;
  tokString(i: number): string;
  /** memcached's strncmp(token, word, token length) == 0. */
  tokPrefixOf(i: number, word: string): boolean;

  /** A fixed reply, unless noreply is in force (memcached's out_string). */
  reply(r: Buffer): void;
  replyString(s: string): void;
  /** A reply of memcached's request parser (pout_string). */
  preply(r: Buffer): void;

  /** memcached transmits here: replies let go of items. */
  markTransmitted(): void;
  /** An unsent reply refers to this item (its view's ref and CAS). */
  holdItem(ref: number, cas: number): void;

  /** Read `vlen` value bytes (plus CRLF) into the item being filled, then finish. */
  beginValue(handle: number, mode: StoreMode, casIn: number, vlen: number, completion: ValueCompletion | null): void;
  /** Discard the next `n` bytes (a value that will not be stored). */
  beginSwallow(n: number): void;
  /** `watch`: from now on the connection only receives `watcher`'s log lines. */
  startWatching(watcher: Watcher): void;
}
