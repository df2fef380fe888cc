/**
 * Binary session in-process: every request split at every byte gives the same replies as
 * the request in one piece; limits, yields and the protocol dispatcher.
 */
import { describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/engine';
import { ServerStats } from '../../src/metrics/stats';
import { createSession, sessionKind } from '../../src/protocol/dispatch';
import { Output } from '../../src/protocol/output';
import { FeedStatus, type ConnectionInfo } from '../../src/protocol/session';
import { defaultSettings } from '../../src/settings';
import {
  OP, get, incrExtras, makeBinaryHarness, noop, parsePackets, req, set, setExtras, splits, u32,
} from './binary-helpers';

const sequences: Record<string, Buffer[]> = {
  'set then get': [set('key', 'value', { flags: 5, opaque: 1 }), get('key', { opaque: 2 })],
  'quiet commands and noop': [
    req({ op: OP.SETQ, key: 'a', value: '1', extras: setExtras(0, 0) }), req({ op: OP.GETKQ, key: 'a' }),
    req({ op: OP.GETQ, key: 'zz' }), req({ op: OP.ADDQ, key: 'a', value: '2', extras: setExtras(0, 0) }), noop(9),
  ],
  'incr with initial, decr, delete': [
    req({ op: OP.INCR, key: 'n', extras: incrExtras(1n, 41n, 0) }), req({ op: OP.INCR, key: 'n', extras: incrExtras(1n, 0n, 0) }),
    req({ op: OP.DECRQ, key: 'n', extras: incrExtras(2n, 0n, 0) }), get('n'), req({ op: OP.DELETE, key: 'n' }),
  ],
  'append, prepend, gat, touch': [
    set('x', 'mid'), req({ op: OP.APPEND, key: 'x', value: 'R' }), req({ op: OP.PREPEND, key: 'x', value: 'L' }),
    req({ op: OP.GATK, key: 'x', extras: u32(100) }), req({ op: OP.TOUCH, key: 'x', extras: u32(0) }),
  ],
  'too large value swallowed': [set('big', Buffer.alloc(1024 * 1024 + 1, 0x41)), noop(1), get('big')],
  'unknown opcode swallows': [req({ op: 0x1b, extras: u32(1) }), Buffer.from('junk'), noop(3)],
  'stats and version': [req({ op: OP.STAT, key: 'settings' }), req({ op: OP.VERSION }), req({ op: OP.STAT, key: 'bogus' })],
  'protocol error closes': [set('a', 'b'), req({ op: OP.GET, key: 'a', extras: u32(1) }), get('a')],
  'quit closes': [get('a'), req({ op: OP.QUIT }), get('a')],
};

describe('binary requests split at every byte', () => {
  for (const [name, parts] of Object.entries(sequences)) {
    it(name, () => {
      const data = Buffer.concat(parts);
      const whole = makeBinaryHarness().run([data]);
      expect(whole.reply.length).toBeGreaterThan(0);
      const all = splits(data);
      // byte-at-a-time over a megabyte is slow: keep every two-chunk split, sample the rest
      const chosen = data.length > 4096 ? all.filter((_, i) => i < 200 || i % 997 === 0 || i > all.length - 200) : all;
      for (const chunks of chosen) {
        const r = makeBinaryHarness().run(chunks);
        expect(r.closed).toBe(whole.closed);
        // CAS values come from one counter per engine: equal runs give equal bytes
        expect(r.reply.equals(whole.reply)).toBe(true);
      }
    });
  }
});

describe('binary session limits', () => {
  it('closes when header, extras and key cannot fit memcached\'s read buffer', () => {
    const h = makeBinaryHarness();
    const r = h.run([req({ op: OP.GET, key: 'k', keylen: 16384, bodylen: 16384 })]);
    expect(r.closed).toBe(true);
    expect(r.reply.length).toBe(0);
  });

  it('waits for a header-declared key of up to the read buffer, then answers EINVAL', () => {
    const h = makeBinaryHarness();
    const head = req({ op: OP.GET, keylen: 300, bodylen: 300 });
    expect(h.run([head]).reply.length).toBe(0);
    const r = h.run([Buffer.alloc(300, 0x6b)]);
    expect(parsePackets(r.reply).packets[0].status).toBe(0x04);
    expect(r.closed).toBe(true);
  });

  it('a huge declared body is swallowed without being buffered; its E2BIG waits for the last byte, as memcached\'s', () => {
    const h = makeBinaryHarness();
    const declared = 0x20000000;
    const r = h.run([req({ op: OP.SET, key: 'a', extras: setExtras(0, 0), bodylen: declared }), Buffer.alloc(65536)]);
    expect(r.reply.length).toBe(0);
    expect(r.closed).toBe(false);
    // 1 + 8 bytes of key and extras were part of the request head; the value is the rest.
    let left = declared - 9 - 65536;
    const chunk = Buffer.alloc(16 * 1024 * 1024);
    while (left > chunk.length) {
      expect(h.run([chunk]).reply.length).toBe(0);
      left -= chunk.length;
    }
    expect(parsePackets(h.run([chunk.subarray(0, left), noop(7)]).reply).packets.map((p) => [p.status, p.opaque]))
      .toEqual([[0x03, 0], [0, 7]]);
  });

  // memcached 1.6.45 transmits nothing while it swallows (conn_swallow): checked byte for
  // byte against it in binary-vs-memcached.test.ts.
  it('opcode 0xf6 with a 1-byte key: "Unknown command" only once the body byte it swallows has come', () => {
    const h = makeBinaryHarness();
    const head = req({ op: 0xf6, key: 'a', opaque: 0xaabbccdd });
    expect(h.run([head]).reply.length).toBe(0);
    const r = h.run([noop(1)]);
    // The swallowed byte is the NOOP's magic: what is left of it is not a full header.
    expect(parsePackets(r.reply).packets.map((p) => [p.opcode, p.status, p.opaque])).toEqual([[0xf6, 0x81, 0xaabbccdd]]);
    expect(r.closed).toBe(false);
  });

  it('replies held by a swallow are dropped when the next header is bad, as memcached drops them', () => {
    const h = makeBinaryHarness();
    expect(h.run([noop(1), req({ op: 0xf6, key: 'a' })]).reply.length).toBe(24);
    const r = h.run([Buffer.concat([noop(2), noop(3)])]);
    expect(r.reply.length).toBe(0);
    expect(r.closed).toBe(true);
  });

  it('a declared body over 1 GiB is refused with EINVAL and closes (memcached 1.6.45)', () => {
    const h = makeBinaryHarness();
    const r = h.run([req({ op: OP.SET, key: 'a', extras: setExtras(0, 0), bodylen: 0x7fff0000 }), Buffer.alloc(65536)]);
    expect(parsePackets(r.reply).packets.map((p) => p.status)).toEqual([0x04]);
    expect(r.closed).toBe(true);
  });

  it('yields after -R requests and resumes', () => {
    const h = makeBinaryHarness({ requestsPerEvent: 2 });
    const data = Buffer.concat([noop(1), noop(2), noop(3), noop(4), noop(5)]);
    const used = h.session.feed(data, 0, data.length);
    expect(h.session.status).toBe(FeedStatus.Yield);
    expect(used).toBe(48);
    const r = makeBinaryHarness({ requestsPerEvent: 2 }).run([data]);
    expect(parsePackets(r.reply).packets.map((p) => p.opaque)).toEqual([1, 2, 3, 4, 5]);
  });

  it('counts binary stores and misses as memcached', () => {
    const h = makeBinaryHarness();
    h.run([set('a', 'b'), get('a'), get('zz'), req({ op: OP.INCR, key: 'n', extras: incrExtras(1n, 5n, 0) }),
      req({ op: OP.INCR, key: 'm', extras: incrExtras(1n, 5n, 0xffffffff) }), set('big', Buffer.alloc(2 * 1024 * 1024))]);
    const s = h.engine.stats;
    expect([s.cmd_set, s.get_hits, s.get_misses, s.incr_misses, s.store_too_large]).toEqual([1, 1, 1, 1, 0]);
  });

  it('release() frees an item whose value was still arriving', () => {
    const h = makeBinaryHarness();
    const before = h.engine.slabs.usedChunks.reduce((a, b) => a + b, 0);
    h.run([set('a', Buffer.alloc(1000)).subarray(0, 500)]);
    h.session.release();
    expect(h.engine.slabs.usedChunks.reduce((a, b) => a + b, 0)).toBe(before);
  });
});

describe('createSession', () => {
  const make = (bindProtocol: 'auto' | 'ascii' | 'binary') => {
    const settings = { ...defaultSettings(), memoryLimitBytes: 8 * 1024 * 1024, bindProtocol };
    const engine = new Engine(settings, new ServerStats());
    const out = new Output(1024);
    const conn: ConnectionInfo = { id: 1, transport: 'tcp', peerName: 'x', lastCommandTime: 0, stateName: '' };
    const stats = { engine, startedUnixSeconds: 0, connections: () => [conn], acceptingConnections: () => true };
    const session = createSession(engine, out, conn, { stats: stats as never, shutdown: () => undefined }, settings);
    return Object.assign((data: Buffer): string => {
      session.feed(data, 0, data.length);
      const s = out.buf.toString('latin1', 0, out.length);
      out.reset();
      return s;
    }, { kind: () => sessionKind(session) });
  };

  it('auto: binary on 0x80, text otherwise, for the life of the connection', () => {
    const bin = make('auto');
    expect(bin(noop(7)).charCodeAt(0)).toBe(0x81);
    expect(bin(Buffer.from('version\r\n')).length).toBe(0);
    const text = make('auto');
    expect(text(Buffer.from('version\r\n'))).toBe('VERSION 1.6.45\r\n');
  });

  it('sessionKind tells a negotiated session from a fixed one, and is null until a byte decides', () => {
    const auto = make('auto');
    expect(auto.kind()).toBeNull();
    auto(Buffer.from('version\r\n'));
    expect(auto.kind()).toBe('auto:TextSession');
    const ascii = make('ascii');
    expect(ascii.kind()).toBe('TextSession');
    const bin = make('auto');
    bin(noop(7));
    expect(bin.kind()).toBe('auto:BinarySession');
  });

  it('ascii and binary are fixed', () => {
    // a NOOP's opcode byte is a newline: the text protocol sees a line too short to parse
    expect(make('ascii')(noop(1))).toBe('CLIENT_ERROR bad command line format\r\n');
    expect(make('binary')(Buffer.from('version\r\nversion\r\nversion\r\n'))).toBe('');
  });
});
