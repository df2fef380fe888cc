/**
 * Micro benchmark: response building. A get hit on one item (its memory stays in the CPU's
 * caches, unlike bench/micro/pipelined-gets.ts) through TextSession#feed: parse the line,
 * find the item, append "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\nEND\r\n" to the
 * connection's Output. The reply is checked once against the expected text.
 */
import { makeFixture } from './session-fixture';
import { measure, runMain, type MicroOptions, type MicroResult } from './timing';

export function run(opts: MicroOptions): MicroResult[] {
  const fx = makeFixture();
  const results: MicroResult[] = [];
  for (const [valueBytes, withCas] of [
    [100, false],
    [100, true],
    [4096, false],
  ] as const) {
    const key = `memtier-${valueBytes}`;
    const value = 'a'.repeat(valueBytes);
    const stored = fx.send(`set ${key} 7 0 ${valueBytes}\r\n${value}\r\n`);
    if (stored !== 'STORED\r\n') throw new Error(`set failed: ${JSON.stringify(stored)}`);
    const request = Buffer.from(`get${withCas ? 's' : ''} ${key}\r\n`, 'latin1');
    const reply = fx.send(request);
    const expected = new RegExp(`^VALUE ${key} 7 ${valueBytes}${withCas ? ' \\d+' : ''}\r\n${value}\r\nEND\r\n$`);
    if (!expected.test(reply)) throw new Error(`unexpected reply ${JSON.stringify(reply.slice(0, 60))}`);
    const { session, out } = fx;
    results.push(
      measure(
        `get hit: ${valueBytes}-byte value${withCas ? ' with CAS (gets)' : ''}`,
        (n) => {
          let acc = 0;
          for (let i = 0; i < n; i++) {
            session.feed(request, 0, request.length);
            acc += out.length;
            out.length = 0;
          }
          return acc;
        },
        opts,
      ),
    );
    out.reset();
  }
  return results;
}

if (require.main === module) runMain('TextSession#feed: one get hit, reply built (src/protocol/text/session.ts)', run);
