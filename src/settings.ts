/**
 * Settings: every tunable of the server in one place, with memcached 1.6's names (in comments)
 * and defaults. The CLI (src/cli/) fills this from argv; every other module only reads it.
 *
 * Units are last in names: `...Bytes`, `...Seconds`, `...Count`, `...Pct`.
 */

export type BindProtocol = 'auto' | 'ascii' | 'binary';

/** -o hash_algorithm: memcached's choices. */
export type HashAlgorithm = 'jenkins' | 'murmur3' | 'xxh3';

/**
 * One -l entry, memcached's form `[proto[<name>]:][tag[<name>]:]<host>[:<port>]`, with IPv6
 * hosts bare (`::1`, no port) or bracketed (`[::1]:11212`).
 */
export interface ListenerSpec {
  /** Address or host name to bind; null for `*` (all interfaces). */
  host: string | null;
  /** Port given with the host; it then applies to TCP and UDP alike, as in memcached. Null: -p / -U. */
  port: number | null;
  /** proto[ascii|binary|negotiating]: overrides -B for this listener; null: -B. */
  protocol: BindProtocol | null;
  /** tag[<1-8 bytes>]: tag of connections accepted here; null: untagged. */
  tag: string | null;
}

export interface Settings {
  // --- listeners
  /** -p: TCP port; 0 disables TCP. */
  tcpPort: number;
  /** -U: UDP port; 0 disables UDP (memcached 1.6 default). */
  udpPort: number;
  /** -s: unix socket path; when set, TCP and UDP are off (as in memcached). */
  socketPath: string | null;
  /** -a: unix socket access mask (octal, default 0700). */
  socketAccessMask: number;
  /** -l: interfaces to listen on; empty means all interfaces. */
  listenAddresses: string[];
  /** -l, parsed: one entry per listener (empty means all interfaces on -p / -U). */
  listeners: ListenerSpec[];
  /** -b: listen backlog. */
  backlog: number;
  /** -B: binding protocol. */
  bindProtocol: BindProtocol;

  // --- connections
  /** -c: max simultaneous connections. */
  connectionsMax: number;
  /** -R: max requests served per read event before yielding to other connections. */
  requestsPerEvent: number;
  /** -o idle_timeout: seconds before an idle client is closed; 0 = never. */
  idleTimeoutSeconds: number;
  /** -o read_buf_mem_limit etc are not implemented. Size of the per-connection static read buffer. */
  readBufferBytes: number;
  /** Unsent output above which a connection stops being read until it drains. */
  writeBacklogBytesMax: number;
  /** Longest multiget line accepted before the connection is closed (memcached grows without bound). */
  multigetLineBytesMax: number;

  // --- memory and items
  /** -m: item memory in bytes. */
  memoryLimitBytes: number;
  /** -M: return errors on memory exhaustion instead of evicting. */
  evictToFree: boolean;
  /** -I: max item size in bytes. */
  itemSizeMaxBytes: number;
  /** -n: minimum space allocated for key+value+flags (chunk size base). */
  chunkSizeBytes: number;
  /** -f: chunk size growth factor. */
  growthFactor: number;
  /** -o slab_chunk_max: largest slab chunk; bigger items are chained chunks. */
  slabChunkMaxBytes: number;
  /** Slab page size (memcached: 1 MiB, equal to the default -I). */
  slabPageBytes: number;
  /** -C: disable CAS. */
  casEnabled: boolean;
  /** -o hashpower: initial hash table size exponent. */
  hashPowerInit: number;
  /** -o no_hashexpand: false keeps the hash table at its initial size. */
  hashExpand: boolean;
  /** -o hash_algorithm (memcached 1.6 default: murmur3; no_modern: jenkins). */
  hashAlgorithm: HashAlgorithm;
  /** -L: large memory pages (not supported: fails at startup). */
  largePages: boolean;
  /** -k: lock down all paged memory. */
  lockMemory: boolean;

  // --- LRU
  /** -o lru_maintainer / no_lru_maintainer: segmented LRU on/off. */
  lruSegmented: boolean;
  /** -o lru_crawler / no_lru_crawler. */
  lruCrawler: boolean;
  /** -o lru_crawler_sleep: microseconds between crawler batches. */
  lruCrawlerSleepMicros: number;
  /** -o lru_crawler_tocrawl: max items crawled per class per run (0 = unlimited). */
  lruCrawlerToCrawl: number;
  /** -o hot_lru_pct. */
  hotLruPct: number;
  /** -o warm_lru_pct. */
  warmLruPct: number;
  /** -o hot_max_factor. */
  hotMaxFactor: number;
  /** -o warm_max_factor. */
  warmMaxFactor: number;
  /** -o temporary_ttl: items with ttl at or below go to TEMP LRU (when temp_lru is on). */
  tempLru: boolean;
  temporaryTtlSeconds: number;
  /** -o slab_reassign / slab_automove. */
  slabReassign: boolean;
  slabAutomove: number;
  /** -o slab_automove_ratio: young/old age ratio that triggers a page move (0 < r <= 1). */
  slabAutomoveRatio: number;
  /** -o slab_automove_window: samples (about one a second) the automover averages over. */
  slabAutomoveWindowSamples: number;

  // --- commands
  /** -A: enable the `shutdown` command. */
  shutdownEnabled: boolean;
  /** -F: disable flush_all. */
  flushEnabled: boolean;
  /** -X: disable stats cachedump and lru_crawler metadump. */
  dumpEnabled: boolean;
  /** -W: disable the `watch` command. */
  watchEnabled: boolean;
  /** -o no_watch is not implemented. */

  // --- process
  /** -t: worker threads requested. */
  threadCount: number;
  /** -v count (0, 1, 2, 3). */
  verbose: number;
  /** -P: pid file. */
  pidFile: string | null;
  /** -d: run as a daemon. */
  daemonize: boolean;
  /** -u: user to run as. */
  username: string | null;
  /** -r: maximize core file limit. */
  maximizeCoreFile: boolean;
  /** -D: stats prefix delimiter. */
  prefixDelimiter: string;
  /** -D also turns on per-prefix stats (`stats detail on`) from the start. */
  detailEnabled: boolean;
  /**
   * -S: SASL authentication (binary protocol only; PLAIN against the MEMCACHED_SASL_PWDB
   * file). Implies -B binary; text listeners and UDP are refused with it, as in memcached.
   */
  saslEnabled: boolean;
  /**
   * -Y: ASCII authentication file (`user:password` lines, at most 8). Implies -B ascii;
   * binary listeners and UDP are refused with it, as in memcached.
   */
  authFile: string | null;
  /** -o relaxed_privileges. */
  relaxedPrivileges: boolean;
  /** -o maxconns_fast / no_maxconns_fast. */
  maxconnsFast: boolean;
  /** -o tail_repair_time (accepted for compatibility; 0 = disabled as in memcached 1.6). */
  tailRepairTimeSeconds: number;
  /** -o watcher_logbuf_size, worker_logbuf_size (bytes). */
  watcherLogbufBytes: number;
  workerLogbufBytes: number;
  /** -o no_inline_ascii_resp, track_sizes... recorded for stats settings. */
  inlineAsciiResponse: boolean;
  trackSizes: boolean;
}

export const MIB = 1024 * 1024;

export function defaultSettings(): Settings {
  return {
    tcpPort: 11211,
    udpPort: 0,
    socketPath: null,
    socketAccessMask: 0o700,
    listenAddresses: [],
    listeners: [],
    backlog: 1024,
    bindProtocol: 'auto',

    connectionsMax: 1024,
    requestsPerEvent: 20,
    idleTimeoutSeconds: 0,
    readBufferBytes: 16 * 1024,
    writeBacklogBytesMax: 4 * MIB,
    multigetLineBytesMax: 4 * MIB,

    memoryLimitBytes: 64 * MIB,
    evictToFree: true,
    itemSizeMaxBytes: 1 * MIB,
    chunkSizeBytes: 48,
    growthFactor: 1.25,
    slabChunkMaxBytes: 512 * 1024,
    slabPageBytes: 1 * MIB,
    casEnabled: true,
    hashPowerInit: 16,
    hashExpand: true,
    hashAlgorithm: 'murmur3',
    largePages: false,
    lockMemory: false,

    lruSegmented: true,
    lruCrawler: true,
    lruCrawlerSleepMicros: 100,
    lruCrawlerToCrawl: 0,
    hotLruPct: 20,
    warmLruPct: 40,
    hotMaxFactor: 0.2,
    warmMaxFactor: 2.0,
    tempLru: false,
    temporaryTtlSeconds: 61,
    slabReassign: true,
    slabAutomove: 1,
    slabAutomoveRatio: 0.8,
    slabAutomoveWindowSamples: 30,

    shutdownEnabled: false,
    flushEnabled: true,
    dumpEnabled: true,
    watchEnabled: true,

    threadCount: 4,
    verbose: 0,
    pidFile: null,
    daemonize: false,
    username: null,
    maximizeCoreFile: false,
    prefixDelimiter: ':',
    detailEnabled: false,
    saslEnabled: false,
    authFile: null,
    relaxedPrivileges: false,
    maxconnsFast: true,
    tailRepairTimeSeconds: 0,
    watcherLogbufBytes: 256 * 1024,
    workerLogbufBytes: 64 * 1024,
    inlineAsciiResponse: false,
    trackSizes: false,
  };
}
