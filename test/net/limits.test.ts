/**
 * Connection limits: -c with maxconns_fast (reject) and without (wait), and idle_timeout.
 */
import { afterEach, describe, expect, it } from 'vitest';
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

async function served(s: TestServer, word: string): Promise<Client> {
  const c = new Client(s.port);
  opened.clients.push(c);
  await c.connected();
  await c.send(`${word}\r\n`);
  await c.waitBytes(word.length + 2);
  return c;
}

describe('-c connection limit', () => {
  it('maxconns_fast: rejects past the limit with memcached\'s error line and counts it', async () => {
    const s = await server({ connectionsMax: 2 });
    const a = await served(s, 'a');
    await served(s, 'b');
    expect(s.stats.curr_connections).toBe(2);

    const third = new Client(s.port);
    opened.clients.push(third);
    await third.connected();
    await third.send('c\r\n').catch(() => undefined);
    await third.waitClosed();
    expect(third.text()).toBe('ERROR Too many open connections\r\n');
    expect(s.stats.rejected_connections).toBe(1);
    expect(s.stats.curr_connections).toBe(2);
    expect(s.stats.total_connections).toBe(3);

    // A freed slot is usable again.
    a.destroy();
    await waitFor(() => s.stats.curr_connections === 1, 2000, () => `curr ${s.stats.curr_connections}`);
    await served(s, 'd');
    expect(s.stats.rejected_connections).toBe(1);
  });

  it('no_maxconns_fast: holds the new client until a slot frees, like memcached\'s disabled listener', async () => {
    const s = await server({ connectionsMax: 1, maxconnsFast: false });
    const a = await served(s, 'a');
    const waiting = new Client(s.port);
    opened.clients.push(waiting);
    await waiting.connected();
    await waiting.send('w\r\n');
    await sleep(300);
    expect(waiting.receivedBytes).toBe(0);
    expect(s.net.acceptingConnections()).toBe(false);
    expect(s.stats.listen_disabled_num).toBe(1);
    expect(s.stats.rejected_connections).toBe(0);

    a.destroy();
    await waiting.waitBytes(3);
    expect(waiting.text()).toBe('w\r\n');
    expect(s.net.acceptingConnections()).toBe(true);
  });
});

describe('idle_timeout', () => {
  it('closes a client idle longer than idle_timeout, counts idle_kicks, spares an active one', async () => {
    // 2 s, not 1: the clock is in whole seconds (as memcached's), so a 1 s timeout kicks a
    // client that paused only a little over a second, which a loaded CI machine can cause.
    const s = await server({ idleTimeoutSeconds: 2 });
    const idle = await served(s, 'idle');
    const active = await served(s, 'active');
    let sent = 1;
    const deadline = Date.now() + 8000;
    while (!idle.closed && Date.now() < deadline) {
      await active.send(`ping${sent}\r\n`);
      sent++;
      await sleep(200);
    }
    expect(idle.closed).toBe(true);
    expect(s.stats.idle_kicks).toBe(1);
    expect(active.closed).toBe(false);
    await active.send('still\r\n');
    await waitFor(() => active.text().endsWith('still\r\n'), 2000, () => active.text());
  });

  it('does not kick anyone when idle_timeout is 0', async () => {
    const s = await server({ idleTimeoutSeconds: 0 });
    const c = await served(s, 'x');
    await sleep(2200);
    expect(c.closed).toBe(false);
    expect(s.stats.idle_kicks).toBe(0);
  });
});
