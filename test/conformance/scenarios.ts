/**
 * Fixed command scripts for the differential test: the edge cases the random generator
 * reaches only by luck, or must avoid (values >= 2^63, wrap-around at 2^64).
 *
 * A scenario is a list of batches; each batch is sent as one unit (then re-sent with random
 * cuts by the test) and its replies compared with the reference's. `cas(n)` stands for the
 * n-th distinct CAS value the server showed in this session. `expect`, where given, pins the
 * reference's normalised reply for a batch, so the scenario documents memcached's behaviour
 * and a wrong assumption about it fails loudly.
 */

import type { CasRef } from './gen';

export type Piece = string | Buffer | CasRef;

export interface ScenarioBatch {
  send: Piece[];
  /** The reference's normalised reply, without the trailing sentinel VERSION line. */
  expect?: string;
  /** `version` commands inside `send` (each adds a VERSION reply). */
  versions?: number;
}

export interface Scenario {
  name: string;
  batches: ScenarioBatch[];
  /** Run only whole, on fresh servers (no second run with random cuts). */
  once?: boolean;
}

export const cas = (casId: number): CasRef => ({ casId });

const setCmd = (key: string, value: string | Buffer, flags = 0, exptime: number | string = 0, extra = ''): Piece[] => {
  const data = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
  return [`set ${key} ${flags} ${exptime} ${data.length}${extra}\r\n`, data, '\r\n'];
};

const nowSeconds = (): number => Math.floor(Date.now() / 1000);
const oneMiB = 1_048_576;

export function scenarios(): Scenario[] {
  const now = nowSeconds();
  return [
    {
      // First on purpose: values >= 2^63 are only deterministic in memcached while slab
      // memory is fresh (its incr scans past the item for a '-').
      name: 'incr/decr wrap at 2^64 and floor at 0',
      once: true,
      batches: [
        {
          send: [...setCmd('w', '18446744073709551615'), 'incr w 1\r\n', 'get w\r\n'],
          expect: 'STORED\r\n0\r\nVALUE w 0 1\r\n0\r\nEND\r\n',
        },
        {
          send: [...setCmd('w', '18446744073709551614'), 'incr w 1\r\n', 'incr w 2\r\n', 'incr w 18446744073709551615\r\n'],
          expect: 'STORED\r\n18446744073709551615\r\n1\r\n0\r\n',
        },
        {
          send: [...setCmd('w', '5'), 'decr w 10\r\n', 'decr w 0\r\n', 'decr w 18446744073709551615\r\n', 'incr w 18446744073709551615\r\n', 'decr w 1\r\n', 'get w\r\n'],
          expect: 'STORED\r\n0\r\n0\r\n0\r\n18446744073709551615\r\n18446744073709551614\r\nVALUE w 0 20\r\n18446744073709551614\r\nEND\r\n',
        },
        {
          send: [...setCmd('w', '9223372036854775807'), 'incr w 1\r\n', 'incr w 9223372036854775808\r\n', 'decr w 9223372036854775808\r\n'],
          expect: 'STORED\r\n9223372036854775808\r\n0\r\n0\r\n',
        },
      ],
    },
    {
      name: 'incr/decr errors and number formats',
      batches: [
        {
          send: [...setCmd('t', 'abc'), 'incr t 1\r\n', 'decr t 1\r\n', 'incr t -1\r\n', 'incr t abc\r\n', 'incr t 18446744073709551616\r\n', 'incr nothere 1\r\n', 'decr nothere 1\r\n'],
          expect:
            'STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n' +
            'CLIENT_ERROR cannot increment or decrement non-numeric value\r\n' +
            'CLIENT_ERROR invalid numeric delta argument\r\nCLIENT_ERROR invalid numeric delta argument\r\n' +
            'CLIENT_ERROR invalid numeric delta argument\r\nNOT_FOUND\r\nNOT_FOUND\r\n',
        },
        {
          send: [
            ...setCmd('t', ''), 'incr t 1\r\n', ...setCmd('t', '12abc'), 'incr t 1\r\n', ...setCmd('t', '18446744073709551616'), 'incr t 1\r\n',
            ...setCmd('t', ' 7'), 'incr t 1\r\n', ...setCmd('t', '7 '), 'incr t 1\r\n', ...setCmd('t', '007'), 'incr t 1\r\n', 'get t\r\n',
          ],
        },
        {
          send: [...setCmd('p', '100'), 'decr p 1\r\n', 'get p\r\n', 'incr p 1\r\n', 'get p\r\n', ...setCmd('g', '99'), 'incr g 1\r\n', 'get g\r\n'],
          expect: 'STORED\r\n99\r\nVALUE p 0 2\r\n99\r\nEND\r\n100\r\nVALUE p 0 3\r\n100\r\nEND\r\nSTORED\r\n100\r\nVALUE g 0 3\r\n100\r\nEND\r\n',
        },
        { send: ['incr\r\n', 'incr t\r\n', 'incr t 1 2 3\r\n', 'decr\r\n', 'incr t 1 noreply\r\n', 'decr t 1 noreply\r\n', 'get t\r\n', 'incr t +1\r\n', 'incr t 01\r\n'] },
        { send: [`incr ${'L'.repeat(251)} 1\r\n`, `decr ${'L'.repeat(251)} 1 noreply\r\n`] },
      ],
    },
    {
      name: 'storage command semantics',
      batches: [
        {
          send: ['delete s\r\n', 'add s 5 0 1\r\na\r\n', 'add s 6 0 1\r\nb\r\n', 'replace r 0 0 1\r\nx\r\n', 'append r 0 0 1\r\nx\r\n', 'prepend r 0 0 1\r\nx\r\n'],
          expect: 'NOT_FOUND\r\nSTORED\r\nNOT_STORED\r\nNOT_STORED\r\nNOT_STORED\r\nNOT_STORED\r\n',
        },
        {
          send: ['append s 9 0 2\r\nbc\r\n', 'prepend s 9 0 2\r\nzy\r\n', 'get s\r\n', 'replace s 7 0 3\r\nnew\r\n', 'get s\r\n'],
          expect: 'STORED\r\nSTORED\r\nVALUE s 5 5\r\nzyabc\r\nEND\r\nSTORED\r\nVALUE s 7 3\r\nnew\r\nEND\r\n',
        },
        { send: ['gets s\r\n'], expect: 'VALUE s 7 3 #1\r\nnew\r\nEND\r\n' },
        {
          send: ['cas s 1 0 2 ', cas(1), '\r\nv2\r\n', 'cas s 1 0 2 ', cas(1), '\r\nv3\r\n', 'cas nothere 0 0 1 ', cas(1), '\r\nx\r\n', 'gets s\r\n'],
          expect: 'STORED\r\nEXISTS\r\nNOT_FOUND\r\nVALUE s 1 2 #2\r\nv2\r\nEND\r\n',
        },
        {
          send: ['cas s 0 0 1 0\r\nq\r\n', 'cas s 0 0 1 ', cas(2), ' noreply\r\nq\r\n', 'gets s\r\n', 'touch s 0\r\n', 'gets s\r\n', 'append s 0 0 1\r\n!\r\n', 'gets s\r\n'],
        },
        { send: ['set f 4294967295 0 1\r\nx\r\n', 'get f\r\n', 'set f 0 0 0\r\n\r\n', 'get f\r\n', 'set f 2147483648 0 1\r\nx\r\n', 'gets f f f\r\n'] },
        { send: ['set s 0 0 1 junk\r\nj\r\n', 'get s\r\n', 'set s 0 0 1 noreply junk\r\nk\r\n', 'get s\r\n'] },
        {
          send: [...setCmd('bin', Buffer.from([0, 1, 2, 13, 10, 255, 13, 10, 69, 78, 68, 13, 10])), 'get bin\r\n', ...setCmd('crlf', '\r\n'), 'get crlf\r\n'],
        },
        {
          send: [...setCmd('K'.repeat(250), 'max key'), `get ${'K'.repeat(250)}\r\n`, `delete ${'K'.repeat(250)}\r\n`],
          expect: `STORED\r\nVALUE ${'K'.repeat(250)} 0 7\r\nmax key\r\nEND\r\nDELETED\r\n`,
        },
      ],
    },
    {
      name: 'noreply on every command that takes it',
      batches: [
        {
          send: [
            'set nr 0 0 1 noreply\r\na\r\n', 'add nr 0 0 1 noreply\r\nb\r\n', 'replace nr 0 0 1 noreply\r\nc\r\n',
            'append nr 0 0 1 noreply\r\nd\r\n', 'prepend nr 0 0 1 noreply\r\ne\r\n', 'get nr\r\n',
            'cas nr 0 0 1 1 noreply\r\nf\r\n', 'delete nr noreply\r\n', 'get nr\r\n',
            'set n 0 0 1 noreply\r\n5\r\n', 'incr n 3 noreply\r\n', 'decr n 1 noreply\r\n', 'get n\r\n',
            'touch n 100 noreply\r\n', 'verbosity 0 noreply\r\n', 'flush_all noreply\r\n', 'get n\r\n',
            'flush_all 0 noreply\r\n', 'delete n 0 noreply\r\n',
          ],
          expect: 'VALUE nr 0 3\r\necd\r\nEND\r\nEND\r\nVALUE n 0 1\r\n7\r\nEND\r\nEND\r\n',
        },
        {
          // Errors under noreply.
          send: ['set nr 0 0 abc noreply\r\nZZ\r\n', 'incr n abc noreply\r\n', 'touch n abc noreply\r\n', 'flush_all abc noreply\r\n', 'verbosity noreply\r\n', 'set nr 0 0 1 noreply\r\nabc\r\n'],
        },
      ],
    },
    {
      name: 'retrieval: multi-key, duplicates, many keys, gat/gats',
      batches: [
        { send: [...setCmd('m1', 'one', 1), ...setCmd('m2', 'two', 2), 'get m1 m2 m3 m1\r\n', 'gets m2 m1\r\n'] },
        { send: [`get ${Array.from({ length: 60 }, (_, i) => `m${(i % 4) + 1}`).join(' ')}\r\n`, `gets ${Array.from({ length: 30 }, (_, i) => `x${i}`).join(' ')} m1\r\n`] },
        { send: ['get\r\n', 'gets\r\n', 'gat\r\n', 'gat 0\r\n', 'gats 100\r\n', 'gat abc m1\r\n', 'gat 100 m1 m2 m3\r\n', 'gats 0 m1\r\n', 'bget m1\r\n'] },
        // A key over 250 bytes only opens a batch: memcached then drops every reply not yet
        // sent on the connection, which for pipelined commands depends on timing. 1.6.45 sends
        // the error with a second CRLF.
        { send: [`get m1 ${'L'.repeat(251)} m2\r\n`], expect: 'CLIENT_ERROR bad command line format\r\n\r\n' },
        { send: [`gets ${'L'.repeat(251)}\r\n`, 'get m1\r\n'] },
        { send: [`gat 0 m1 ${'L'.repeat(300)}\r\n`, 'get m1\r\n'] },
        { send: ['gat -1 m1\r\n', 'get m1\r\n', 'gats 2592001 m2\r\n', 'get m2\r\n'] },
      ],
    },
    {
      name: 'expiry times that need no waiting',
      batches: [
        {
          send: [
            ...setCmd('e1', 'neg', 0, -1), ...setCmd('e2', 'abs_past', 0, now - 1000), ...setCmd('e3', '1970', 0, 2592001),
            ...setCmd('e4', '30d', 0, 2592000), ...setCmd('e5', 'abs_future', 0, now + 1000), ...setCmd('e6', 'max', 0, 2147483647),
            'get e1 e2 e3 e4 e5 e6\r\n',
          ],
          expect:
            'STORED\r\nSTORED\r\nSTORED\r\nSTORED\r\nSTORED\r\nSTORED\r\n' +
            'VALUE e4 0 3\r\n30d\r\nVALUE e5 0 10\r\nabs_future\r\nVALUE e6 0 3\r\nmax\r\nEND\r\n',
        },
        { send: ['touch e4 -1\r\n', 'touch e5 0\r\n', 'touch e1 0\r\n', 'get e4 e5\r\n', 'add e1 0 0 1\r\nx\r\n', 'get e1\r\n'], expect: 'TOUCHED\r\nTOUCHED\r\nNOT_FOUND\r\nVALUE e5 0 10\r\nabs_future\r\nEND\r\nSTORED\r\nVALUE e1 0 1\r\nx\r\nEND\r\n' },
        { send: ['set e7 0 2147483648 1\r\nx\r\n', 'set e7 0 -2147483649 1\r\nx\r\n', 'set e7 0 +100 1\r\nx\r\n', 'get e7\r\n', 'touch e7 abc\r\n', 'touch e7\r\n'] },
      ],
    },
    {
      name: 'too large values and large values',
      batches: [
        {
          send: [...setCmd('tl', 'small'), `set tl 0 0 ${oneMiB + 1}\r\n`, Buffer.alloc(oneMiB + 1, 0x41), '\r\n', 'get tl\r\n'],
          expect: 'STORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\n',
        },
        {
          send: [
            ...setCmd('tl', 'small'), `add tl 0 0 ${oneMiB * 2}\r\n`, Buffer.alloc(oneMiB * 2, 0x42), '\r\n', `append tl 0 0 ${oneMiB + 100}\r\n`,
            Buffer.alloc(oneMiB + 100, 0x43), '\r\n', `set tl 0 0 ${oneMiB + 5} noreply\r\n`, Buffer.alloc(oneMiB + 5, 0x44), '\r\n', 'get tl\r\n',
          ],
          expect: 'STORED\r\nSERVER_ERROR object too large for cache\r\nSERVER_ERROR object too large for cache\r\nEND\r\n',
        },
        { send: [...setCmd('big', Buffer.alloc(300_000, 0x61)), 'get big\r\n', ...setCmd('big', Buffer.alloc(700_000, 0x62)), 'get big\r\n', 'append big 0 0 3\r\nxyz\r\n', 'get big\r\n', 'incr big 1\r\n'] },
      ],
    },
    {
      name: 'bad data chunks and rejected command lines',
      batches: [
        // The LF left after the bad chunk is a line too short for 1.6.45's parser.
        { send: ['set bc 0 0 3\r\nabcd\r\n', 'get bc\r\n'], expect: 'CLIENT_ERROR bad data chunk\r\nCLIENT_ERROR bad command line format\r\nEND\r\n' },
        { send: ['set bc 0 0 5\r\nab\r\nXYZW\r\n', 'get bc\r\n', 'set bc 0 0 0\r\nA\r\n', 'set bc 0 0 1 noreply\r\nAB\r\n', 'get bc\r\n'] },
        { send: ['set bc 0 0 -1\r\n', 'set bc 0 0 -1\r\nJUNK\r\n', 'set bc 0 0 abc\r\nJUNK\r\n', 'set bc 0 0 4294967295\r\n', 'set bc 0 0 2147483647\r\n'] },
        { send: ['set bc 0 0\r\n', 'set bc\r\n', 'set\r\n', 'cas bc 0 0 1\r\nX\r\n', 'cas bc 0 0 1 abc\r\nX\r\n', 'set bc 0 0 1 noreply extra\r\nX\r\n', 'set bc abc 0 1\r\nX\r\n', 'set bc -1 0 1\r\nX\r\n', 'set bc 0 abc 1\r\nX\r\n'] },
        { send: [`set ${'L'.repeat(251)} 0 0 1\r\nX\r\n`, `add ${'L'.repeat(251)} 0 0 1 noreply\r\nX\r\n`, `delete ${'L'.repeat(251)}\r\n`, `touch ${'L'.repeat(251)} 0\r\n`] },
        { send: [`get ${'L'.repeat(251)}\r\n`], expect: 'CLIENT_ERROR bad command line format\r\n\r\n' },
        { send: ['delete bc 0\r\n', 'delete bc 1\r\n', 'delete bc 0 noreply\r\n', 'delete bc x y\r\n', 'delete bc noreply 0\r\n', 'delete\r\n', 'touch bc\r\n', 'touch\r\n'] },
      ],
    },
    {
      name: 'unknown commands and garbage',
      batches: [
        { send: ['foo\r\n', '\r\n', '\n', '   \r\n', 'x\r\n', 'GET k\r\n', 'SET k 0 0 1\r\n', 'gett k\r\n', 'get\tk\r\n', 'version extra\r\n', 'stat\r\n'], versions: 1 },
        { send: ['\x01\x02\x03\r\n', 'ab\xff\xfe cd\r\n', 'set\r\n', 'get /index.html HTTP/1.1\r\n'] },
      ],
    },
    {
      name: 'whitespace and line endings',
      batches: [
        { send: ['set  ws  3  0  2\r\nhi\r\n', ' get ws\r\n', 'get ws \r\n', 'get  ws   ws\r\n', 'gets ws\n', 'set ws 0 0 2\nyo\r\n', 'get ws\n', 'delete ws\n'] },
      ],
    },
    {
      name: 'flush_all and verbosity',
      batches: [
        {
          send: [...setCmd('fa', 'x'), 'flush_all\r\n', 'get fa\r\n', 'add fa 0 0 1\r\ny\r\n', 'get fa\r\n', 'flush_all 0\r\n', 'flush_all -1\r\n', 'get fa\r\n'],
          expect: 'STORED\r\nOK\r\nEND\r\nSTORED\r\nVALUE fa 0 1\r\ny\r\nEND\r\nOK\r\nOK\r\nEND\r\n',
        },
        { send: [...setCmd('fa', 'z'), 'flush_all 100000\r\n', 'get fa\r\n', 'flush_all\r\n', 'get fa\r\n', 'flush_all abc\r\n', 'flush_all 1.5\r\n', 'flush_all 0 0 0\r\n'] },
        { send: ['verbosity\r\n', 'verbosity 1\r\n', 'verbosity 0\r\n', 'verbosity abc\r\n', 'verbosity 1 2\r\n', 'verbosity 0 0 0\r\n', 'verbosity 0 noreply\r\n'] },
      ],
    },
    {
      name: 'pipelined burst',
      batches: [
        {
          send: [
            ...Array.from({ length: 150 }, (_, i) => setCmd(`p${i}`, `value-${i}`.replace('-', '_'), i)).flat(),
            ...Array.from({ length: 150 }, (_, i) => `get p${i}\r\n`),
            `get ${Array.from({ length: 150 }, (_, i) => `p${i}`).join(' ').slice(0, 1800)}\r\n`,
            ...Array.from({ length: 150 }, (_, i) => `delete p${i}${i % 2 === 0 ? ' noreply' : ''}\r\n`),
          ],
        },
      ],
    },
  ];
}
