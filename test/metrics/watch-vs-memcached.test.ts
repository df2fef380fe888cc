/**
 * `watch fetchers mutations` side by side with memcached 1.6.45: the same commands
 * from a second connection produce the same log lines, once the parts memcached documents as
 * variable are masked (ts, gid, cfd: a file descriptor there, a connection id here).
 *
 * Left out on purpose: a too-large set (memcached prints its connection's fd as clsid and
 * stack garbage as cfd there), evictions (which item goes first depends on LRU timing),
 * connevents and deletions (tested in logger.test.ts; deletions is memcached 1.6.20's), and
 * an item stored already expired (`set k 0 -1 ...`): memcached keeps it until the next get
 * (status=expired, get_expired), while this server's LRU balancing reclaims it when it is
 * linked (status=not_found): an engine difference, not a watch one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endsWith, RawClient } from '../helpers/client';
import { startReference, startTarget, stopAll, type ServerProcess } from '../helpers/servers';

const COMMANDS: Array<[string, string]> = [
  ['set foo 5 0 3\r\nbar\r\n', 'STORED\r\n'],
  ['get foo\r\n', 'END\r\n'],
  ['get nope\r\n', 'END\r\n'],
  ['gets foo nope\r\n', 'END\r\n'],
  ['delete foo\r\n', 'DELETED\r\n'],
  ['incr x 1\r\n', 'NOT_FOUND\r\n'],
  ['set n 0 0 1\r\n1\r\n', 'STORED\r\n'],
  ['incr n 5\r\n', '6\r\n'],
  ['decr n 1\r\n', '5\r\n'],
  ['touch n 10\r\n', 'TOUCHED\r\n'],
  ['gat 10 n\r\n', 'END\r\n'],
  ['add n 0 0 1\r\n2\r\n', 'NOT_STORED\r\n'],
  ['append n 0 0 1\r\n2\r\n', 'STORED\r\n'],
  ['prepend n 0 0 2\r\n77\r\n', 'STORED\r\n'],
  ['cas n 0 0 1 999\r\n2\r\n', 'EXISTS\r\n'],
  ['replace nokey 0 0 1\r\n2\r\n', 'NOT_STORED\r\n'],
  ['mg n v\r\n', '\r\n7752\r\n'],
  ['ms m 2 T5\r\nhi\r\n', 'HD\r\n'],
  ['md m\r\n', 'HD\r\n'],
  ['ma n\r\n', 'HD\r\n'],
  ['set k%20y 0 0 1\r\nx\r\n', 'STORED\r\n'],
  ['flush_all\r\n', 'OK\r\n'],
  ['get n\r\n', 'END\r\n'],
  ['get zzlast\r\n', 'END\r\n'],
];

let ours: ServerProcess | undefined;
let reference: ServerProcess | undefined;

beforeAll(async () => {
  [ours, reference] = await Promise.all([startTarget(), startReference()]);
});

afterAll(async () => {
  await stopAll(ours, reference);
});

/** The watcher's lines for COMMANDS, masked. */
async function watchLines(server: ServerProcess): Promise<string[]> {
  const watcher = await RawClient.connect(server.port);
  const client = await RawClient.connect(server.port);
  try {
    expect((await watcher.request('watch fetchers mutations\r\n', endsWith('\r\n'))).toString()).toBe('OK\r\n');
    for (const [request, reply] of COMMANDS) await client.request(request, endsWith(reply));
    // memcached's logger thread sleeps up to a second between polls.
    const text = (await watcher.readUntil((b) => b.toString('latin1').includes('key=zzlast '), 5_000)).toString('latin1');
    return text.split('\n').filter((l) => l !== '')
      .map((l) => l.replace(/^ts=\d+\.\d+ gid=\d+ /, '').replace(/ cfd=\d+/, ' cfd=N'));
  } finally {
    watcher.close();
    client.close();
  }
}

describe('watch, side by side with memcached 1.6.45', () => {
  it('prints the same fetchers and mutations lines', async () => {
    const [mine, theirs] = await Promise.all([watchLines(ours as ServerProcess), watchLines(reference as ServerProcess)]);
    expect(theirs.length).toBeGreaterThan(COMMANDS.length);
    expect(mine).toEqual(theirs);
  });
});
