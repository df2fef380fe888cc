/**
 * The binary protocol's wire constants (memcached's protocol_binary.h, doc/protocol-binary.xml):
 * magic bytes, opcodes, status codes, the 24-byte header layout and the error texts
 * memcached 1.6.18 puts in error bodies.
 *
 *   byte  0      1       2..3     4       5         6..7      8..11     12..15   16..23
 *        ┌──────┬───────┬────────┬───────┬─────────┬─────────┬─────────┬────────┬────────┐
 *        │magic │opcode │key len │ext len│data type│vbucket/ │body len │opaque  │CAS     │
 *        │      │       │(BE16)  │       │         │status   │(BE32)   │(as is) │(BE64)  │
 *        └──────┴───────┴────────┴───────┴─────────┴─────────┴─────────┴────────┴────────┘
 *   then: extras (ext len bytes), key (key len bytes), value (body len - ext len - key len).
 */

export const HEADER_BYTES = 24;
export const MAGIC_REQUEST = 0x80;
export const MAGIC_RESPONSE = 0x81;

/** memcached's BIN_MAX_EXTLEN is 20 (incr/decr); longer extras are read but ignored. */
export const EXTRAS_BYTES_MAX_USED = 20;
/** memcached's MAX_SASL_MECH_LEN. */
export const SASL_MECH_BYTES_MAX = 32;

export const enum Opcode {
  Get = 0x00,
  Set = 0x01,
  Add = 0x02,
  Replace = 0x03,
  Delete = 0x04,
  Increment = 0x05,
  Decrement = 0x06,
  Quit = 0x07,
  Flush = 0x08,
  GetQ = 0x09,
  Noop = 0x0a,
  Version = 0x0b,
  GetK = 0x0c,
  GetKQ = 0x0d,
  Append = 0x0e,
  Prepend = 0x0f,
  Stat = 0x10,
  SetQ = 0x11,
  AddQ = 0x12,
  ReplaceQ = 0x13,
  DeleteQ = 0x14,
  IncrementQ = 0x15,
  DecrementQ = 0x16,
  QuitQ = 0x17,
  FlushQ = 0x18,
  AppendQ = 0x19,
  PrependQ = 0x1a,
  /** Defined by the protocol; memcached 1.6 answers it with "Unknown command". */
  Verbosity = 0x1b,
  Touch = 0x1c,
  Gat = 0x1d,
  GatQ = 0x1e,
  SaslListMechs = 0x20,
  SaslAuth = 0x21,
  SaslStep = 0x22,
  GatK = 0x23,
  GatKQ = 0x24,
}

export const enum Status {
  Success = 0x00,
  KeyNotFound = 0x01,
  KeyExists = 0x02,
  TooLarge = 0x03,
  InvalidArguments = 0x04,
  NotStored = 0x05,
  DeltaBadValue = 0x06,
  AuthError = 0x20,
  AuthContinue = 0x21,
  UnknownCommand = 0x81,
  OutOfMemory = 0x82,
}

function latin1(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

/** Error bodies as memcached's write_bin_error writes them. */
export const ERROR_TEXT = {
  notFound: latin1('Not found'),
  exists: latin1('Data exists for key.'),
  tooLarge: latin1('Too large.'),
  invalid: latin1('Invalid arguments'),
  notStored: latin1('Not stored.'),
  badDelta: latin1('Non-numeric server-side value for incr or decr'),
  authFailure: latin1('Auth failure.'),
  unknownCommand: latin1('Unknown command'),
  outOfMemory: latin1('Out of memory'),
  // out_of_memory() callers pass their own text, "SERVER_ERROR " stripped
  oomAllocatingItem: latin1('Out of memory allocating item'),
  oomIncrementing: latin1('Out of memory incrementing value'),
  oomNewItem: latin1('Out of memory allocating new item'),
};

export const AUTHENTICATED = latin1('Authenticated');
