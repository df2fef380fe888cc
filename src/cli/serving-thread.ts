/**
 * A worker thread (-t N > 1, see threads.ts): attach an engine to thread 0's store, serve the
 * connections thread 0 hands it (or, with -o tcp_accept=reuseport, accepts on SO_REUSEPORT
 * sockets of its own) with the text, meta and binary protocols. Administrative text commands
 * go to thread 0.
 *
 * Runs as a worker_threads entry (dist/cli/serving-thread.js).
 */
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { Engine } from '../engine/engine';
import { LinkedRecords } from '../engine/storage-link';
import type { ConnectionStat } from '../engine/stats';
import { commandLatency } from '../metrics/latency';
import { connectionEventsFor } from '../metrics/logger';
import { ServerStats } from '../metrics/stats';
import { startNetwork, type NetworkHandle } from '../net/server';
import type { NetConnectionInfo } from '../net/registry';
import { createSession, type SessionHooks } from '../protocol/dispatch';
import { initAuth } from '../protocol/auth';
import type { Output } from '../protocol/output';
import type { ConnectionInfo, ProtocolSession, SessionFactory } from '../protocol/session';
import { nativeAddon } from '../platform/native';
import { Clock } from '../store/clock';
import { beforeListening, statsForThreads } from './threads';
import type { FromServingThread, RpcReply, RpcRequest, ServingThreadData, SettingsUpdate, ToServingThread } from './threads';

/** A worker sends its connection list for `stats conns` at most this often (and with each `stats conns`). */
const CONNS_SNAPSHOT_MS = 20;
/** A worker hands its `stats detail` counts to thread 0 this often (and before each forwarded command). */
const DETAIL_FLUSH_MS = 50;
/** A forwarded command that gets no answer within this long is answered with an error. */
const RPC_TIMEOUT_MS = 10_000;
const RPC_TIMEOUT_REPLY = Buffer.from('SERVER_ERROR the first thread did not answer\r\n', 'latin1');
const STATS_CONNS = Buffer.from('stats conns', 'latin1');
/** Each serving worker's thread name (`ps -L`, `top -H`), memcached's for its workers. */
const WORKER_THREAD_NAME = 'mc-worker';

function send(m: FromServingThread): void {
  parentPort?.postMessage(m);
}

async function serve(d: ServingThreadData): Promise<void> {
  const settings = d.settings;
  const log = (level: number, msg: string): void => {
    if (settings.verbose >= level) process.stderr.write(msg.endsWith('\n') ? msg : msg + '\n');
  };
  // Without the addon the thread keeps Node's name (the process's).
  nativeAddon()?.setThreadName(WORKER_THREAD_NAME);
  const stats = new ServerStats(d.statsTable, d.thread);
  commandLatency.share(d.latencyTable, d.thread, d.statsTable.threads);
  // Extstore: values on disk are read through thread 0 (or from the page cache directly).
  const storageLink = d.storageLink === null ? null : new LinkedRecords(d.storageLink, (notice) => {
    const msg: RpcRequest = { kind: 'extstore', notice };
    d.rpcPort.postMessage(msg);
  }, log);
  const engine = new Engine(settings, stats, new Clock(d.clock), d.memory, null, null, storageLink);
  engine.start();
  const authInit = initAuth(settings);
  if (!authInit.ok) throw new Error(authInit.message);

  // `watch`: lines go to thread 0, whose logger has the watchers; sent once per loop turn.
  engine.logger.shareWith(d.watchState, d.thread, d.statsTable.threads);
  // `stats detail`: this thread counts, and hands its counts to thread 0 (which answers the
  // dump) once per loop turn and before each command it forwards.
  const sendDetail = (): void => {
    if (!engine.detail.pending) return;
    const msg: RpcRequest = { kind: 'detail', counts: engine.detail.drain() };
    d.rpcPort.postMessage(msg);
  };
  const detailTimer = setInterval(() => {
    sendDetail();
    // An idle thread still takes settings changes, so they do not pile up on its port.
    syncSettings();
  }, DETAIL_FLUSH_MS);
  detailTimer.unref();
  let lines: (number | string)[] = [];
  engine.logger.forward = (stream, body) => {
    if (lines.length === 0) {
      setImmediate(() => {
        const msg: RpcRequest = { kind: 'log', lines };
        lines = [];
        d.rpcPort.postMessage(msg);
      });
    }
    lines.push(stream, body);
  };

  let network: NetworkHandle | null = null;
  // `stats conns`: this thread's clients, sent to thread 0 when they change (at most every
  // CONNS_SNAPSHOT_MS) and before each `stats conns` this thread forwards.
  const sendConnections = (): void => {
    const list: ConnectionStat[] = [];
    for (const c of network?.connections() ?? []) {
      if (c.stateName === 'conn_listening') continue;
      list.push({ id: c.id, transport: c.transport, peerName: c.peerName, localName: (c as NetConnectionInfo).localName ?? null,
        stateName: c.stateName, lastCommandTime: c.lastCommandTime });
    }
    const msg: RpcRequest = { kind: 'conns', list };
    d.rpcPort.postMessage(msg);
  };
  let snapshotTimer: NodeJS.Timeout | null = null;
  const connectionsChanged = (): void => {
    if (snapshotTimer !== null) return;
    snapshotTimer = setTimeout(() => {
      snapshotTimer = null;
      sendConnections();
    }, CONNS_SNAPSHOT_MS);
    snapshotTimer.unref();
  };
  const events = connectionEventsFor(engine.logger);

  // Settings arrive two ways (the broadcast, and the reply to a command this thread
  // forwarded), which may cross: only a newer generation is taken.
  let generation = 0;
  const applySettings = (next: typeof settings, nextGeneration: number): void => {
    if (nextGeneration < generation) return;
    generation = nextGeneration;
    Object.assign(settings, next);
    engine.detail.enabled = settings.detailEnabled;
  };
  let settingsSeen = 0;
  const syncSettings = (): void => {
    const word = Atomics.load(d.settingsWord, 0);
    if (word === settingsSeen) return;
    settingsSeen = word;
    for (let m = receiveMessageOnPort(d.settingsPort); m !== undefined; m = receiveMessageOnPort(d.settingsPort)) {
      const u = m.message as SettingsUpdate;
      applySettings(u.settings, u.generation);
    }
  };

  let seq = 0;
  const forward = (request: Buffer, pipelined: boolean): Buffer => {
    sendDetail();
    // Deletions and reads made here count in thread 0's extstore stats before the command runs.
    storageLink?.flush();
    if (request.length >= STATS_CONNS.length && request.subarray(0, STATS_CONNS.length).equals(STATS_CONNS)) sendConnections();
    seq = (seq % 0x7fffffff) + 1;
    const mine = seq;
    const msg: RpcRequest = { kind: 'rpc', seq: mine, request, pipelined };
    d.rpcPort.postMessage(msg);
    const deadline = Date.now() + RPC_TIMEOUT_MS;
    for (;;) {
      // The first thread stores the sequence number of each reply it posts, then wakes us.
      const left = deadline - Date.now();
      const seen = Atomics.load(d.rpcWord, 0);
      if (seen !== mine) {
        if (left <= 0) return RPC_TIMEOUT_REPLY;
        // Sleep only while the word still holds what was just checked: had it been read again
        // here, a reply stored (and its wake-up sent) between the two loads would leave this
        // thread asleep for the whole timeout.
        Atomics.wait(d.rpcWord, 0, seen, left);
        continue;
      }
      // Drop late replies to requests that timed out before.
      for (let m = receiveMessageOnPort(d.rpcPort); m !== undefined; m = receiveMessageOnPort(d.rpcPort)) {
        const r = m.message as RpcReply;
        if (r.seq === mine) {
          // The command may have moved the clock (debugtime) or changed settings (stats detail
          // on, verbosity, lru ...): this connection's next command sees both.
          engine.clock.tick();
          applySettings(r.settings, r.generation);
          return Buffer.from(r.reply.buffer, r.reply.byteOffset, r.reply.byteLength);
        }
      }
      return RPC_TIMEOUT_REPLY;
    }
  };

  const hooks: SessionHooks = {
    stats: {
      engine,
      startedUnixSeconds: engine.clock.processStartedUnix,
      connections: () => network?.connections() ?? [],
      acceptingConnections: () => network?.acceptingConnections() ?? false,
    },
    auth: authInit.auth,
    // Forwarded (threads.ts): thread 0 shuts the server down.
    shutdown: () => undefined,
    forward,
  };
  const factory: SessionFactory = {
    create(conn: ConnectionInfo, output: Output): ProtocolSession {
      const protocol = (conn as NetConnectionInfo).protocol ?? settings.bindProtocol;
      const session = createSession(engine, output, conn, hooks, settings, protocol);
      // Every read takes the settings changes made so far on any thread, and thread 0's
      // clock as it is now (one atomic load each): a second that began there is in force here
      // too, as memcached's one current_time is for all its threads (else an item stored
      // here just after a flush_all there could fall in the flushed second).
      const feed = session.feed.bind(session);
      session.feed = (buf, start, end) => {
        syncSettings();
        engine.clock.tick();
        return feed(buf, start, end);
      };
      return session;
    },
  };
  beforeListening(settings, () => statsForThreads(d.statsTable.threads), d.loopYield, log, `thread ${d.thread}: `);
  network = await startNetwork(settings, stats, factory, log, {
    clockSeconds: () => engine.clock.now,
    sharedTcp: d.sharedTcp,
    tcpAccept: settings.tcpAccept,
    sharedUdp: d.sharedUdp,
    tlsSessionPort: d.tlsSessionPort ?? undefined,
    connectionIds: d.connectionIds,
    tlsMaterial: d.tls?.material,
    tlsTicketKeys: d.tls?.keys,
    slotsInTransit: d.slotsInTransit,
    connectionEvents: {
      opened(info) {
        events.opened(info);
        connectionsChanged();
      },
      closed(info, reason) {
        events.closed(info, reason);
        connectionsChanged();
      },
      tlsError: events.tlsError,
    },
  });
  const net = network;
  // Thread 0 lists this thread's UDP endpoints in `stats conns` before any client comes.
  if (d.sharedUdp.length > 0) sendConnections();
  parentPort?.on('message', (m: ToServingThread) => {
    if (m.type === 'adopt') {
      net.adopt(m.fd, m.listener, m.listenerId);
    } else if (m.type === 'tls') {
      net.applyTls(m);
    } else if (m.type === 'lines') {
      for (let i = 0; i + 1 < m.lines.length; i += 2) engine.logger.deliverFormatted(m.lines[i] as number, m.lines[i + 1] as string);
    } else if (m.type === 'stop') {
      void (m.graceful ? net.gracefulStop() : net.close()).then(() => {
        clearInterval(detailTimer);
        engine.stop();
        storageLink?.close();
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
