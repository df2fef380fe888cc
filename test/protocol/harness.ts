/** In-process harness: a TextSession fed the way a connection feeds it, without sockets. */
import { Engine } from '../../src/engine/engine';
import { ServerStats } from '../../src/metrics/stats';
import { Output } from '../../src/protocol/output';
import { FeedStatus, type ConnectionInfo } from '../../src/protocol/session';
import { TextSession } from '../../src/protocol/text/session';
import type { AdminHooks } from '../../src/protocol/text/admin';
import { defaultSettings, type Settings } from '../../src/settings';

export interface Harness {
  engine: Engine;
  session: TextSession;
  /** Feed chunks in order; returns everything the session replied, and whether it closed. */
  run(chunks: (string | Buffer)[]): { reply: string; closed: boolean };
  send(text: string | Buffer): string;
}

export function makeHarness(overrides: Partial<Settings> = {}): Harness {
  const settings = { ...defaultSettings(), memoryLimitBytes: 8 * 1024 * 1024, ...overrides };
  const engine = new Engine(settings, new ServerStats());
  const out = new Output(1024);
  const conn: ConnectionInfo = { id: 1, transport: 'tcp', peerName: 'tcp:test', lastCommandTime: 0, stateName: 'conn_parse_cmd' };
  const hooks: AdminHooks = {
    stats: {
      engine,
      startedUnixSeconds: 0,
      connections: () => [conn],
      acceptingConnections: () => true,
    },
    shutdown: () => undefined,
  };
  const session = new TextSession(engine, out, conn, hooks);
  let pending = Buffer.alloc(0);
  let closed = false;
  const run = (chunks: (string | Buffer)[]) => {
    let reply = '';
    for (const chunk of chunks) {
      if (closed) break;
      pending = Buffer.concat([pending, typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk]);
      for (let guard = 0; guard < 100000; guard++) {
        const used = session.feed(pending, 0, pending.length);
        pending = pending.subarray(used);
        reply += out.buf.toString('latin1', 0, out.length);
        out.reset();
        if (session.status === FeedStatus.Close) {
          closed = true;
          break;
        }
        if (session.status !== FeedStatus.Yield) break;
      }
    }
    return { reply, closed };
  };
  return { engine, session, run, send: (t) => run([t]).reply };
}
