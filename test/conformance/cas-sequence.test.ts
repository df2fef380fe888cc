/**
 * CAS values themselves, not only their order, as memcached 1.6.45 hands them out: it takes a
 * store's CAS before it tries the store, so a refused add, cas, append or meta set uses one
 * up (a value refused for a bad data chunk does not); meta E sets the CAS without taking one. Clients that send CAS values they did
 * not read (ms I with C, md C) see the difference, and the random differential tests once
 * did (a literal `ms ... C89 I` answered EX here, HD by memcached). The replies are compared
 * raw, CAS numbers included.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { endsWith, withClient } from '../helpers/client';
import { startReference, startTarget, stopAll, type ServerProcess } from '../helpers/servers';

let reference: ServerProcess | undefined;
let target: ServerProcess | undefined;

beforeAll(async () => {
  [reference, target] = await Promise.all([startReference(['-t', '1']), startTarget(['-t', '1'])]);
}, 40_000);

afterAll(async () => {
  await stopAll(reference, target);
}, 20_000);

const SCRIPT = [
  'set a 0 0 1\r\n1\r\n',
  'add a 0 0 1\r\n2\r\n', // NOT_STORED
  'cas b 0 0 1 5\r\n3\r\n', // NOT_FOUND
  'append zz 0 0 1\r\n4\r\n', // NOT_STORED
  'prepend a 0 0 1\r\n5\r\n',
  'mg a c v\r\n',
  'ms a 1 C1\r\n6\r\n', // EX
  'ms a 1 E500\r\n7\r\n', // CAS 500, none taken
  'mg a c v\r\n',
  'ms a 1\r\n8xy\r\n', // bad data chunk: no CAS used up
  'set c 0 0 1\r\n9\r\n',
  'mg c c\r\n',
  'ma n N0 J5\r\n', // created as an add
  'ma n N0 J5 c v\r\n',
  'incr c 1\r\n',
  'mg c c v\r\n',
  'md c I\r\n', // stale, with a new CAS
  'mg c c\r\n',
  'ms c 1 I C3\r\nz\r\n', // a CAS below the item's: stored, stale
  'mg c c v\r\n',
  'gets a c n\r\n',
  'mn\r\n',
].join('');

it('a fresh server hands out the same CAS values as memcached, refused stores included', async () => {
  const run = async (server: ServerProcess): Promise<string> =>
    await withClient(server.port, async (c) => (await c.request(SCRIPT, endsWith('MN\r\n'))).toString('latin1'));
  const [theirs, ours] = await Promise.all([run(reference!), run(target!)]);
  expect(ours).toBe(theirs);
  // What the comparison is about: three refused stores used up CAS 3 to 5 (the prepend got 6),
  // E set 500 without taking one, and the stale store went through.
  expect(theirs).toContain('VA 2 c6\r\n51\r\n');
  expect(theirs).toContain('VA 1 c500\r\n7\r\n');
  expect(theirs).toContain('VA 1 c13 Z X\r\nz\r\n');
});
