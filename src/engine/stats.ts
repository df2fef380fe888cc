/**
 * `stats` groups rendered as (name, value) pairs with memcached 1.6's names and order, so
 * every protocol (text STAT lines, binary stat packets, Prometheus) reads the same source.
 */
import { cpuUsage } from 'node:process';
import { COLD_LRU, HOT_LRU, TEMP_LRU, WARM_LRU } from '../store/items';
import { processScheduling } from '../platform/sched';
import { MEMCACHED_COMPAT_VERSION } from '../version';
import type { Engine } from './engine';

export type StatSink = (name: string, value: string | number) => void;

/** A connection as `stats conns` lists it (the network layer's connections are these). */
export interface ConnectionStat {
  readonly id: number;
  readonly transport: string;
  readonly peerName: string;
  readonly localName?: string | null;
  readonly stateName: string;
  readonly lastCommandTime: number;
}

/** What the stats renderer needs from outside the engine (the network layer). */
export interface StatsContext {
  engine: Engine;
  startedUnixSeconds: number;
  /** Listening sockets and client connections, as `stats conns` lists them. */
  connections(): Iterable<ConnectionStat>;
  acceptingConnections(): boolean;
}

/** memcached's item_hdr (page version, offset, page id, CAS?): the value of an item on disk. */
const EXTSTORE_HEADER_BYTES = 12;

function fmtFloat(v: number, digits: number): string {
  return v.toFixed(digits);
}

export function generalStats(ctx: StatsContext, out: StatSink): void {
  const e = ctx.engine;
  const s = e.stats.totals();
  const it = e.items;
  const set = e.settings;
  const usage = cpuUsage();
  let c = 0;
  const sumClass = (name: keyof typeof it.counters): number => {
    c = it.classSum(name);
    return c;
  };
  out('pid', process.pid);
  out('uptime', e.clock.now - 62 + 2);
  out('time', e.clock.unixNow());
  out('version', MEMCACHED_COMPAT_VERSION);
  out('libevent', 'none');
  out('pointer_size', 64);
  out('rusage_user', fmtFloat(usage.user / 1e6, 6));
  out('rusage_system', fmtFloat(usage.system / 1e6, 6));
  out('max_connections', set.connectionsMax);
  out('curr_connections', s.curr_connections);
  out('total_connections', s.total_connections);
  out('rejected_connections', s.rejected_connections);
  out('connection_structures', s.connection_structures);
  out('response_obj_oom', s.response_obj_oom);
  out('response_obj_count', 0);
  out('response_obj_bytes', 0);
  out('read_buf_count', s.curr_connections);
  out('read_buf_bytes', s.curr_connections * set.readBufferBytes);
  out('read_buf_bytes_free', 0);
  out('read_buf_oom', 0);
  out('reserved_fds', 20);
  for (const k of ['cmd_get', 'cmd_set', 'cmd_flush', 'cmd_touch', 'cmd_meta', 'get_hits', 'get_misses',
    'get_expired', 'get_flushed'] as const) {
    out(k, s[k]);
  }
  if (e.storage !== null) {
    for (const k of ['get_extstore', 'get_aborted_extstore', 'get_oom_extstore', 'recache_from_extstore',
      'miss_from_extstore', 'badcrc_from_extstore'] as const) {
      out(k, s[k]);
    }
  }
  for (const k of ['delete_misses', 'delete_hits', 'incr_misses', 'incr_hits', 'decr_misses',
    'decr_hits', 'cas_misses', 'cas_hits', 'cas_badval', 'touch_hits', 'touch_misses', 'store_too_large',
    'store_no_memory', 'auth_cmds', 'auth_errors'] as const) {
    out(k, s[k]);
  }
  // memcached prints idle_kicks only when idle_timeout is set.
  if (set.idleTimeoutSeconds > 0) out('idle_kicks', s.idle_kicks);
  out('bytes_read', s.bytes_read);
  out('bytes_written', s.bytes_written);
  out('limit_maxbytes', set.memoryLimitBytes);
  out('accepting_conns', ctx.acceptingConnections() ? 1 : 0);
  out('listen_disabled_num', s.listen_disabled_num);
  out('time_in_listen_disabled_us', 0);
  out('threads', set.threadCount);
  out('conn_yields', s.conn_yields);
  out('hash_power_level', it.index.hashPower);
  out('hash_bytes', it.index.bytes);
  out('hash_is_expanding', it.index.expanding ? 1 : 0);
  if (set.slabReassign) {
    const mv = e.mover;
    out('slab_reassign_rescues', mv.rescues);
    out('slab_reassign_chunk_rescues', mv.chunkRescues);
    out('slab_reassign_inline_reclaim', mv.inlineReclaim);
    out('slab_reassign_busy_items', mv.busyItems);
    out('slab_reassign_busy_deletes', mv.busyDeletes);
    out('slab_reassign_busy_nomem', mv.busyNomem);
    out('slab_reassign_last_busy_status', mv.lastBusyStatus);
    out('slab_reassign_running', mv.running ? 1 : 0);
    out('slabs_moved', mv.slabsMoved);
  }
  if (e.crawler.enabled) {
    out('lru_crawler_running', e.crawler.running ? 1 : 0);
    out('lru_crawler_starts', e.crawler.starts);
  }
  if (set.lruMaintainerThread) out('lru_maintainer_juggles', e.maintainerJuggles);
  out('malloc_fails', 0);
  const lc = e.logger.counters;
  out('log_worker_dropped', lc.workerDropped);
  out('log_worker_written', lc.workerWritten);
  out('log_watcher_skipped', lc.watcherSkipped);
  out('log_watcher_sent', lc.watcherSent);
  out('log_watchers', e.logger.watcherCount);
  if (e.storage !== null) storageStats(e, out);
  if (set.tlsEnabled) {
    // memcached 1.6.45's lines; ssl_resumed_sessions is memcached-ts's (tickets resume too).
    if (set.tlsSessionCache) out('ssl_new_sessions', s.ssl_new_sessions);
    out('ssl_resumed_sessions', s.ssl_resumed_sessions);
    out('ssl_handshake_errors', s.ssl_handshake_errors);
    out('ssl_proto_errors', s.ssl_proto_errors);
    out('time_since_server_cert_refresh', e.clock.now - s.tlsCertsLoadedSeconds);
  }
  out('unexpected_napi_ids', 0);
  out('round_robin_fallback', 0);
  out('bytes', it.currBytes);
  out('curr_items', it.currItems);
  out('total_items', it.totalItems);
  out('slab_global_page_pool', e.slabs.globalPoolPages);
  out('expired_unfetched', sumClass('expired_unfetched'));
  out('evicted_unfetched', sumClass('evicted_unfetched'));
  // memcached prints the segmented LRU's counters only while its maintainer runs.
  const maintainer = set.lruMaintainerThread;
  if (maintainer) out('evicted_active', sumClass('evicted_active'));
  out('evictions', sumClass('evicted'));
  out('reclaimed', sumClass('reclaimed'));
  out('crawler_reclaimed', sumClass('crawler_reclaimed'));
  out('crawler_items_checked', sumClass('crawler_items_checked'));
  out('lrutail_reflocked', sumClass('lrutail_reflocked'));
  if (maintainer) {
    out('moves_to_cold', sumClass('moves_to_cold'));
    out('moves_to_warm', sumClass('moves_to_warm'));
    out('moves_within_lru', sumClass('moves_within_lru'));
    out('direct_reclaims', sumClass('direct_reclaims'));
    out('lru_bumps_dropped', 0);
  }
}

const yesNo = (b: boolean): string => (b ? 'yes' : 'no');

export function settingsStats(ctx: StatsContext, out: StatSink): void {
  const s = ctx.engine.settings;
  out('maxbytes', s.memoryLimitBytes);
  out('maxconns', s.connectionsMax);
  out('tcpport', s.tcpPort);
  out('udpport', s.udpPort);
  out('inter', s.listenAddresses.length ? s.listenAddresses.join(',') : 'NULL');
  out('verbosity', s.verbose);
  out('oldest', ctx.engine.items.oldestLive);
  out('evictions', s.evictToFree ? 'on' : 'off');
  out('domain_socket', s.socketPath ?? 'NULL');
  out('umask', s.socketAccessMask.toString(8));
  out('shutdown_command', yesNo(s.shutdownEnabled));
  out('growth_factor', fmtFloat(s.growthFactor, 2));
  out('chunk_size', s.chunkSizeBytes);
  out('num_threads', s.threadCount);
  out('num_threads_per_udp', s.threadCount);
  out('stat_key_prefix', s.prefixDelimiter);
  out('detail_enabled', yesNo(ctx.engine.detail.enabled));
  out('reqs_per_event', s.requestsPerEvent);
  out('cas_enabled', yesNo(s.casEnabled));
  out('tcp_backlog', s.backlog);
  out('binding_protocol', s.bindProtocol === 'auto' ? 'auto-negotiate' : s.bindProtocol);
  out('auth_enabled_sasl', yesNo(s.saslEnabled));
  out('auth_enabled_ascii', s.authFile ?? 'no');
  out('item_size_max', s.itemSizeMaxBytes);
  out('maxconns_fast', yesNo(s.maxconnsFast));
  out('hashpower_init', s.hashPowerInit === 16 ? 0 : s.hashPowerInit);
  out('slab_reassign', yesNo(s.slabReassign));
  out('slab_automove', s.slabAutomove);
  out('slab_automove_ratio', fmtFloat(s.slabAutomoveRatio, 2));
  out('slab_automove_window', s.slabAutomoveWindowSamples);
  out('slab_chunk_max', s.slabChunkMaxBytes);
  out('lru_crawler', yesNo(ctx.engine.crawler.enabled));
  out('lru_crawler_sleep', s.lruCrawlerSleepMicros);
  out('lru_crawler_tocrawl', s.lruCrawlerToCrawl);
  out('tail_repair_time', s.tailRepairTimeSeconds);
  out('flush_enabled', yesNo(s.flushEnabled));
  out('dump_enabled', yesNo(s.dumpEnabled));
  out('hash_algorithm', 'murmur3');
  out('lru_maintainer_thread', yesNo(s.lruMaintainerThread));
  out('lru_segmented', yesNo(s.lruSegmented));
  out('hot_lru_pct', s.hotLruPct);
  out('warm_lru_pct', s.warmLruPct);
  out('hot_max_factor', fmtFloat(s.hotMaxFactor, 2));
  out('warm_max_factor', fmtFloat(s.warmMaxFactor, 2));
  out('temp_lru', yesNo(s.tempLru));
  out('temporary_ttl', s.temporaryTtlSeconds);
  out('idle_timeout', s.idleTimeoutSeconds);
  out('watcher_logbuf_size', s.watcherLogbufBytes);
  out('worker_logbuf_size', s.workerLogbufBytes);
  out('read_buf_mem_limit', s.readBufMemLimitBytes);
  out('track_sizes', yesNo(s.trackSizes));
  out('inline_ascii_response', yesNo(s.inlineAsciiResponse));
  // memcached (built with extstore, as Debian's is) prints these even when extstore is off.
  out('ext_item_size', s.extItemSizeBytes);
  out('ext_item_age', s.extItemAgeSeconds);
  out('ext_low_ttl', s.extLowTtlSeconds);
  out('ext_recache_rate', s.extRecacheRate);
  out('ext_wbuf_size', s.extWbufBytes);
  out('ext_compact_under', s.extCompactUnderPages);
  out('ext_drop_under', s.extDropUnderPages);
  out('ext_max_sleep', s.extMaxSleepMicros);
  out('ext_max_frag', fmtFloat(s.extMaxFrag, 2));
  out('slab_automove_freeratio', fmtFloat(s.slabAutomoveFreeRatio, 3));
  out('ext_drop_unread', yesNo(s.extDropUnread));
  out('ssl_enabled', yesNo(s.tlsEnabled));
  out('ssl_chain_cert', s.tlsChainCertPath ?? '(null)');
  out('ssl_key', s.tlsKeyPath ?? '(null)');
  out('ssl_verify_mode', TLS_VERIFY_FLAGS[s.tlsVerifyMode]);
  out('ssl_keyformat', s.tlsKeyFormat);
  out('ssl_ciphers', s.tlsCiphers ?? 'NULL');
  out('ssl_ca_cert', s.tlsCaCertPath ?? 'NULL');
  out('ssl_wbuf_size', s.tlsWriteBufferBytes);
  out('ssl_session_cache', yesNo(s.tlsSessionCache));
  out('ssl_kernel_tls', 'no');
  out('ssl_min_version', s.tlsMinVersion);
  out('num_napi_ids', 0);
  out('memory_file', s.memoryFile ?? '(null)');
  // 4: client flags are 32 bits (memcached built without --enable-large-client-flags)
  out('client_flags_size', 4);
  // memcached-ts's own settings (memcached has no such names): the CPU scheduling policy the
  // process was launched with (chrt, systemd), read live, and -o tcp_fastopen.
  const sched = processScheduling();
  out('sched_policy', sched.policy);
  out('sched_priority', sched.priority);
  out('tcp_fastopen', s.tcpFastOpenQueue);
}

/**
 * memcached prints ssl_verify_mode as OpenSSL's flags: SSL_VERIFY_PEER 1,
 * FAIL_IF_NO_PEER_CERT 2, CLIENT_ONCE 4; so modes 0-3 print 0, 1, 3, 7.
 */
const TLS_VERIFY_FLAGS = [0, 1, 3, 7] as const;

export function itemsStats(ctx: StatsContext, out: StatSink): void {
  const e = ctx.engine;
  const it = e.items;
  const now = e.clock.now;
  const maintainer = e.settings.lruMaintainerThread;
  const names = ['evicted', 'evicted_nonzero', 'evicted_time', 'outofmemory', 'tailrepairs', 'reclaimed',
    'expired_unfetched', 'evicted_unfetched', 'evicted_active', 'crawler_reclaimed', 'crawler_items_checked',
    'lrutail_reflocked', 'moves_to_cold', 'moves_to_warm', 'moves_within_lru', 'direct_reclaims'] as const;
  const maintainerOnly = new Set<string>(['evicted_active', 'moves_to_cold', 'moves_to_warm', 'moves_within_lru', 'direct_reclaims']);
  // mem_requested is memcached's ITEM_ntotal summed per class (its header, key, CRLF, flags
  // and CAS sizes), not this store's own item sizes.
  const requested = new Float64Array(e.slabs.largestClass + 1);
  e.walkItems((ref, cls) => {
    requested[cls] += it.isHdr(ref)
      ? it.memcachedItemTotal(it.nkey(ref), 0, it.flags(ref)) - 2 + EXTSTORE_HEADER_BYTES
      : it.memcachedItemTotal(it.nkey(ref), it.nbytes(ref), it.flags(ref));
  });
  for (let cls = 1; cls <= e.slabs.largestClass; cls++) {
    const b = cls << 2;
    const number = it.lruCount[b] + it.lruCount[b + 1] + it.lruCount[b + 2] + it.lruCount[b + 3];
    if (number === 0) continue;
    const p = `items:${cls}:`;
    const age = (seg: number): number => {
      const tail = it.lruTail[b | seg];
      return tail !== 0 ? now - it.atime(tail) : 0;
    };
    out(p + 'number', number);
    if (maintainer) {
      out(p + 'number_hot', it.lruCount[b | HOT_LRU]);
      out(p + 'number_warm', it.lruCount[b | WARM_LRU]);
      out(p + 'number_cold', it.lruCount[b | COLD_LRU]);
      if (e.settings.tempLru) out(p + 'number_temp', it.lruCount[b | TEMP_LRU]);
      out(p + 'age_hot', age(HOT_LRU));
      out(p + 'age_warm', age(WARM_LRU));
    }
    out(p + 'age', age(COLD_LRU));
    out(p + 'mem_requested', requested[cls]);
    for (const n of names) if (maintainer || !maintainerOnly.has(n)) out(p + n, it.classTotal(n, cls));
    if (maintainer) {
      out(p + 'hits_to_hot', it.lruHitsTotal(b | HOT_LRU));
      out(p + 'hits_to_warm', it.lruHitsTotal(b | WARM_LRU));
      out(p + 'hits_to_cold', it.lruHitsTotal(b | COLD_LRU));
      out(p + 'hits_to_temp', it.lruHitsTotal(b | TEMP_LRU));
    }
  }
}

export function slabsStats(ctx: StatsContext, out: StatSink): void {
  const e = ctx.engine;
  const sl = e.slabs;
  const it = e.items;
  let active = 0;
  for (let cls = 1; cls <= sl.largestClass; cls++) {
    if (sl.pagesPerClass[cls] === 0) continue;
    active++;
    const p = `${cls}:`;
    const total = sl.totalChunks(cls);
    out(p + 'chunk_size', sl.classSize[cls]);
    out(p + 'chunks_per_page', sl.perPage[cls]);
    out(p + 'total_pages', sl.pagesPerClass[cls]);
    out(p + 'total_chunks', total);
    out(p + 'used_chunks', sl.usedChunks[cls]);
    out(p + 'free_chunks', total - sl.usedChunks[cls]);
    // memcached 1.6.45 carves whole pages and prints this stat as 0.
    out(p + 'free_chunks_end', 0);
    for (const n of ['get_hits', 'cmd_set', 'delete_hits', 'incr_hits', 'decr_hits', 'cas_hits', 'cas_badval',
      'touch_hits'] as const) {
      out(p + n, it.classTotal(n, cls));
    }
  }
  out('active_slabs', active);
  out('total_malloced', sl.mallocedBytes);
}

/** `stats sizes`: item counts by size, in 32-byte buckets (computed on demand by a walk). */
export function sizesStats(ctx: StatsContext, out: StatSink): void {
  const e = ctx.engine;
  if (!e.settings.trackSizes) {
    out('sizes_status', 'disabled');
    return;
  }
  const buckets = new Map<number, number>();
  e.walkItems((ref) => {
    const size = e.items.itemBytes(ref);
    const bucket = Math.ceil(size / 32) * 32;
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + 1);
  });
  for (const k of [...buckets.keys()].sort((a, b) => a - b)) out(String(k), buckets.get(k)!);
}

export function connsStats(ctx: StatsContext, out: StatSink): void {
  const now = ctx.engine.clock.now;
  // In id order, as memcached lists by descriptor: with -t N the threads' lists are joined, and
  // clients read the last entry as their own newest connection (t/watcher_connid.t does).
  for (const c of [...ctx.connections()].sort((a, b) => a.id - b.id)) {
    if (c.transport === 'udp') out(`${c.id}:UDP`, 'UDP');
    out(`${c.id}:addr`, c.peerName);
    if (c.localName) out(`${c.id}:listen_addr`, c.localName);
    out(`${c.id}:state`, c.stateName);
    out(`${c.id}:secs_since_last_cmd`, Math.max(0, now - c.lastCommandTime));
  }
}

/**
 * The extstore block of `stats` (memcached's storage_stats), then our fault counters, which
 * memcached does not have.
 */
function storageStats(e: Engine, out: StatSink): void {
  const storage = e.storage;
  if (storage === null) return;
  const sc = storage.counters;
  const ext = storage.ext;
  const c = ext.counters;
  out('extstore_memory_pressure', fmtFloat(memoryPressure(e), 2));
  out('extstore_compact_lost', sc.extstore_compact_lost);
  out('extstore_compact_rescues', sc.extstore_compact_rescues);
  out('extstore_compact_resc_cold', sc.extstore_compact_resc_cold);
  out('extstore_compact_resc_old', sc.extstore_compact_resc_old);
  out('extstore_compact_skipped', sc.extstore_compact_skipped);
  out('extstore_page_allocs', c.page_allocs);
  out('extstore_page_evictions', c.page_evictions);
  out('extstore_page_reclaims', c.page_reclaims);
  const pagesUsed = ext.pageCount - ext.pagesFree;
  out('extstore_pages_free', ext.pagesFree);
  out('extstore_pages_used', pagesUsed);
  out('extstore_objects_evicted', c.objects_evicted);
  out('extstore_objects_read', c.objects_read);
  out('extstore_objects_written', c.objects_written);
  out('extstore_objects_used', c.objects_used);
  out('extstore_bytes_evicted', c.bytes_evicted);
  out('extstore_bytes_written', c.bytes_written);
  out('extstore_bytes_read', c.bytes_read);
  out('extstore_bytes_used', c.bytes_used);
  out('extstore_bytes_fragmented', pagesUsed * ext.pageBytes - c.bytes_used);
  out('extstore_limit_maxbytes', ext.pageCount * ext.pageBytes);
  out('extstore_io_queue', ext.ioQueue);
  out('extstore_read_errors', c.read_errors);
  out('extstore_short_reads', c.short_reads);
  out('extstore_reads_cached', c.reads_cached);
  out('extstore_write_errors', c.write_errors);
  out('extstore_write_enospc', c.write_enospc);
  out('extstore_writes_refused', c.writes_refused);
  out('extstore_files_removed', c.files_removed);
  out('extstore_files_truncated', c.files_truncated);
  out('extstore_pages_lost', c.pages_lost);
  out('extstore_objects_lost', c.objects_lost);
}

/**
 * memcached 1.6.45's extstore_memory_pressure: the share (percent) of slab pages held by
 * classes of chunks smaller than ext_item_size (whose items stay in memory), among those and
 * the pages of larger classes that hold more than 2 pages. 100 means item headers must be
 * evicted. memcached's automover computes it once a second; here it is computed when asked.
 */
function memoryPressure(e: Engine): number {
  const sl = e.slabs;
  let low = 0;
  let high = 0;
  for (let cls = 1; cls <= sl.largestClass; cls++) {
    const pages = sl.pagesPerClass[cls];
    if (sl.classSize[cls] < e.settings.extItemSizeBytes) low += pages;
    else if (pages > 2) high += pages;
  }
  return low + high === 0 ? 0 : (low / (low + high)) * 100;
}

/** `stats extstore`: memcached's per-page data (version, live bytes, bucket, free bucket). */
export function extstoreStats(ctx: StatsContext, out: StatSink): void {
  const storage = ctx.engine.storage;
  if (storage === null) return;
  storage.ext.pageData((id, version, bytes, bucket, freeBucket) => {
    out(`${id}:version`, version);
    out(`${id}:bytes`, bytes);
    out(`${id}:bucket`, bucket);
    out(`${id}:free_bucket`, freeBucket);
  });
}
