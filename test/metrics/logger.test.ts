/**
 * The `watch` streams (src/metrics/logger.ts): line formats, delivery and skipping, and the
 * command itself against an in-process server: OK, then only log lines; fetchers by default;
 * mutations, evictions, deletions and connevents; memcached's errors (-W, unknown stream,
 * pipelining, too many watchers); log_* stats.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  FetchStatus, LOG_FETCHERS, LOG_MUTATIONS, peerFields, uriEncodeKey, WatchLogger, WATCHERS_MAX,
} from '../../src/metrics/logger';
import { Client, sleep, waitFor } from '../net/harness';
import { startFullServer, type FullServer } from './full-server';

const LINE = /^ts=\d+\.\d{1,6} gid=\d+ /;


/** The logger writes once per event-loop turn (setImmediate): this resolves after that write. */
function afterFlush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

describe('WatchLogger', () => {
  it('encodes keys as memcached uriencode does', () => {
    const key = Buffer.from('a b%c/d~e_f.g-h\u00ff', 'latin1');
    expect(uriEncodeKey(key, 0, key.length)).toBe('a%20b%25c%2Fd~e_f.g-h%FF');
  });

  it('splits stats conns peer names into rip, rport, transport', () => {
    expect(peerFields('tcp:127.0.0.1:5000')).toEqual(['tcp', '127.0.0.1', 5000]);
    expect(peerFields('tcp6:[::1]:5001')).toEqual(['tcp', '::1', 5001]);
    expect(peerFields('unix:/tmp/mc.sock')).toEqual(['local', 'unix', 0]);
    expect(peerFields('udp:10.0.0.1:9')).toEqual(['udp', '10.0.0.1', 9]);
  });

  it('formats lines, numbers them, and writes each watcher once per turn', async () => {
    const logger = new WatchLogger(64 * 1024);
    const writes: string[] = [];
    logger.add(LOG_FETCHERS, (data) => { if (data.length > 0) writes.push(data.toString()); return 0; }, 7);
    expect(logger.flags).toBe(LOG_FETCHERS);
    logger.clientId = 9;
    const key = Buffer.from('xkey');
    logger.itemGet(FetchStatus.Found, key, 1, 3, 2, 100);
    logger.itemGet(FetchStatus.Expired, key, 1, 3, 0, 0);
    logger.itemStore('stored', 'set', 'key', 0, 1, 3); // not watched: dropped
    expect(writes).toEqual([]);
    await afterFlush();
    expect(writes).toHaveLength(1);
    const lines = writes[0].trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(LINE);
    expect(lines[0].replace(LINE, '')).toBe('type=item_get key=key status=found clsid=2 cfd=9 size=100');
    expect(lines[1].replace(LINE, '')).toBe('type=item_get key=key status=expired clsid=0 cfd=9 size=0');
    const gids = lines.map((l) => Number(/gid=(\d+)/.exec(l)?.[1]));
    expect(gids[1]).toBe(gids[0] + 1);
    expect(logger.counters).toMatchObject({ workerWritten: 2, watcherSent: 2, watcherSkipped: 0 });
  });

  it('skips lines for a watcher whose socket is backed up, then says how many; the newest skipped line follows once it drains', async () => {
    const logger = new WatchLogger(300);
    let backlog = 10_000;
    const writes: string[] = [];
    logger.add(LOG_MUTATIONS, (data) => { if (data.length > 0) writes.push(data.toString()); return backlog; }, 1);
    logger.itemStore('stored', 'set', 'a', 0, 1, 1);
    await afterFlush(); // written; the socket now reports a big backlog
    for (let i = 0; i < 5; i++) logger.itemStore('stored', 'set', 'b', 0, 1, 1);
    await afterFlush();
    expect(logger.counters.watcherSkipped).toBe(5);
    backlog = 0;
    // skipped at first (the backlog is as the last write saw it), then delivered by the
    // watcher's retry once the socket reports room, after skipped=<the others>
    logger.itemStore('stored', 'set', 'c', 0, 1, 1);
    await waitFor(() => writes.join('').includes('key=c '), 5000, () => `no key=c in ${JSON.stringify(writes)}`);
    logger.itemStore('stored', 'set', 'd', 0, 1, 1);
    await afterFlush();
    const all = writes.join('');
    expect(all).toContain('key=a ');
    expect(all).not.toContain('key=b ');
    expect(all).toMatch(/\nskipped=5\nts=\S+ gid=\d+ type=item_store key=c .*\nts=\S+ gid=\d+ type=item_store key=d /);
    expect(logger.counters.watcherSkipped).toBe(5);
  });

  it('tells when a watcher is gone and stops writing to it', async () => {
    const logger = new WatchLogger(1024);
    const w = logger.add(LOG_FETCHERS, () => -1, 1);
    expect(w).not.toBeNull();
    logger.itemGet(FetchStatus.NotFound, Buffer.from('k'), 0, 1, 0, 0);
    await afterFlush();
    expect(logger.watcherCount).toBe(0);
    expect(logger.flags).toBe(0);
  });
});

describe('the watch command', () => {
  let server: FullServer | null = null;
  const clients: Client[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    await server?.stop();
    server = null;
  });

  async function client(): Promise<Client> {
    const c = new Client((server as FullServer).port);
    clients.push(c);
    await c.connected();
    return c;
  }

  async function request(c: Client, text: string, until: string): Promise<string> {
    const start = c.receivedBytes;
    await c.send(text);
    await waitFor(() => c.received.subarray(start).toString('latin1').includes(until), 5000, () => c.text());
    return c.received.subarray(start).toString('latin1');
  }

  /** The watcher's log lines without ts/gid, once `count` have arrived. */
  async function linesOf(w: Client, count: number): Promise<string[]> {
    const parse = (): string[] => w.text().split('\n').slice(1).filter((l) => l !== '');
    await waitFor(() => parse().length >= count, 5000, () => w.text());
    return parse().map((l) => (LINE.test(l) ? l.replace(LINE, '') : l));
  }

  async function watch(args: string): Promise<Client> {
    const w = await client();
    expect(await request(w, `watch${args}\r\n`, '\r\n')).toBe('OK\r\n');
    return w;
  }

  it('streams fetchers by default, and the watcher gets nothing else', async () => {
    server = await startFullServer();
    const w = await watch('');
    const c = await client();
    await request(c, 'set foo 5 0 3\r\nbar\r\n', 'STORED\r\n');
    await request(c, 'get foo nope\r\n', 'END\r\n');
    const id = [...server.network.connections()].at(-1)?.id;
    expect(await linesOf(w, 3)).toEqual([
      `type=item_get key=foo status=not_found clsid=0 cfd=${id} size=0`,
      `type=item_get key=foo status=found clsid=1 cfd=${id} size=3`,
      `type=item_get key=nope status=not_found clsid=0 cfd=${id} size=0`,
    ]);
    // Commands on the watching connection are swallowed.
    await w.send('version\r\nget foo\r\n');
    await sleep(50);
    expect(w.text()).not.toContain('VERSION');
    expect(w.text()).not.toContain('VALUE');
  });

  it('streams mutations with memcached statuses, commands and ttls', async () => {
    server = await startFullServer();
    const w = await watch(' mutations');
    const c = await client();
    await request(c, 'set a 0 100 2\r\nhi\r\nadd a 0 0 1\r\nx\r\nappend a 0 0 1\r\n!\r\ncas a 0 0 1 99\r\nz\r\nreplace b 0 0 1\r\nq\r\n',
      'NOT_STORED\r\n');
    const lines = await linesOf(w, 5);
    const ttl = /ttl=(\d+)/.exec(lines[0])?.[1];
    expect(Number(ttl)).toBeGreaterThanOrEqual(99);
    expect(lines.map((l) => l.replace(/ cfd=\d+/, '').replace(/ttl=\d+/, 'ttl=T'))).toEqual([
      'type=item_store key=a status=stored cmd=set ttl=T clsid=1 size=2',
      'type=item_store key=a status=not_stored cmd=add ttl=T clsid=1 size=1',
      'type=item_store key=a status=stored cmd=append ttl=T clsid=1 size=3',
      'type=item_store key=a status=exists cmd=cas ttl=T clsid=1 size=1',
      'type=item_store key=b status=not_stored cmd=replace ttl=T clsid=1 size=1',
    ]);
  });

  it('streams deletions (memcached 1.6.20) and evictions', async () => {
    server = await startFullServer({ memoryLimitBytes: 2 * 1024 * 1024, slabReassign: false, slabAutomove: 0 });
    const w = await watch(' deletions evictions');
    const c = await client();
    await request(c, 'set d 0 0 1\r\n1\r\ndelete d\r\nset m 0 0 2\r\nab\r\nmd m\r\n', 'HD\r\n');
    expect(await linesOf(w, 2)).toEqual([
      'type=deleted key=d cmd=delete clsid=1 size=1',
      'type=deleted key=m cmd=md clsid=1 size=2',
    ]);
    const value = 'v'.repeat(100_000);
    let batch = '';
    for (let i = 0; i < 40; i++) batch += `set big${i} 0 0 ${value.length}\r\n${value}\r\n`;
    await request(c, batch, 'STORED\r\n'.repeat(40));
    const lines = await linesOf(w, 3);
    const evictions = lines.filter((l) => l.startsWith('type=eviction '));
    expect(evictions.length).toBeGreaterThan(0);
    expect(evictions[0]).toMatch(/^type=eviction key=big\d+ fetch=no ttl=-1 la=\d+ clsid=\d+ size=100000$/);
  });

  it('streams connection events with the ids stats conns shows', async () => {
    server = await startFullServer();
    const w = await watch(' connevents');
    const c = await client();
    await request(c, 'version\r\n', '\r\n');
    const id = [...server.network.connections()].at(-1)?.id;
    const port = c.socket.localPort;
    c.destroy();
    expect(await linesOf(w, 2)).toEqual([
      `type=conn_new rip=127.0.0.1 rport=${port} transport=tcp cfd=${id}`,
      `type=conn_close rip=127.0.0.1 rport=${port} transport=tcp reason=normal cfd=${id}`,
    ]);
  });

  it('answers as memcached does to -W, an unknown stream, pipelining and one watcher too many', async () => {
    server = await startFullServer({ watchEnabled: false });
    const c = await client();
    expect(await request(c, 'watch\r\n', '\r\n')).toBe('CLIENT_ERROR watch commands not allowed\r\n');
    await server.stop();

    server = await startFullServer();
    const d = await client();
    expect(await request(d, 'watch fetchers nonsense\r\n', '\r\n')).toBe('ERROR\r\n');
    expect(await request(d, 'version\r\nwatch\r\n', 'watch\r\n')).toBe('VERSION 1.6.45\r\nERROR cannot pipeline other commands before watch\r\n');
    for (let i = 0; i < WATCHERS_MAX; i++) await watch(' sysevents');
    const last = await client();
    expect(await request(last, 'watch\r\n', '\r\n')).toBe('WATCHER_TOO_MANY log watcher limit reached\r\n');
  });

  it('counts watchers and lines in stats, and forgets a watcher that closes', async () => {
    server = await startFullServer();
    const w = await watch(' fetchers');
    const c = await client();
    await request(c, 'get x\r\n', 'END\r\n');
    await linesOf(w, 1);
    const stats = async (): Promise<Map<string, string>> => {
      const text = await request(c, 'stats\r\n', 'END\r\n');
      return new Map([...text.matchAll(/^STAT (\S+) (.*)\r$/gm)].map((m) => [m[1], m[2]]));
    };
    let s = await stats();
    expect(s.get('log_watchers')).toBe('1');
    expect(Number(s.get('log_worker_written'))).toBeGreaterThanOrEqual(1);
    expect(Number(s.get('log_watcher_sent'))).toBeGreaterThanOrEqual(1);
    w.destroy();
    await waitFor(() => server!.engine.logger.watcherCount === 0, 5000, () => 'watcher still registered');
    s = await stats();
    expect(s.get('log_watchers')).toBe('0');
    expect(server.engine.logger.flags).toBe(0);
  });
});
