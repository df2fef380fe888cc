/**
 * Output flow control: server memory stays bounded for a client that does not read, and
 * replies reach a slow reader byte for byte (the output buffer is reused only after a write
 * completed synchronously, and handed over otherwise).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Client, seqReply, sleep, startTestServer, waitFor, type TestServer } from './harness';

const opened: { servers: TestServer[]; clients: Client[] } = { servers: [], clients: [] };

afterEach(async () => {
  for (const c of opened.clients.splice(0)) c.destroy();
  for (const s of opened.servers.splice(0)) await s.net.close();
});

async function setup(...args: Parameters<typeof startTestServer>): Promise<{ s: TestServer; c: Client }> {
  const s = await startTestServer(...args);
  opened.servers.push(s);
  const c = new Client(s.port);
  opened.clients.push(c);
  await c.connected();
  return { s, c };
}

for (const readMode of ['auto', 'data'] as const) {
  describe(`backpressure (${readMode})`, () => {
    it('keeps unsent output bounded for a client that never reads, and resumes when it reads', async () => {
      const backlogMax = 256 * 1024;
      const valueBytes = 64 * 1024;
      const perEvent = 4;
      const requests = 400;
      const { s, c } = await setup({ writeBacklogBytesMax: backlogMax, requestsPerEvent: perEvent }, { readMode });
      c.socket.pause();
      // Do not await: once the server stops reading, these writes back up in the client.
      void c.send(`big ${valueBytes} x\r\n`.repeat(requests)).catch(() => undefined);

      // Sample the server's queued output while the client reads nothing: until it passes the
      // limit (however long a loaded machine takes to get there, bounded), then a while more
      // to see that it stops growing.
      let maxBacklog = 0;
      const sample = (): void => {
        maxBacklog = Math.max(maxBacklog, s.net.writeBacklogBytes());
      };
      await waitFor(() => {
        sample();
        return maxBacklog > backlogMax;
      }, 15_000, () => `backlog ${maxBacklog} of ${backlogMax}`);
      for (const until = Date.now() + 500; Date.now() < until; await sleep(5)) sample();
      const served = s.factory.sessions[0].lines.length;
      // Reading stops at the limit: at most one turn of replies (perEvent of them) lands on top.
      const replyBytes = valueBytes + 2;
      expect(maxBacklog).toBeGreaterThan(backlogMax);
      expect(maxBacklog).toBeLessThanOrEqual(backlogMax + perEvent * replyBytes);
      expect(served).toBeLessThan(requests);

      c.socket.resume();
      await c.waitBytes(requests * replyBytes, 20_000);
      expect(c.received.length).toBe(requests * replyBytes);
      const expected = Buffer.from(`${'x'.repeat(valueBytes)}\r\n`.repeat(requests), 'latin1');
      expect(c.received.equals(expected)).toBe(true);
    });

    it('delivers large replies to a slow reader byte for byte', async () => {
      const { c } = await setup({ writeBacklogBytesMax: 1024 * 1024, requestsPerEvent: 5 }, { readMode });
      // Well past what loopback socket buffers absorb (several MB), so writes go asynchronous.
      const replies = 600;
      const size = 100_000;
      let wire = '';
      let expected = '';
      for (let k = 0; k < replies; k++) {
        // Mix small and large replies so some writes finish synchronously and some do not.
        const n = k % 3 === 0 ? 10 : size;
        wire += `seq ${n} ${k}\r\n`;
        expected += seqReply(n, k);
      }
      c.socket.pause();
      await c.send(wire);
      await sleep(200);
      // Read in small sips with pauses, so the server keeps hitting a full socket.
      const deadline = Date.now() + 20_000;
      while (c.receivedBytes < expected.length && Date.now() < deadline) {
        c.socket.resume();
        await sleep(2);
        c.socket.pause();
        await sleep(3);
      }
      c.socket.resume();
      await c.waitBytes(expected.length);
      expect(c.received.length).toBe(expected.length);
      expect(c.text() === expected).toBe(true);
    });
  });
}

describe('backpressure and graceful stop', () => {
  it('gracefulStop refuses new clients, finishes requests already read, flushes, then closes', async () => {
    const { s, c } = await setup({ writeBacklogBytesMax: 64 * 1024, requestsPerEvent: 2 });
    // Enough output to fill the loopback socket buffers (several MB) and then the backlog.
    const requests = 40;
    const valueBytes = 1024 * 1024;
    const replyBytes = valueBytes + 2;
    c.socket.pause();
    await c.send(`big ${valueBytes} g\r\n`.repeat(requests));
    const session = s.factory.sessions[0];
    await waitFor(() => session.lines.length > 0 && s.net.writeBacklogBytes() > 0, 5000, () => 'not backed up');
    expect(session.lines.length).toBeLessThan(requests);

    const stopped = s.net.gracefulStop(10_000);
    const late = new Client(s.port);
    opened.clients.push(late);
    await expect(late.connected()).rejects.toThrow(/ECONNREFUSED/);

    c.socket.resume();
    await c.waitClosed(10_000);
    await stopped;
    expect(session.lines.length).toBe(requests);
    expect(c.receivedBytes).toBe(requests * replyBytes);
  });
});
