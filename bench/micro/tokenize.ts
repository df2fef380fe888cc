/**
 * Micro benchmark: `TextSession#tokenize` (src/protocol/text/session.ts), which splits a
 * request line into token offsets: the first step of every text command.
 */
import { makeFixture } from './session-fixture';
import { measure, runMain, type MicroOptions, type MicroResult } from './timing';

export function run(opts: MicroOptions): MicroResult[] {
  const { session } = makeFixture();
  const lines: [string, string][] = [
    ['tokenize: get <14-byte key>', 'get memtier-1234567'],
    ['tokenize: set <key> 0 0 100', 'set memtier-1234567 0 0 100'],
    ['tokenize: set ... noreply', 'set memtier-1234567 0 0 100 noreply'],
    ['tokenize: get of 10 keys', `get ${Array.from({ length: 10 }, (_, i) => `memtier-${1000000 + i}`).join(' ')}`],
  ];
  return lines.map(([name, line]) => {
    const buf = Buffer.from(line, 'latin1');
    const end = buf.length;
    session.tokenize(buf, 0, end);
    if (session.ntokens < 2) throw new Error(`tokenize found ${session.ntokens} tokens in "${line}"`);
    return measure(
      name,
      (n) => {
        let acc = 0;
        for (let i = 0; i < n; i++) {
          session.tokenize(buf, 0, end);
          acc += session.ntokens;
        }
        return acc;
      },
      opts,
    );
  });
}

if (require.main === module) runMain('TextSession#tokenize (src/protocol/text/session.ts)', run);
