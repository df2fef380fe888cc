/**
 * Connection behaviour over real loopback sockets, in both read paths: the static-buffer
 * `onread` path ('auto' on Node 20) and the `'data'` fallback.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { probeOnread } from '../../src/net/node-internals';
import { Client, sleep, startTestServer, waitFor, type TestServer } from './harness';

const opened: { servers: TestServer[]; clients: Client[] } = { servers: [], clients: [] };

afterEach(async () => {
  for (const c of opened.clients.splice(0)) c.destroy();
  for (const s of opened.servers.splice(0)) await s.net.close();
});

async function server(...args: Parameters<typeof startTestServer>): Promise<TestServer> {
  const s = await startTestServer(...args);
  opened.servers.push(s);
  return s;
}

async function client(target: number | string): Promise<Client> {
  const c = new Client(target);
  opened.clients.push(c);
  await c.connected();
  return c;
}

describe('read path', () => {
  it('probes the onread path as working on this Node.js and uses it by default', async () => {
    expect(await probeOnread()).toBe(true);
    const s = await server();
    expect(s.net.readMode).toBe('onread');
  });

  it('uses data events when asked', async () => {
    const s = await server({}, { readMode: 'data' });
    expect(s.net.readMode).toBe('data');
  });
});

describe('connection buffers', () => {
  it("a closed connection's read and output buffers serve the next ones, at most connectionBuffersSpareMax kept", async () => {
    const s = await server({ connectionBuffersSpareMax: 2 });
    expect(s.net.spareBuffers()).toEqual({ read: 0, output: 0 });
    // One after another: each takes the buffers the one before gave back.
    for (let i = 0; i < 5; i++) {
      const c = await client(s.port);
      const wire = `hello ${i} ${'x'.repeat(i * 100)}\r\n`;
      await c.send(wire);
      await c.waitBytes(wire.length);
      // A reused buffer carries nothing of the connection before.
      expect(c.text()).toBe(wire);
      c.destroy();
      await waitFor(() => s.net.spareBuffers().read === 1, 5000, () => JSON.stringify(s.net.spareBuffers()));
      expect(s.net.spareBuffers()).toEqual({ read: 1, output: 1 });
    }
    // Three at once: two are kept when they close, the third is dropped.
    const three = await Promise.all([client(s.port), client(s.port), client(s.port)]);
    for (const c of three) await c.send('x\r\n');
    for (const c of three) await c.waitBytes(3);
    for (const c of three) c.destroy();
    await waitFor(() => s.net.spareBuffers().read === 2, 5000, () => JSON.stringify(s.net.spareBuffers()));
    await sleep(50);
    expect(s.net.spareBuffers()).toEqual({ read: 2, output: 2 });
  });
});

for (const readMode of ['auto', 'data'] as const) {
  describe(`connection (${readMode})`, () => {
    it('delivers input split at every byte intact, through a read buffer smaller than a line', async () => {
      const s = await server({ readBufferBytes: 7 }, { readMode });
      const c = await client(s.port);
      c.socket.setNoDelay(true);
      const lines = ['hello world', 'x'.repeat(1000), 'tail line with spaces', ''];
      const wire = lines.map((l) => `${l}\r\n`).join('');
      for (let i = 0; i < wire.length; i += i < 40 ? 1 : 97) {
        await c.send(wire.slice(i, i < 40 ? i + 1 : i + 97));
        if (i < 40) await sleep(1);
      }
      await c.waitBytes(wire.length);
      expect(c.text()).toBe(wire);
      expect(s.factory.sessions[0].lines).toEqual(lines);
    });

    it('answers pipelined requests in order with one reply stream', async () => {
      const s = await server({}, { readMode });
      const c = await client(s.port);
      const count = 3000;
      let wire = '';
      for (let i = 0; i < count; i++) wire += `req ${i}\r\n`;
      await c.send(wire);
      await c.waitBytes(wire.length);
      expect(c.text()).toBe(wire);
    });

    it('yields after requestsPerEvent requests (-R), counts conn_yields and keeps order', async () => {
      const s = await server({ requestsPerEvent: 3 }, { readMode });
      const c = await client(s.port);
      let wire = '';
      for (let i = 0; i < 30; i++) wire += `r${i}\r\n`;
      await c.send(wire);
      await c.waitBytes(wire.length);
      expect(c.text()).toBe(wire);
      // 30 requests in (at most) one read, 3 per turn: at least 9 yields.
      expect(s.stats.conn_yields).toBeGreaterThanOrEqual(9);
    });

    it('serves another connection between the turns of a yielding one', async () => {
      const s = await server({ requestsPerEvent: 1 }, { readMode });
      const a = await client(s.port);
      const b = await client(s.port);
      let wire = '';
      for (let i = 0; i < 2000; i++) wire += `a${i}\r\n`;
      await a.send(wire);
      await waitFor(() => a.receivedBytes > 0, 5000, () => 'no reply to a');
      await b.send('b\r\n');
      await b.waitBytes(3);
      // With one request per turn, b is answered long before a's 2000 requests are done.
      expect(a.receivedBytes).toBeLessThan(wire.length);
      await a.waitBytes(wire.length);
      expect(a.text()).toBe(wire);
    });

    it('on FeedStatus.Close flushes earlier replies, then closes, ignoring later input', async () => {
      const s = await server({}, { readMode });
      const c = await client(s.port);
      await c.send('first\r\nquit\r\nnever\r\n');
      await c.waitClosed();
      expect(c.text()).toBe('first\r\n');
      await waitFor(() => s.factory.sessions[0].released, 2000, () => 'session not released');
      expect(s.factory.sessions[0].lines).toEqual(['first', 'quit']);
    });

    it('answers everything sent before the client half-closes, then closes', async () => {
      const s = await server({ requestsPerEvent: 2 }, { readMode });
      const c = await client(s.port);
      let wire = '';
      for (let i = 0; i < 100; i++) wire += `h${i}\r\n`;
      c.socket.end(wire);
      await c.waitClosed();
      expect(c.text()).toBe(wire);
    });

    it('closes a client whose incomplete request passes the pending cap', async () => {
      const s = await server({ multigetLineBytesMax: 1024, itemSizeMaxBytes: 1024 }, { readMode });
      const c = await client(s.port);
      const chunk = 'y'.repeat(64 * 1024);
      for (let i = 0; i < 8 && !c.closed; i++) await c.send(chunk).catch(() => undefined);
      await c.waitClosed();
      expect(s.logs.some((l) => l.includes('incomplete request'))).toBe(true);
    });

    it('counts connections like memcached and bytes read and written', async () => {
      const s = await server({}, { readMode });
      // One listener: memcached shows curr_connections as its count minus one.
      expect(s.stats.curr_connections).toBe(0);
      expect(s.stats.total_connections).toBe(1);
      const c = await client(s.port);
      await c.send('abc\r\n');
      await c.waitBytes(5);
      expect(s.stats.curr_connections).toBe(1);
      expect(s.stats.total_connections).toBe(2);
      expect(s.stats.connection_structures).toBe(2);
      expect(s.stats.bytes_read).toBe(5);
      expect(s.stats.bytes_written).toBe(5);
      c.destroy();
      await waitFor(() => s.stats.curr_connections === 0, 2000, () => `curr ${s.stats.curr_connections}`);
      expect(s.stats.connection_structures).toBe(2);
      expect(s.factory.sessions[0].released).toBe(true);
    });

    it('lists listeners and clients for stats conns with memcached names', async () => {
      const s = await server({}, { readMode });
      const c = await client(s.port);
      await c.send('x\r\n');
      await c.waitBytes(3);
      const conns = [...s.net.connections()] as { peerName: string; stateName: string; localName?: string | null }[];
      expect(conns[0]).toMatchObject({ peerName: `tcp:127.0.0.1:${s.port}`, stateName: 'conn_listening' });
      expect(conns[1]).toMatchObject({
        peerName: `tcp:127.0.0.1:${c.socket.localPort}`,
        localName: `tcp:127.0.0.1:${s.port}`,
        stateName: 'conn_new_cmd',
      });
      await c.send('partial');
      await waitFor(() => conns[1].stateName === 'conn_read', 2000, () => conns[1].stateName);
    });
  });
}
