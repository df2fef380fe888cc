/**
 * Binary protocol test helpers: request encoding, response parsing and normalising, and an
 * in-process runner that feeds any ProtocolSession the way a connection does.
 */
import { Engine } from '../../src/engine/engine';
import { ServerStats } from '../../src/metrics/stats';
import { createSession, type SessionHooks } from '../../src/protocol/dispatch';
import { Output } from '../../src/protocol/output';
import { FeedStatus, type ConnectionInfo, type ProtocolSession } from '../../src/protocol/session';
import { defaultSettings, type Settings } from '../../src/settings';

export const OP = {
  GET: 0x00, SET: 0x01, ADD: 0x02, REPLACE: 0x03, DELETE: 0x04, INCR: 0x05, DECR: 0x06, QUIT: 0x07,
  FLUSH: 0x08, GETQ: 0x09, NOOP: 0x0a, VERSION: 0x0b, GETK: 0x0c, GETKQ: 0x0d, APPEND: 0x0e,
  PREPEND: 0x0f, STAT: 0x10, SETQ: 0x11, ADDQ: 0x12, REPLACEQ: 0x13, DELETEQ: 0x14, INCRQ: 0x15,
  DECRQ: 0x16, QUITQ: 0x17, FLUSHQ: 0x18, APPENDQ: 0x19, PREPENDQ: 0x1a, VERBOSITY: 0x1b, TOUCH: 0x1c,
  GAT: 0x1d, GATQ: 0x1e, SASL_LIST: 0x20, SASL_AUTH: 0x21, SASL_STEP: 0x22, GATK: 0x23, GATKQ: 0x24,
} as const;

export interface Req {
  op: number;
  key?: string | Buffer;
  extras?: Buffer;
  value?: string | Buffer;
  cas?: bigint;
  opaque?: number;
  /** Override the declared lengths (hostile headers). */
  keylen?: number;
  extlen?: number;
  bodylen?: number;
  magic?: number;
}

function bytes(v: string | Buffer | undefined): Buffer {
  if (v === undefined) return Buffer.alloc(0);
  return typeof v === 'string' ? Buffer.from(v, 'latin1') : v;
}

export function req(r: Req): Buffer {
  const key = bytes(r.key);
  const extras = r.extras ?? Buffer.alloc(0);
  const value = bytes(r.value);
  const h = Buffer.alloc(24);
  h[0] = r.magic ?? 0x80;
  h[1] = r.op;
  h.writeUInt16BE(r.keylen ?? key.length, 2);
  h[4] = r.extlen ?? extras.length;
  h.writeUInt32BE(r.bodylen ?? extras.length + key.length + value.length, 8);
  h.writeUInt32BE(r.opaque ?? 0, 12);
  h.writeBigUInt64BE(r.cas ?? 0n, 16);
  return Buffer.concat([h, extras, key, value]);
}

export function setExtras(flags: number, exptime: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(flags >>> 0, 0);
  b.writeUInt32BE(exptime >>> 0, 4);
  return b;
}

export function incrExtras(delta: bigint, initial: bigint, exptime: number): Buffer {
  const b = Buffer.alloc(20);
  b.writeBigUInt64BE(delta, 0);
  b.writeBigUInt64BE(initial, 8);
  b.writeUInt32BE(exptime >>> 0, 16);
  return b;
}

export function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
}

export const set = (key: string, value: string | Buffer, o: Partial<Req> & { flags?: number; exptime?: number } = {}): Buffer =>
  req({ op: OP.SET, key, value, extras: setExtras(o.flags ?? 0, o.exptime ?? 0), ...o });
export const get = (key: string, o: Partial<Req> = {}): Buffer => req({ op: OP.GET, key, ...o });
export const noop = (opaque = 0): Buffer => req({ op: OP.NOOP, opaque });

export interface Packet {
  magic: number;
  opcode: number;
  status: number;
  opaque: number;
  cas: bigint;
  extras: Buffer;
  key: Buffer;
  value: Buffer;
  datatype: number;
}

/** Split a response stream into packets; `rest` is an incomplete tail. */
export function parsePackets(data: Buffer): { packets: Packet[]; rest: Buffer } {
  const packets: Packet[] = [];
  let p = 0;
  while (data.length - p >= 24) {
    const keylen = data.readUInt16BE(p + 2);
    const extlen = data[p + 4];
    const bodylen = data.readUInt32BE(p + 8);
    if (data.length - p < 24 + bodylen) break;
    const b = p + 24;
    packets.push({
      magic: data[p],
      opcode: data[p + 1],
      datatype: data[p + 5],
      status: data.readUInt16BE(p + 6),
      opaque: data.readUInt32BE(p + 12),
      cas: data.readBigUInt64BE(p + 16),
      extras: data.subarray(b, b + extlen),
      key: data.subarray(b + extlen, b + extlen + keylen),
      value: data.subarray(b + extlen + keylen, b + bodylen),
    });
    p += 24 + bodylen;
  }
  return { packets, rest: data.subarray(p) };
}

/**
 * Stat names memcached-ts prints and memcached 1.6.45 does not (documented in
 * doc/compatibility.md); like the text-side stats test, extra names are allowed.
 */
export const OURS_ONLY_STAT_NAMES = new Set(['sched_policy', 'sched_priority', 'tcp_fastopen', 'metrics_listen']);

export interface NormaliseOptions {
  /** STAT packets: keep names, drop values (they differ between servers and runs). */
  statValues?: boolean;
}

/**
 * One line per packet, CAS values replaced by their first-seen order (#1, #2...), the
 * version body replaced by "<version>"; with statValues false, stat values are dropped.
 */
export function normalise(data: Buffer, o: NormaliseOptions = {}): string {
  const { packets, rest } = parsePackets(data);
  const seen = new Map<bigint, string>();
  const cas = (c: bigint): string => {
    if (c === 0n) return '0';
    if (!seen.has(c)) seen.set(c, `#${seen.size + 1}`);
    return seen.get(c)!;
  };
  const kept = packets.filter((k) => !(k.opcode === OP.STAT && OURS_ONLY_STAT_NAMES.has(k.key.toString('latin1'))));
  const lines = kept.map((k) => {
    let value = k.value.toString('latin1');
    if (k.opcode === OP.VERSION && k.status === 0) value = '<version>';
    if (k.opcode === OP.STAT && k.status === 0 && o.statValues !== true && k.key.length > 0) value = '';
    // memcached's prefix table is a hash table: its dump order is not meaningful
    if (k.opcode === OP.STAT && k.key.toString('latin1') === 'detailed') value = value.split('\r\n').sort().join('\r\n');
    const ext = k.extras.toString('hex');
    return `${k.magic.toString(16)} op=${k.opcode.toString(16)} st=${k.status.toString(16)} dt=${k.datatype} ` +
      `opq=${k.opaque} cas=${cas(k.cas)} ext=${ext} key=${JSON.stringify(k.key.toString('latin1'))} ` +
      `val=${JSON.stringify(value)}`;
  });
  if (rest.length > 0) lines.push(`partial ${rest.toString('hex')}`);
  return lines.join('\n');
}

export interface BinaryHarness {
  engine: Engine;
  session: ProtocolSession;
  settings: Settings;
  /** Feed chunks in order; returns every reply byte, and whether the session closed. */
  run(chunks: Buffer[]): { reply: Buffer; closed: boolean };
}

export function makeBinaryHarness(overrides: Partial<Settings> = {}, hooksExtra: Partial<SessionHooks> = {}): BinaryHarness {
  const settings = { ...defaultSettings(), memoryLimitBytes: 64 * 1024 * 1024, ...overrides };
  const engine = new Engine(settings, new ServerStats());
  const out = new Output(1024);
  const conn: ConnectionInfo = { id: 1, transport: 'tcp', peerName: 'tcp:test', lastCommandTime: 0, stateName: 'conn_parse_cmd' };
  const hooks: SessionHooks = {
    stats: {
      engine,
      startedUnixSeconds: 0,
      connections: () => [conn],
      acceptingConnections: () => true,
    } as SessionHooks['stats'],
    shutdown: () => undefined,
    ...hooksExtra,
  };
  const session = createSession(engine, out, conn, hooks, settings);
  let pending = Buffer.alloc(0);
  let closed = false;
  const run = (chunks: Buffer[]): { reply: Buffer; closed: boolean } => {
    const replies: Buffer[] = [];
    for (const chunk of chunks) {
      if (closed) break;
      pending = Buffer.concat([pending, chunk]);
      for (let guard = 0; guard < 100000; guard++) {
        const used = session.feed(pending, 0, pending.length);
        pending = pending.subarray(used);
        replies.push(Buffer.from(out.buf.subarray(0, out.length)));
        out.reset();
        if (session.status === FeedStatus.Close) {
          closed = true;
          break;
        }
        if (session.status !== FeedStatus.Yield) break;
      }
    }
    return { reply: Buffer.concat(replies), closed };
  };
  return { engine, session, settings, run };
}

/** Every split of `data` into two chunks, plus byte-at-a-time. */
export function splits(data: Buffer): Buffer[][] {
  const out: Buffer[][] = [[data]];
  for (let i = 1; i < data.length; i++) out.push([data.subarray(0, i), data.subarray(i)]);
  out.push([...data].map((b) => Buffer.from([b])));
  return out;
}
