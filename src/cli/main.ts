/**
 * Process entry: parse memcached's command line, start the engine and the listeners, and
 * handle signals the way memcached does (SIGINT/SIGTERM stop, SIGUSR1 stops gracefully).
 *
 * Startup order follows memcached: check -r, switch user, daemonize, listen, write the pid file.
 */
import { Engine } from '../engine/engine';
import { ServerStats } from '../metrics/stats';
import { startNetwork, type NetworkHandle } from '../net/server';
import { Output } from '../protocol/output';
import type { ConnectionInfo, ProtocolSession, SessionFactory } from '../protocol/session';
import type { AdminHooks } from '../protocol/text/admin';
import { TextSession } from '../protocol/text/session';
import type { StatsContext } from '../engine/stats';
import type { Settings } from '../settings';
import { SERVER_NAME, SERVER_VERSION, MEMCACHED_COMPAT_VERSION } from '../version';
import { parseCommandLine, EX_OSERR, EX_USAGE } from './options';
import { daemonize, dropPrivileges, ensureCoreDumps, removePidFile, writePidFile } from './process';

/** Startup failure: memcached prints a line and exits non-zero. */
function fail(message: string, code: number): void {
  process.stderr.write(`${SERVER_NAME}: ${message}\n`);
  process.exitCode = code;
}

/** Options that parse but need machinery this build does not have yet. */
function unsupported(settings: Settings): string | null {
  if (settings.bindProtocol === 'binary') return '-B binary: the binary protocol is not implemented yet';
  for (const l of settings.listeners) {
    if (l.protocol === 'binary') return `-l ${l.host ?? '*'}: proto[binary] is not implemented yet`;
  }
  return null;
}

export function main(argv: string[]): void {
  const parsed = parseCommandLine(argv);
  if (parsed.kind === 'exit') {
    if (parsed.stdout) process.stdout.write(parsed.stdout);
    if (parsed.stderr) process.stderr.write(parsed.stderr);
    process.exitCode = parsed.code;
    return;
  }
  for (const w of parsed.warnings) process.stderr.write(w.endsWith('\n') ? w : w + '\n');
  const settings = parsed.settings;
  const missing = unsupported(settings);
  if (missing !== null) return fail(missing, EX_USAGE);

  if (settings.maximizeCoreFile) {
    const err = ensureCoreDumps();
    if (err) return fail(err.message, err.exitCode);
  }
  const privErr = dropPrivileges(settings);
  if (privErr) return fail(privErr.message, privErr.exitCode);
  if (settings.daemonize) {
    const r = daemonize(argv, settings);
    if ('pid' in r) {
      process.exitCode = 0;
      return;
    }
    return fail(r.message, r.exitCode);
  }
  run(settings).catch((e: unknown) => fail(e instanceof Error ? e.message : String(e), EX_OSERR));
}

/** Start everything; resolves once listening. Exported for in-process tests. */
export async function run(settings: Settings): Promise<{ network: NetworkHandle; stop: () => Promise<void> }> {
  const stats = new ServerStats();
  const engine = new Engine(settings, stats);
  const log = (level: number, msg: string): void => {
    if (settings.verbose >= level) process.stderr.write(msg.endsWith('\n') ? msg : msg + '\n');
  };
  if (settings.verbose > 1) logSlabClasses(engine, log);

  let network: NetworkHandle | null = null;
  let stopping = false;
  const stop = async (graceful: boolean): Promise<void> => {
    if (stopping) return;
    stopping = true;
    if (graceful) {
      log(0, 'Gracefully stopping');
      await network?.gracefulStop();
    } else {
      await network?.close();
    }
    engine.stop();
    if (settings.pidFile) removePidFile(settings.pidFile);
  };

  const statsContext: StatsContext = {
    engine,
    startedUnixSeconds: engine.clock.processStartedUnix,
    connections: () => network?.connections() ?? [],
    acceptingConnections: () => network?.acceptingConnections() ?? false,
  };
  const hooks: AdminHooks = {
    stats: statsContext,
    shutdown: (graceful) => {
      setImmediate(() => void stop(graceful).then(() => process.exit(0)));
    },
  };
  const factory: SessionFactory = {
    create(conn: ConnectionInfo, output: Output): ProtocolSession {
      return new TextSession(engine, output, conn, hooks);
    },
  };

  engine.start();
  network = await startNetwork(settings, stats, factory, log, { clockSeconds: () => engine.clock.now });
  if (settings.pidFile) for (const m of writePidFile(settings.pidFile)) process.stderr.write(m + '\n');
  log(1, `${SERVER_NAME} ${SERVER_VERSION} (memcached ${MEMCACHED_COMPAT_VERSION} protocol) started, pid ${process.pid}`);

  const onSignal = (graceful: boolean) => (): void => {
    void stop(graceful).then(() => process.exit(0));
  };
  process.once('SIGINT', onSignal(false));
  process.once('SIGTERM', onSignal(false));
  process.once('SIGUSR1', onSignal(true));
  process.on('SIGHUP', () => log(1, 'SIGHUP ignored (no TLS certificates to reload)'));
  return { network, stop: () => stop(false) };
}

/** memcached -vv prints its slab classes at startup. */
function logSlabClasses(engine: Engine, log: (level: number, msg: string) => void): void {
  const s = engine.slabs;
  for (let cls = 1; cls <= s.largestClass; cls++) {
    log(2, `slab class ${String(cls).padStart(3)}: chunk size ${String(s.classSize[cls]).padStart(9)} perslab ${String(s.perPage[cls]).padStart(7)}`);
  }
}
