/**
 * An in-process server wired the way src/cli/main.ts wires it, with the observability parts:
 * the `watch connevents` observer (NetworkOptions.connectionEvents) and the Prometheus
 * endpoint (-o metrics_listen). Loopback, ephemeral ports; stop() closes everything.
 */
import { Engine } from '../../src/engine/engine';
import type { StatsContext } from '../../src/engine/stats';
import { connectionEventsFor } from '../../src/metrics/logger';
import { startMetricsEndpoint, type MetricsEndpoint } from '../../src/metrics/prometheus';
import { ServerStats } from '../../src/metrics/stats';
import { startNetwork, type NetworkHandle } from '../../src/net/server';
import { createSession, type SessionHooks } from '../../src/protocol/dispatch';
import type { NetConnectionInfo } from '../../src/net/registry';
import type { Settings } from '../../src/settings';
import { LOOPBACK, testSettings } from '../net/harness';

export interface FullServer {
  readonly engine: Engine;
  readonly network: NetworkHandle;
  readonly settings: Settings;
  readonly port: number;
  /** The metrics endpoint's port, when `metrics` was asked for. */
  readonly metricsPort: number;
  readonly logs: string[];
  stop(): Promise<void>;
}

export async function startFullServer(overrides: Partial<Settings> = {}, metrics = false): Promise<FullServer> {
  const settings = testSettings(overrides);
  const engine = new Engine(settings, new ServerStats());
  const logs: string[] = [];
  const log = (level: number, msg: string): void => {
    if (settings.verbose >= level) logs.push(msg);
  };
  engine.log = log;
  let network: NetworkHandle | null = null;
  const stats: StatsContext = {
    engine,
    startedUnixSeconds: engine.clock.processStartedUnix,
    connections: () => network?.connections() ?? [],
    acceptingConnections: () => network?.acceptingConnections() ?? false,
  };
  const hooks: SessionHooks = { stats, shutdown: () => undefined };
  engine.start();
  network = await startNetwork(settings, engine.stats, {
    create: (conn, output) => createSession(engine, output, conn, hooks, settings,
      (conn as NetConnectionInfo).protocol ?? settings.bindProtocol),
  }, log, { clockSeconds: () => engine.clock.now, connectionEvents: connectionEventsFor(engine.logger) });
  let endpoint: MetricsEndpoint | null = null;
  if (metrics) endpoint = await startMetricsEndpoint({ host: LOOPBACK, port: 0 }, stats);
  const net = network;
  return {
    engine,
    network: net,
    settings,
    port: net.addresses().tcp[0].port,
    metricsPort: endpoint?.address.port ?? 0,
    logs,
    async stop() {
      await endpoint?.close();
      await net.close();
      engine.stop();
    },
  };
}
