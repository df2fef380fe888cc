/**
 * Prefetching a read's keys (src/protocol/text/prefetch.ts, Engine.prefetchKeys): the scanner
 * finds the keys the parser will look up, and prefetching changes no reply and no counter.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { collectBinaryKeys } from '../../src/protocol/binary/prefetch';
import { collectKeys } from '../../src/protocol/text/prefetch';
import { HashIndex } from '../../src/store/hash';
import { Prng, seedFromEnv } from '../helpers/prng';
import { OP, get, incrExtras, makeBinaryHarness, normalise, req, set, setExtras } from './binary-helpers';
import { makeHarness } from './harness';

/** The keys collectKeys finds in `text`, as strings. */
function keysIn(text: string, keysMax = 64, linesMax = 100): string[] {
  const buf = Buffer.from(text, 'latin1');
  const spans = new Int32Array(2 * 64);
  const n = collectKeys(buf, 0, buf.length, spans, keysMax, linesMax);
  const keys: string[] = [];
  for (let i = 0; i < n; i++) keys.push(buf.toString('latin1', spans[2 * i], spans[2 * i] + spans[2 * i + 1]));
  return keys;
}

describe('collectKeys', () => {
  it('finds every key of get and gets lines, and the keys after gat/gats exptimes', () => {
    expect(keysIn('get a\r\nget b c  d\r\ngets e\r\n')).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(keysIn('gat 100 f g\r\ngats 0 h\r\n')).toEqual(['f', 'g', 'h']);
  });

  it('finds the key of meta commands and storage commands, and steps over their values', () => {
    const text =
      'mg k1 v f\r\n' +
      'set k2 0 0 13\r\nget trapped\r\n\r\n' +
      'ms k3 5 T0\r\nmg no\r\n' +
      'cas k4 1 2 3 99 noreply\r\nabc\r\n' +
      'append k5 0 0 0\r\n\r\n' +
      'md k6 q\r\nma k7\r\nmn\r\nget k8\r\n';
    expect(keysIn(text)).toEqual(['k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7', 'k8']);
  });

  it('steps over lines it has no use for', () => {
    expect(keysIn('version\r\nincr n 1\r\nstats items\r\nverbosity 1\r\nget z\r\n')).toEqual(['z']);
    expect(keysIn('get a\nget b\n')).toEqual(['a', 'b']);
  });

  it('stops at an unfinished line, a value not read in whole, or a byte count it cannot follow', () => {
    expect(keysIn('get a\r\nget b')).toEqual(['a']);
    expect(keysIn('set a 0 0 10\r\nshort')).toEqual(['a']);
    expect(keysIn('set a 0 0 10\r\n0123456789\r\nget b\r\n')).toEqual(['a', 'b']);
    expect(keysIn('set a 0 0 x\r\nget b\r\n')).toEqual(['a']);
    expect(keysIn('set a 0 0 1234567890\r\nget b\r\n')).toEqual(['a']);
    expect(keysIn('ms a\r\nget b\r\n')).toEqual(['a']);
  });

  it('leaves out tokens too long to be keys', () => {
    expect(keysIn(`get ${'x'.repeat(251)} ${'y'.repeat(250)}\r\n`)).toEqual(['y'.repeat(250)]);
  });

  it('stops at keysMax keys and linesMax lines', () => {
    expect(keysIn('get a b c d\r\n', 3)).toEqual(['a', 'b', 'c']);
    expect(keysIn('get a\r\nget b\r\nget c\r\n', 64, 2)).toEqual(['a', 'b']);
    expect(keysIn('set a 0 0 1\r\nx\r\nget b\r\n', 64, 1)).toEqual(['a']);
  });

  it('reads only within [start, end)', () => {
    const buf = Buffer.from('get zz\r\nget a\r\nget b\r\nget c\r\n', 'latin1');
    const spans = new Int32Array(16);
    const start = 'get zz\r\n'.length;
    const end = buf.length - 'get c\r\n'.length;
    expect(collectKeys(buf, start, end, spans, 8, 20)).toBe(2);
    expect(buf.toString('latin1', spans[0], spans[0] + spans[1])).toBe('a');
    expect(buf.toString('latin1', spans[2], spans[2] + spans[3])).toBe('b');
  });
});

describe('prefetching in the text session', () => {
  afterEach(() => vi.restoreAllMocks());

  it('touches the buckets of a pipeline of gets before running them, and not for a lone short line', () => {
    const h = makeHarness();
    h.send('set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\n');
    const prefetch = vi.spyOn(h.engine, 'prefetchKeys');
    const firstOf = vi.spyOn(HashIndex.prototype, 'firstOf');
    expect(h.send('get a\r\nget b\r\nget zz\r\n')).toBe('VALUE a 0 1\r\n1\r\nEND\r\nVALUE b 0 1\r\n2\r\nEND\r\nEND\r\n');
    expect(prefetch).toHaveBeenCalledTimes(1);
    expect(prefetch.mock.calls[0][2]).toBe(3);
    expect(firstOf).toHaveBeenCalledTimes(3);
    // A lone line: a short one is not scanned, a long multiget is.
    expect(h.send('get a b\r\n')).toBe('VALUE a 0 1\r\n1\r\nVALUE b 0 1\r\n2\r\nEND\r\n');
    expect(h.send('get a\r\n')).toBe('VALUE a 0 1\r\n1\r\nEND\r\n');
    expect(prefetch).toHaveBeenCalledTimes(1);
    const many = Array.from({ length: 12 }, (_, i) => `missing-key-${i}`);
    expect(h.send(`get a ${many.join(' ')} b\r\n`)).toBe('VALUE a 0 1\r\n1\r\nVALUE b 0 1\r\n2\r\nEND\r\n');
    expect(prefetch).toHaveBeenCalledTimes(2);
    expect(prefetch.mock.calls[1][2]).toBe(14);
    // Requests after a value that began in an earlier read are prefetched too.
    h.send('set c 0 0 10\r\n01234');
    expect(h.send('56789\r\nget a\r\nget c\r\n')).toBe('STORED\r\nVALUE a 0 1\r\n1\r\nEND\r\nVALUE c 0 10\r\n0123456789\r\nEND\r\n');
    expect(prefetch).toHaveBeenCalledTimes(3);
    expect(prefetch.mock.calls[2][2]).toBe(2);
  });

  it('does nothing with -o prefetch_keys=0', () => {
    const h = makeHarness({ prefetchKeys: 0 });
    const prefetch = vi.spyOn(h.engine, 'prefetchKeys');
    h.send('get a\r\nget b\r\nget a b c\r\n');
    expect(prefetch).not.toHaveBeenCalled();
  });

  it('changes no reply and no counter: random pipelines with and without it agree', () => {
    const seed = seedFromEnv();
    const rng = new Prng(seed);
    const on = makeHarness({ prefetchKeys: 32, debugCommands: true });
    const off = makeHarness({ prefetchKeys: 0, debugCommands: true });
    const keys = Array.from({ length: 40 }, (_, i) => `key${i}`);
    const line = (): string => {
      const k = rng.pick(keys);
      const value = rng.chance(0.2) ? `get ${rng.pick(keys)}\r\nx` : 'v'.repeat(rng.int(0, 30));
      switch (rng.int(0, 11)) {
        case 0:
          return `set ${k} ${rng.int(0, 9)} ${rng.chance(0.2) ? -1 : 0} ${value.length}\r\n${value}\r\n`;
        case 1:
          return `add ${k} 0 0 ${value.length}\r\n${value}\r\n`;
        case 2:
          return `get ${Array.from({ length: rng.int(1, 12) }, () => rng.pick(keys)).join(' ')}\r\n`;
        case 3:
          return `gets ${k}\r\n`;
        case 4:
          return `delete ${k}\r\n`;
        case 5:
          return `incr ${k} 1\r\n`;
        case 6:
          return `mg ${k} v f c t\r\n`;
        case 7:
          return `ms ${k} ${value.length} T0\r\n${value}\r\n`;
        case 8:
          return `gat ${rng.int(0, 100)} ${k} ${rng.pick(keys)}\r\n`;
        case 9:
          return `append ${k} 0 0 ${value.length}\r\n${value}\r\n`;
        case 10:
          return `md ${k}\r\n`;
        default:
          return `touch ${k} ${rng.chance(0.5) ? -1 : 100}\r\n`;
      }
    };
    for (let batch = 0; batch < 300; batch++) {
      const text = Array.from({ length: rng.int(1, 24) }, line).join('');
      // Split the batch at a random point too: a read may end anywhere.
      const cut = rng.int(0, text.length);
      const chunks = [text.slice(0, cut), text.slice(cut)];
      const a = on.run(chunks).reply;
      const b = off.run(chunks).reply;
      if (a !== b) throw new Error(`seed ${seed}, batch ${batch}: replies differ for ${JSON.stringify(text)}\nwith: ${JSON.stringify(a)}\nwithout: ${JSON.stringify(b)}`);
    }
    const counters = (h: ReturnType<typeof makeHarness>, cmd: string): string =>
      h
        .send(`${cmd}\r\n`)
        .split('\r\n')
        .filter((l) => !/ (pid|uptime|time|rusage_\w+|.*_time|total_connections|curr_connections) /.test(`${l} `))
        .join('\n');
    for (const cmd of ['stats', 'stats items', 'stats slabs']) {
      expect(counters(on, cmd), `seed ${seed}: ${cmd}`).toBe(counters(off, cmd));
    }
  });
});

describe('collectBinaryKeys', () => {
  const keysOf = (buf: Buffer, keysMax = 64, requestsMax = 100): string[] => {
    const spans = new Int32Array(128);
    const n = collectBinaryKeys(buf, 0, buf.length, spans, keysMax, requestsMax);
    return Array.from({ length: n }, (_, i) => buf.toString('latin1', spans[2 * i], spans[2 * i] + spans[2 * i + 1]));
  };

  it('finds the key of every request, stepping over extras and values', () => {
    const buf = Buffer.concat([
      get('a'),
      set('b', 'value with a header-like \x80 byte', { flags: 3 }),
      req({ op: OP.NOOP }),
      req({ op: OP.INCR, key: 'c', extras: incrExtras(1n, 0n, 0) }),
      req({ op: OP.GETK, key: 'd' }),
    ]);
    expect(keysOf(buf)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('stops at a request not wholly read, a wrong magic byte, or lengths that do not add up', () => {
    const two = Buffer.concat([get('a'), get('b')]);
    expect(keysOf(two.subarray(0, two.length - 1))).toEqual(['a']);
    expect(keysOf(Buffer.concat([get('a'), get('b', { magic: 0x81 }), get('c')]))).toEqual(['a']);
    expect(keysOf(Buffer.concat([get('a'), req({ op: OP.GET, key: 'bb', bodylen: 1 }), get('c')]))).toEqual(['a']);
  });

  it('leaves out keys too long to be keys, and stops at keysMax and requestsMax', () => {
    expect(keysOf(Buffer.concat([get('x'.repeat(251)), get('y')]))).toEqual(['y']);
    expect(keysOf(Buffer.concat([get('a'), get('b'), get('c')]), 2)).toEqual(['a', 'b']);
    expect(keysOf(Buffer.concat([get('a'), get('b'), get('c')]), 64, 1)).toEqual(['a']);
  });
});

describe('prefetching in the binary session', () => {
  afterEach(() => vi.restoreAllMocks());

  it('touches the buckets of a pipeline before running it; replies and counters agree with it off', () => {
    const seed = seedFromEnv();
    const rng = new Prng(seed);
    const on = makeBinaryHarness({ prefetchKeys: 32 });
    const off = makeBinaryHarness({ prefetchKeys: 0 });
    const prefetch = vi.spyOn(on.engine, 'prefetchKeys');
    const keys = Array.from({ length: 30 }, (_, i) => `key${i}`);
    const request = (): Buffer => {
      const k = rng.pick(keys);
      switch (rng.int(0, 6)) {
        case 0:
          return req({ op: OP.SET, key: k, value: 'v'.repeat(rng.int(0, 40)), extras: setExtras(rng.int(0, 9), rng.chance(0.2) ? -1 : 0) });
        case 1:
          return req({ op: OP.DELETE, key: k });
        case 2:
          return req({ op: OP.INCR, key: k, extras: incrExtras(1n, 5n, 0) });
        case 3:
          return req({ op: OP.GETK, key: k });
        case 4:
          return req({ op: OP.GETQ, key: k });
        default:
          return req({ op: OP.GET, key: k });
      }
    };
    for (let batch = 0; batch < 200; batch++) {
      const bytes = Buffer.concat([...Array.from({ length: rng.int(1, 20) }, request), req({ op: OP.NOOP })]);
      const cut = rng.int(0, bytes.length);
      const chunks = [bytes.subarray(0, cut), bytes.subarray(cut)];
      const a = normalise(on.run(chunks).reply);
      const b = normalise(off.run(chunks).reply);
      if (a !== b) throw new Error(`seed ${seed}, batch ${batch}: replies differ\nwith: ${a}\nwithout: ${b}`);
    }
    expect(prefetch).toHaveBeenCalled();
    const stats = (h: ReturnType<typeof makeBinaryHarness>): string =>
      normalise(h.run([req({ op: OP.STAT })]).reply, { statValues: true })
        .split('\n')
        .filter((l) => !/(pid|uptime|time|rusage_|connections)/.test(l))
        .join('\n');
    expect(stats(on), `seed ${seed}`).toBe(stats(off));
  });
});
