/**
 * Process entry: parse memcached's command line, start the engine and the listeners, and
 * handle signals the way memcached does (SIGINT/SIGTERM stop, SIGUSR1 stops gracefully).
 *
 * Startup order: check -r, [-d: start the daemon child, which does the rest, and wait for it],
 * read the TLS material, switch user, write the pid file, listen (memcached binds before it
 * writes the pid file but accepts only after; see run()).
 */
import * as fs from 'node:fs';
import { DebugClock } from '../engine/debug-clock';
import { Engine } from '../engine/engine';
import { applyExtstoreThreads } from '../engine/storage';
import { ExtstoreInitError, type ExtstoreSnapshot } from '../extstore/extstore';
import { useNativeCrc32c } from '../extstore/crc32c';
import { commandLatency } from '../metrics/latency';
import { connectionEventsFor } from '../metrics/logger';
import type { MetricsEndpoint } from '../metrics/prometheus';
import { adviseHugePages, checkPlatform, keepYoungGenerationSmall, lockMemory, platformStartupLines } from '../platform/startup';
import { nativeAddon } from '../platform/native';
import { trimFileMappings } from '../platform/trim';
import { Clock } from '../store/clock';
import { MemoryFile, MemoryFileError, MemoryFileMismatch, type ShapeSettings } from '../store/memory-file';
import { startNetwork, tlsInEffect, type NetworkHandle } from '../net/server';
import { loadTlsMaterial, TLS_NOT_ENABLED, TlsConfigError, type TlsMaterial } from '../net/tls';
import { Output } from '../protocol/output';
import type { ConnectionInfo, ProtocolSession, SessionFactory } from '../protocol/session';
import { createSession, type SessionHooks } from '../protocol/dispatch';
import { initAuth } from '../protocol/auth';
import type { NetConnectionInfo } from '../net/registry';
import type { StatsContext } from '../engine/stats';
import type { Settings } from '../settings';
import { SERVER_NAME, SERVER_VERSION, MEMCACHED_COMPAT_VERSION } from '../version';
import { parseCommandLine, EX_OSERR, EX_USAGE } from './options';
import { beforeListening, loopYieldPlan, servingThreadPlan, ServingThreads, statsForThreads, threadRows } from './threads';
import { claimPidFile, daemonize, dropPrivileges, ensureCoreDumps, removePidFile, reportStartup, STARTUP_FD_ENV } from './process';

/** How long after startup the read-only file mappings are trimmed (startup code has run by then). */
const TRIM_AFTER_START_MS = 1000;

/** -e with extstore: how long a graceful stop waits for buffered values to reach the disk. */
const EXTSTORE_DRAIN_MS = 10_000;

/** A startup failure with memcached's exit code. */
class StartupError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}

/** Startup failure: memcached prints a line and exits non-zero (a daemon child tells its parent too). */
function fail(message: string, code: number): void {
  process.stderr.write(`${SERVER_NAME}: ${message}\n`);
  process.exitCode = code;
  reportStartup({ ready: false, exitCode: code, message });
}

export function main(argv: string[]): void {
  keepYoungGenerationSmall();
  const parsed = parseCommandLine(argv);
  if (parsed.kind === 'exit') {
    if (parsed.stdout) process.stdout.write(parsed.stdout);
    if (parsed.stderr) process.stderr.write(parsed.stderr);
    process.exitCode = parsed.code;
    return;
  }
  // A daemon child's parent has printed them already.
  const daemonChild = process.env[STARTUP_FD_ENV] !== undefined;
  if (!daemonChild) for (const w of parsed.warnings) process.stderr.write(w.endsWith('\n') ? w : w + '\n');
  const settings = parsed.settings;
  // Before anything uses libuv's thread pool: it is sized once, on first use.
  applyExtstoreThreads(settings);
  // -k and -o tcp_fastopen need the native addon: refuse them now if it is missing.
  const platformError = checkPlatform(settings);
  if (platformError !== null) return fail(platformError, EX_USAGE);

  if (settings.maximizeCoreFile) {
    const err = ensureCoreDumps();
    if (err) return fail(err.message, err.exitCode);
  }
  if (settings.daemonize) {
    // The child starts over without -d: it reads the certificates as the user starting it,
    // switches user, listens, and says when it is ready or why it failed.
    const r = daemonize(argv, settings);
    if (!('pid' in r)) return fail(r.message, r.exitCode);
    void r.outcome.then((outcome) => {
      if (outcome.ready) {
        process.exitCode = 0;
        return;
      }
      fail(outcome.message, outcome.exitCode);
    });
    return;
  }
  // memcached reads the TLS certificates and key before it switches user (-u).
  let tlsMaterial: TlsMaterial | undefined;
  if (tlsInEffect(settings)) {
    try {
      tlsMaterial = loadTlsMaterial(settings);
    } catch (e) {
      if (e instanceof TlsConfigError) return fail(e.message, e.exitCode);
      throw e;
    }
  }
  const privErr = dropPrivileges(settings);
  if (privErr) return fail(privErr.message, privErr.exitCode);
  run(settings, tlsMaterial).catch((e: unknown) => {
    if (e instanceof StartupError || e instanceof TlsConfigError || e instanceof ExtstoreInitError || e instanceof MemoryFileError) {
      return fail(e.message, e.exitCode);
    }
    fail(e instanceof Error ? e.message : String(e), EX_OSERR);
  });
}

/** Start everything; resolves once listening. Exported for in-process tests. */
export async function run(settings: Settings, tlsMaterial?: TlsMaterial): Promise<{ network: NetworkHandle; stop: () => Promise<void> }> {
  // -t N: how many threads serve (threads.ts). With more than one, this thread serves none and
  // runs the background work; every thread counts in its own row of one stats table.
  const plan = servingThreadPlan(settings);
  const serves = plan.threads === 1;
  const yieldPlan = loopYieldPlan(settings, plan.threads);
  const rows = threadRows(plan.threads);
  const stats = statsForThreads(rows);
  const log = (level: number, msg: string): void => {
    if (settings.verbose >= level) process.stderr.write(msg.endsWith('\n') ? msg : msg + '\n');
  };
  // -e: the store lives in a memory file, maybe holding the store a graceful stop saved.
  const memoryFile = settings.memoryFile === null ? null : openMemoryFile(settings, log);
  const newEngine = (): Engine => {
    // The clock of a restored store continues the saved one (the time down counts against TTLs).
    const resumeFrom = memoryFile?.restored?.processStartedUnix ?? null;
    // -o debug_commands: memcached-debug's clock, which `debugtime` moves.
    const clock = settings.debugCommands ? new DebugClock(null, resumeFrom) : new Clock(null, resumeFrom);
    const tier = (memoryFile?.restored?.tier ?? null) as ExtstoreSnapshot | null;
    const made = new Engine(settings, stats, clock, null, memoryFile, tier);
    try {
      memoryFile?.finish();
    } catch (e) {
      made.stop();
      throw e;
    }
    return made;
  };
  // Item memory may point into the flash tier: without its saved page table, nothing is kept.
  if (memoryFile?.restored != null && settings.extPaths.length > 0 && memoryFile.restored.tier === null) {
    memoryFile.discard('the flash tier was not saved with the store (its disk did not finish writing)');
  }
  let engine: Engine;
  try {
    engine = newEngine();
  } catch (e) {
    // Whatever stops a restore (a buffer's size or checksum, the flash tier's page table)
    // leaves a clean start; a failure of a clean start is the startup's.
    if (memoryFile?.restored == null) throw e;
    memoryFile.discard(e instanceof MemoryFileMismatch ? e.message : `the saved store cannot be used (${e instanceof Error ? e.message : String(e)})`);
    engine = newEngine();
  }
  const restored = memoryFile?.restored ?? null;
  if (restored !== null) {
    log(1, `[restart] restored ${engine.items.currItems} items from ${settings.memoryFile} (saved by ${restored.version}, down ${restored.downSeconds} s)`);
  }
  if (settings.verbose > 1) logSlabClasses(engine, log);
  // memcached reads its auth files after dropping privileges, as here.
  const authInit = initAuth(settings);
  if (!authInit.ok) throw new StartupError(authInit.message, authInit.exitCode);
  for (const w of authInit.warnings) log(1, w);
  // Huge pages for the arena and hash table, before they are touched.
  const advice = adviseHugePages(engine.memoryList());
  log(advice.level, advice.text);
  // -k: lock each slab page in RAM as it is taken (before any item is stored).
  for (const line of lockMemory(settings, engine.slabs, log)) log(line.level, line.text);
  // -L: a slab page for every class now, as memcached's slabs_preallocate (and its message).
  if (settings.largePages && restored === null && !engine.slabs.preallocate()) {
    throw new StartupError('Error while preallocating slab memory!\nIf using -L or other prealloc options, max memory must be ' +
      `at least ${engine.slabs.largestClass} megabytes.`, 1);
  }
  // Extstore: all of -m goes to the global page pool now (memcached's slabs_prefill_global;
  // the page balancing of a flash-backed cache works from that pool). Memory stays untouched
  // until a class takes a page. A restored store has its own pool.
  if (settings.extPaths.length > 0 && restored === null) engine.slabs.prefillGlobal();

  let network: NetworkHandle | null = null;
  let metrics: MetricsEndpoint | null = null;
  let threads: ServingThreads | null = null;
  let dealTurn = 0;
  let stopping = false;
  const stop = async (graceful: boolean): Promise<void> => {
    if (stopping) return;
    stopping = true;
    if (graceful) {
      log(0, 'Gracefully stopping');
      await Promise.all([network?.gracefulStop(), threads?.stop(true)]);
    } else {
      await Promise.all([network?.close(), threads?.stop(false)]);
    }
    await metrics?.close();
    // -e with extstore: every buffered value goes to disk first; the page table is saved too.
    const tier = graceful && memoryFile !== null && engine.storage !== null
      ? await engine.storage.drainForRestart(EXTSTORE_DRAIN_MS) : null;
    engine.stop();
    // -e: a graceful stop saves the store for the next start (memcached's restart_mmap_close).
    if (memoryFile !== null) {
      if (graceful && engine.storage !== null && tier === null) {
        log(0, `[restart] the flash tier did not finish writing within ${EXTSTORE_DRAIN_MS} ms; the next start will be clean`);
      } else if (graceful) {
        try {
          const saved = memoryFile.save(engine.clock.processStartedUnix, tier);
          log(1, `[restart] saved the store to ${memoryFile.path} (${saved.bytes} bytes copied, ${Math.round(saved.ms)} ms)`);
        } catch (e) {
          log(0, `[restart] failed to save metadata: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      memoryFile.close();
    }
    if (settings.pidFile) removePidFile(settings.pidFile);
  };

  // Connection ids are unique across serving threads (memcached's are file descriptors).
  const connectionIds = new Int32Array(new SharedArrayBuffer(4));
  // -s with several threads: connections handed to another thread count against -c meanwhile.
  const slotsInTransit = new Int32Array(new SharedArrayBuffer(4));
  /** refresh_certs and SIGHUP: reload here, then every serving thread takes the new material. */
  const reloadCertificates = (): string | null => {
    if (network === null) return TLS_NOT_ENABLED;
    const error = network.reloadCertificates();
    const share = network.tlsShare();
    if (error === null && threads !== null && share !== null) threads.broadcastTls({ material: share.material });
    return error;
  };
  const statsContext: StatsContext = {
    engine,
    startedUnixSeconds: engine.clock.processStartedUnix,
    connections: () => (threads === null ? network?.connections() ?? [] : [...(network?.connections() ?? []), ...threads.remoteConnections()]),
    acceptingConnections: () => network?.acceptingConnections() ?? false,
  };
  const hooks: SessionHooks = {
    stats: statsContext,
    auth: authInit.auth,
    shutdown: (graceful) => {
      setImmediate(() => void stop(graceful).then(() => process.exit(0)));
    },
    // null is OK: not `network?.reloadCertificates() ?? ...`, which would turn OK into an error.
    refreshCerts: () => reloadCertificates(),
    // Runtime tuning changed settings: the worker threads take them.
    changed: () => threads?.broadcastSettings(),
  };
  const factory: SessionFactory = {
    create(conn: ConnectionInfo, output: Output): ProtocolSession {
      const protocol = (conn as NetConnectionInfo).protocol ?? settings.bindProtocol;
      return createSession(engine, output, conn, hooks, settings, protocol);
    },
  };

  engine.start();
  // The pid file exists before any listener accepts (systemd's PIDFile= and scripts that wait
  // for the port rely on it). memcached binds, writes the file, then accepts; Node binds and
  // accepts in one call, so the file comes first and is put back as it was if startup fails.
  const pidFile = settings.pidFile ? claimPidFile(settings.pidFile) : null;
  // Signals are handled from before the port answers, as in memcached (which installs its
  // handlers before binding): a SIGTERM sent as soon as the port answers stops cleanly.
  const onSignal = (graceful: boolean) => (): void => {
    void stop(graceful).then(() => process.exit(0));
  };
  process.once('SIGINT', onSignal(false));
  process.once('SIGTERM', onSignal(false));
  process.once('SIGUSR1', onSignal(true));
  process.on('SIGHUP', () => {
    // memcached reloads the -Y auth file on SIGHUP (keeping the old table if that fails).
    authInit.auth?.authFile?.load();
    // memcached-ts also reloads the TLS certificates (memcached 1.6.18 only has refresh_certs).
    if (settings.tlsEnabled && network !== null) {
      const error = reloadCertificates();
      if (error !== null) log(0, `SIGHUP: ${error}; keeping the previous certificates`);
    }
  });
  // Compile the request paths before the listeners take clients (src/protocol/warmup.ts), and
  // -o loop_yield (threads.ts): this thread as every other when it serves.
  if (serves) beforeListening(settings, () => statsForThreads(rows), yieldPlan.on, log);
  // -o metrics_listen: time commands from the first connection on, on every thread (the flag
  // is in the table threads share).
  if (settings.metricsListen !== null) commandLatency.enabled = true;
  if (yieldPlan.line !== null) log(1, yieldPlan.line);
  try {
    // The metrics endpoint answers before the memcached port does: whoever waits for the port
    // (a test, a deploy script) can scrape at once.
    if (settings.metricsListen !== null) {
      const { host, port } = settings.metricsListen;
      try {
        // Loaded only when asked for: prom-client and its dependencies cost memory otherwise.
        const { startMetricsEndpoint } = await import('../metrics/prometheus');
        metrics = await startMetricsEndpoint(settings.metricsListen, statsContext);
      } catch (e) {
        engine.stop();
        throw new StartupError(`failed to listen on -o metrics_listen=${host ?? ''}:${port}: ${e instanceof Error ? e.message : String(e)}`, EX_OSERR);
      }
      log(1, `metrics: http://${host ?? '*'}:${metrics.address.port}/metrics`);
    }
    network = await startNetwork(settings, stats, factory, log, {
      clockSeconds: () => engine.clock.now,
      connectionEvents: connectionEventsFor(engine.logger),
      tlsMaterial,
      bindFirst: !serves,
      tcpAccept: settings.tcpAccept,
      connectionIds,
      slotsInTransit,
      // Several threads: thread 0 accepts on the unix socket, and on TCP with
      // -o tcp_accept=dispatch, and deals the connections out in turn, as memcached's
      // dispatcher (one that comes before the workers are up is served here).
      dealTo: !serves ? () => {
        const started = threads;
        if (started === null) return null;
        dealTurn = dealTurn % plan.threads + 1;
        const to = dealTurn;
        return (fd: number, listener: number, listenerId: number) => started.sendConnection(to, fd, listener, listenerId);
      } : undefined,
    });
    if (plan.reason !== null) log(plan.threads === 1 && settings.socketPath !== null ? 1 : 0, plan.reason);
    if (!serves) {
      threads = new ServingThreads(engine, settings, hooks, log, connectionIds, slotsInTransit);
      try {
        await threads.start(plan.threads, network, yieldPlan.on);
        const started = threads;
        network.onTicketKeys((keys) => started.broadcastTls({ keys }));
        // The workers are up: this thread listens on TCP and deals the connections out (or,
        // with -o tcp_accept=reuseport, they listen and its sockets stay bound), and leaves UDP
        // to them.
        await network.handOver();
      } catch (e) {
        await network.close();
        engine.stop();
        throw new StartupError(e instanceof Error ? e.message : String(e), EX_OSERR);
      }
      log(1, `serving on ${plan.threads} threads`);
    }
    writePortFile(settings, network, log);
  } catch (e) {
    await metrics?.close();
    pidFile?.release();
    throw e;
  }
  for (const line of platformStartupLines(settings)) log(line.level, line.text);
  // Once started, give back the pages of Node's own code that only startup ran (src/platform/trim.ts).
  const addon = nativeAddon();
  if (addon !== null) {
    setTimeout(() => {
      const trimmed = trimFileMappings(addon);
      // The compiler's C heap zones of the warm-up (every thread's), freed but kept by glibc.
      addon.trimMalloc();
      if (trimmed !== null) log(1, `resident memory: dropped ${(trimmed.bytes / 1048576).toFixed(1)} MiB of read-only file mappings (${trimmed.mappings} mappings) after startup`);
    }, TRIM_AFTER_START_MS).unref();
  }
  log(1, `${SERVER_NAME} ${SERVER_VERSION} (memcached ${MEMCACHED_COMPAT_VERSION} protocol) started, pid ${process.pid}`);
  reportStartup({ ready: true });

  return { network, stop: () => stop(false) };
}

/** -e: open the memory file; its metadata decides between a restore and a clean start. */
function openMemoryFile(settings: Settings, log: (level: number, msg: string) => void): MemoryFile {
  const addon = nativeAddon();
  useNativeCrc32c(addon); // the buffers' checksums
  const file = MemoryFile.open(settings.memoryFile!, {
    mapper: addon,
    shape: storeShape(settings),
    version: SERVER_VERSION,
    log,
  });
  if (addon === null) {
    log(0, `-e ${settings.memoryFile}: the native addon is not built: the store is copied to the file at a graceful stop and back at start, not mapped from it`);
  }
  // Pages of a tmpfs file are taken as the store first touches them: a full filesystem then
  // kills the process (SIGBUS), as it would memcached. Say so at startup when it could happen.
  try {
    const fsStats = fs.statfsSync(settings.memoryFile!);
    const free = fsStats.bavail * fsStats.bsize;
    if (free < settings.memoryLimitBytes) {
      log(0, `-e ${settings.memoryFile}: its filesystem has ${Math.floor(free / 1048576)} MiB free, less than -m ` +
        `(${Math.floor(settings.memoryLimitBytes / 1048576)} MiB): the server is killed (SIGBUS) if the store fills it`);
    }
  } catch {
    // statfs unavailable: nothing to say
  }
  return file;
}

/** The settings a saved store must match to be restored (the ones memcached checks). */
function storeShape(settings: Settings): ShapeSettings {
  return {
    maxbytes: settings.memoryLimitBytes,
    chunk_size: settings.chunkSizeBytes,
    growth_factor: settings.growthFactor,
    item_size_max: settings.itemSizeMaxBytes,
    slab_chunk_size_max: settings.slabChunkMaxBytes,
    slab_page_size: settings.slabPageBytes,
    use_cas: settings.casEnabled,
    // The flash tier's layout: page numbers in saved items mean the same pages only with it.
    extstore: settings.extPaths.length === 0 ? 'none'
      : `${settings.extPageBytes}/${settings.extWbufBytes}/${settings.extPaths.map((p) => `${p.path}:${p.sizeBytes}:${p.bucket ?? ''}`).join(',')}`,
  };
}

/** memcached -vv prints its slab classes at startup. */
function logSlabClasses(engine: Engine, log: (level: number, msg: string) => void): void {
  const s = engine.slabs;
  for (let cls = 1; cls <= s.largestClass; cls++) {
    log(2, `slab class ${String(cls).padStart(3)}: chunk size ${String(s.classSize[cls]).padStart(9)} perslab ${String(s.perPage[cls]).padStart(7)}`);
  }
}

/**
 * memcached's MEMCACHED_PORT_FILENAME: once the TCP and UDP sockets are bound (not with -s),
 * one line per socket, "TCP INET: <port>", "UDP INET6: <port>", written to <file>.lck and then
 * renamed to <file>. memcached's test suite finds ephemeral ports (-p -1) this way.
 */
function writePortFile(settings: Settings, network: NetworkHandle, log: (level: number, msg: string) => void): void {
  const file = process.env.MEMCACHED_PORT_FILENAME;
  if (file === undefined || settings.socketPath !== null) return;
  const { tcp, udp } = network.addresses();
  const line = (kind: string, a: { family: string | number; port: number }): string =>
    `${kind} ${a.family === 'IPv6' || a.family === 6 ? 'INET6' : 'INET'}: ${a.port}\n`;
  const text = [...tcp.map((a) => line('TCP', a)), ...udp.map((a) => line('UDP', a))].join('');
  try {
    fs.writeFileSync(`${file}.lck`, text, { flag: 'a' });
    fs.renameSync(`${file}.lck`, file);
  } catch (e) {
    log(0, `Failed to open "${file}.lck": ${e instanceof Error ? e.message : String(e)}`);
  }
}
