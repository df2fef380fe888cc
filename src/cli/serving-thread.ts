/**
 * A serving thread after the first (-t N, see threads.ts): attach an engine to the first
 * thread's store, open its plain TCP listeners again (SO_REUSEPORT) and serve clients with the
 * text, meta and binary protocols. Administrative text commands go to the first thread.
 *
 * Runs as a worker_threads entry (dist/cli/serving-thread.js).
 */
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { Engine } from '../engine/engine';
import { ServerStats } from '../metrics/stats';
import { startNetwork, type NetworkHandle } from '../net/server';
import type { NetConnectionInfo } from '../net/registry';
import { createSession, type SessionHooks } from '../protocol/dispatch';
import { initAuth } from '../protocol/auth';
import type { Output } from '../protocol/output';
import type { ConnectionInfo, ProtocolSession, SessionFactory } from '../protocol/session';
import { Clock } from '../store/clock';
import type { FromServingThread, RpcReply, RpcRequest, ServingThreadData, ToServingThread } from './threads';

/** A forwarded command that gets no answer within this long is answered with an error. */
const RPC_TIMEOUT_MS = 10_000;
const RPC_TIMEOUT_REPLY = Buffer.from('SERVER_ERROR the first thread did not answer\r\n', 'latin1');

function send(m: FromServingThread): void {
  parentPort?.postMessage(m);
}

async function serve(d: ServingThreadData): Promise<void> {
  const settings = d.settings;
  const log = (level: number, msg: string): void => {
    if (settings.verbose >= level) process.stderr.write(msg.endsWith('\n') ? msg : msg + '\n');
  };
  const stats = new ServerStats(d.statsTable, d.thread);
  const engine = new Engine(settings, stats, new Clock(d.clock), d.memory);
  engine.start();
  const authInit = initAuth(settings);
  if (!authInit.ok) throw new Error(authInit.message);

  let seq = 0;
  const forward = (request: Buffer): Buffer => {
    seq = (seq % 0x7fffffff) + 1;
    const mine = seq;
    const msg: RpcRequest = { seq: mine, request };
    d.rpcPort.postMessage(msg);
    const deadline = Date.now() + RPC_TIMEOUT_MS;
    for (;;) {
      // The first thread stores the sequence number of each reply it posts, then wakes us.
      const left = deadline - Date.now();
      if (Atomics.load(d.rpcWord, 0) !== mine) {
        if (left <= 0) return RPC_TIMEOUT_REPLY;
        Atomics.wait(d.rpcWord, 0, Atomics.load(d.rpcWord, 0), left);
        continue;
      }
      // Drop late replies to requests that timed out before.
      for (let m = receiveMessageOnPort(d.rpcPort); m !== undefined; m = receiveMessageOnPort(d.rpcPort)) {
        const r = m.message as RpcReply;
        if (r.seq === mine) return Buffer.from(r.reply.buffer, r.reply.byteOffset, r.reply.byteLength);
      }
      return RPC_TIMEOUT_REPLY;
    }
  };

  let network: NetworkHandle | null = null;
  const hooks: SessionHooks = {
    stats: {
      engine,
      startedUnixSeconds: engine.clock.processStartedUnix,
      connections: () => network?.connections() ?? [],
      acceptingConnections: () => network?.acceptingConnections() ?? false,
    },
    auth: authInit.auth,
    // Forwarded (threads.ts): the first thread shuts the server down.
    shutdown: () => undefined,
    forward,
  };
  const factory: SessionFactory = {
    create(conn: ConnectionInfo, output: Output): ProtocolSession {
      const protocol = (conn as NetConnectionInfo).protocol ?? settings.bindProtocol;
      return createSession(engine, output, conn, hooks, settings, protocol);
    },
  };
  network = await startNetwork(settings, stats, factory, log, {
    clockSeconds: () => engine.clock.now,
    sharedTcp: d.sharedTcp,
  });
  const net = network;
  parentPort?.on('message', (m: ToServingThread) => {
    if (m.type === 'settings') {
      Object.assign(settings, m.settings);
    } else if (m.type === 'stop') {
      void (m.graceful ? net.gracefulStop() : net.close()).then(() => {
        engine.stop();
        d.rpcPort.close();
        send({ type: 'stopped' });
        parentPort?.close();
      });
    }
  });
  send({ type: 'ready' });
}

serve(workerData as ServingThreadData).catch((e: unknown) => {
  send({ type: 'failed', message: e instanceof Error ? e.message : String(e) });
  process.exit(1);
});
