/**
 * UDP framing per memcached's protocol.txt: 8-byte header, one-datagram requests, replies
 * split into datagrams of at most 1400 bytes with sequence numbers and the total.
 */
import * as dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { UDP_DATAGRAM_BYTES_MAX, UDP_DATA_BYTES_MAX } from '../../src/net/udp';
import { LOOPBACK, sleep, startTestServer, waitFor, type TestServer } from './harness';

interface Frame {
  id: number;
  seq: number;
  total: number;
  reserved: number;
  payload: Buffer;
  size: number;
}

const opened: { servers: TestServer[]; sockets: dgram.Socket[] } = { servers: [], sockets: [] };

afterEach(async () => {
  for (const u of opened.sockets.splice(0)) u.close();
  for (const s of opened.servers.splice(0)) await s.net.close();
});

async function setup(overrides = {}): Promise<{ s: TestServer; port: number; frames: Frame[]; send: (id: number, body: string, total?: number) => void }> {
  const s = await startTestServer({ tcpPort: 0, udpPort: -1, ...overrides });
  opened.servers.push(s);
  const port = s.net.addresses().udp[0].port;
  const u = dgram.createSocket('udp4');
  opened.sockets.push(u);
  const frames: Frame[] = [];
  u.on('message', (m: Buffer) => {
    frames.push({
      id: m.readUInt16BE(0), seq: m.readUInt16BE(2), total: m.readUInt16BE(4), reserved: m.readUInt16BE(6),
      payload: m.subarray(8), size: m.length,
    });
  });
  await new Promise<void>((resolve) => u.bind(0, LOOPBACK, resolve));
  const send = (id: number, body: string, total = 1): void => {
    const h = Buffer.alloc(8);
    h.writeUInt16BE(id, 0);
    h.writeUInt16BE(0, 2);
    h.writeUInt16BE(total, 4);
    u.send(Buffer.concat([h, Buffer.from(body, 'latin1')]), port, LOOPBACK);
  };
  return { s, port, frames, send };
}

describe('UDP', () => {
  it('answers a one-datagram request with one framed datagram', async () => {
    const { frames, send, s } = await setup();
    send(0xbeef, 'hello\r\n');
    await waitFor(() => frames.length === 1, 3000, () => `${frames.length} frames`);
    expect(frames[0]).toMatchObject({ id: 0xbeef, seq: 0, total: 1, reserved: 0 });
    expect(frames[0].payload.toString('latin1')).toBe('hello\r\n');
    expect(s.stats.bytes_read).toBe(8 + 7);
    expect(s.stats.bytes_written).toBe(8 + 7);
  });

  it('splits a long reply into datagrams of at most 1400 bytes, numbered 0..n-1 with the total', async () => {
    const { frames, send } = await setup();
    const valueBytes = 5000;
    send(7, `big ${valueBytes} z\r\nafter\r\n`);
    const replyBytes = valueBytes + 2 + 7;
    const count = Math.ceil(replyBytes / UDP_DATA_BYTES_MAX);
    await waitFor(() => frames.length === count, 3000, () => `${frames.length} of ${count} frames`);
    await sleep(100);
    expect(frames.length).toBe(count);
    const sorted = [...frames].sort((a, b) => a.seq - b.seq);
    expect(sorted.map((f) => f.seq)).toEqual([...Array(count).keys()]);
    for (const f of sorted) {
      expect(f).toMatchObject({ id: 7, total: count, reserved: 0 });
      expect(f.size).toBeLessThanOrEqual(UDP_DATAGRAM_BYTES_MAX);
    }
    expect(sorted.slice(0, -1).every((f) => f.size === UDP_DATAGRAM_BYTES_MAX)).toBe(true);
    const joined = Buffer.concat(sorted.map((f) => f.payload)).toString('latin1');
    expect(joined).toBe(`${'z'.repeat(valueBytes)}\r\nafter\r\n`);
  });

  it('drops multi-datagram requests and datagrams no longer than the header', async () => {
    const { frames, send, s } = await setup();
    send(1, 'dropped\r\n', 2);
    send(2, '');
    send(3, 'kept\r\n');
    await waitFor(() => frames.length === 1, 3000, () => `${frames.length} frames`);
    await sleep(100);
    expect(frames.map((f) => [f.id, f.payload.toString('latin1')])).toEqual([[3, 'kept\r\n']]);
    // memcached counts a dropped multi-datagram request as read, not a bare header.
    expect(s.stats.bytes_read).toBe(8 + 9 + 8 + 6);
  });

  it('keeps no partial request from one datagram to the next', async () => {
    const { frames, send, s } = await setup();
    send(1, 'hel');
    send(2, 'lo\r\n');
    await waitFor(() => frames.length === 1, 3000, () => `${frames.length} frames`);
    expect(frames[0].id).toBe(2);
    expect(frames[0].payload.toString('latin1')).toBe('lo\r\n');
    expect(s.factory.sessions.length).toBe(2);
    expect(s.factory.sessions.every((x) => x.released)).toBe(true);
  });

  it('serves every request in a datagram past requestsPerEvent, counting yields', async () => {
    const { frames, send, s } = await setup({ requestsPerEvent: 2 });
    send(9, 'a\r\nb\r\nc\r\nd\r\ne\r\n');
    await waitFor(() => frames.length === 1, 3000, () => `${frames.length} frames`);
    expect(frames[0].payload.toString('latin1')).toBe('a\r\nb\r\nc\r\nd\r\ne\r\n');
    expect(s.stats.conn_yields).toBe(2);
  });

  it('counts the UDP socket as a connection and lists it as memcached does', async () => {
    const { s, port } = await setup();
    expect(s.stats.curr_connections).toBe(0);
    expect(s.stats.total_connections).toBe(1);
    expect([...s.net.connections()].map((c) => [c.transport, c.peerName, c.stateName])).toEqual([
      ['udp', `udp:127.0.0.1:${port}`, 'conn_read'],
    ]);
  });
});
