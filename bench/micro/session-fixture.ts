/**
 * A text-protocol session over a real engine, without sockets, for the parser and response
 * micro benchmarks. Admin hooks and connection details are stubs: the functions measured
 * (tokenize, writeValue) never reach them.
 */
import { Engine } from '../../src/engine/engine';
import { ServerStats } from '../../src/metrics/stats';
import { Output } from '../../src/protocol/output';
import type { ConnectionInfo } from '../../src/protocol/session';
import type { AdminHooks } from '../../src/protocol/text/admin';
import { TextSession } from '../../src/protocol/text/session';
import { defaultSettings } from '../../src/settings';

export interface Fixture {
  engine: Engine;
  out: Output;
  session: TextSession;
  /** Feed request bytes and return the reply text (Output reset afterwards). */
  send(text: string | Buffer): string;
}

export function makeFixture(): Fixture {
  const engine = new Engine(defaultSettings(), new ServerStats());
  const out = new Output();
  const conn = { id: 1, transport: 'tcp', peerName: 'tcp:bench', lastCommandTime: 0, stateName: 'conn_parse_cmd' } as ConnectionInfo;
  const session = new TextSession(engine, out, conn, {} as AdminHooks);
  const send = (text: string | Buffer): string => {
    const buf = typeof text === 'string' ? Buffer.from(text, 'latin1') : text;
    const used = session.feed(buf, 0, buf.length);
    if (used !== buf.length) throw new Error(`session consumed ${used} of ${buf.length} bytes`);
    const reply = out.buf.toString('latin1', 0, out.length);
    out.reset();
    return reply;
  };
  return { engine, out, session, send };
}
