/**
 * Micro benchmark: `hashKey` (src/store/hash.ts), the 32-bit hash every get and set computes
 * over the key bytes. Keys of memtier's shape and length, a short one and a long one.
 */
import { hashKey } from '../../src/store/hash';
import { measure, runMain, type MicroOptions, type MicroResult } from './timing';

/** `count` distinct keys packed in one buffer, as they sit in a read buffer. */
function keys(prefix: string, count: number, padTo: number): { buf: Buffer; starts: Int32Array; lens: Int32Array } {
  const parts: Buffer[] = [];
  const starts = new Int32Array(count);
  const lens = new Int32Array(count);
  let at = 0;
  for (let i = 0; i < count; i++) {
    const k = Buffer.from(`${prefix}${i}`.padEnd(padTo, 'x'), 'latin1');
    parts.push(k, Buffer.from(' '));
    starts[i] = at;
    lens[i] = k.length;
    at += k.length + 1;
  }
  return { buf: Buffer.concat(parts), starts, lens };
}

export function run(opts: MicroOptions): MicroResult[] {
  const cases: [string, ReturnType<typeof keys>][] = [
    ['hashKey: 14-byte memtier key', keys('memtier-', 1024, 14)],
    ['hashKey: 5-byte key', keys('k', 1024, 5)],
    ['hashKey: 64-byte key', keys('user:session:', 1024, 64)],
    ['hashKey: 250-byte key (maximum)', keys('long:', 1024, 250)],
  ];
  return cases.map(([name, k]) =>
    measure(
      name,
      (n) => {
        let h = 0;
        for (let i = 0; i < n; i++) {
          const j = i & 1023;
          h ^= hashKey(k.buf, k.starts[j], k.lens[j]);
        }
        return h;
      },
      opts,
    ),
  );
}

if (require.main === module) runMain('hashKey (src/store/hash.ts)', run);
