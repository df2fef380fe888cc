/**
 * Settings: every tunable of the server in one place, with memcached 1.6's names (in comments)
 * and defaults. The CLI (src/cli/) fills this from argv; every other module only reads it.
 *
 * Units are last in names: `...Bytes`, `...Seconds`, `...Count`, `...Pct`.
 */

export type BindProtocol = 'auto' | 'ascii' | 'binary';

/** -o ssl_verify_mode: 0 none, 1 request, 2 require, 3 once (see doc/tls.md). */
export type TlsVerifyMode = 0 | 1 | 2 | 3;
/** -o ssl_keyformat: OpenSSL's SSL_FILETYPE_PEM (1) and SSL_FILETYPE_ASN1 (2, DER). */
export type TlsKeyFormat = 1 | 2;
/** -o ssl_min_version, as memcached prints it in `stats settings`. */
export type TlsVersionName = 'tlsv1.0' | 'tlsv1.1' | 'tlsv1.2' | 'tlsv1.3';

/** -o hash_algorithm: memcached's choices. */
export type HashAlgorithm = 'jenkins' | 'murmur3' | 'xxh3';

/** -l prefixes: no TLS, TLS without peer certificates, TLS requiring a peer certificate. */
export type ListenerTls = 'notls' | 'btls' | 'mtls';

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
  /**
   * TLS prefix of the entry (memcached 1.6.19+), meaningful under -Z: `notls` plain TCP,
   * `btls` TLS without client certificates, `mtls` TLS requiring a client certificate. Absent:
   * TLS as -o ssl_verify_mode says.
   */
  tls?: ListenerTls;
}

/** One -o ext_path=<file>:<size>[:<bucket>] entry. */
export interface ExtPathSpec {
  path: string;
  /** The size given, in bytes; the file holds floor(sizeBytes / extPageBytes) pages. */
  sizeBytes: number;
  /** The page bucket its free pages serve (extstore's BUCKET_*: 0 default). */
  bucket: number;
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
  /**
   * -o read_buf_mem_limit (given in megabytes; 0: none): memcached's cap on the memory of read
   * buffers and response objects, split between its worker threads (-t). Here it bounds the
   * replies a connection may queue per read (see TextSession.startResponse).
   */
  readBufMemLimitBytes: number;
  /** Size of the per-connection static read buffer. */
  readBufferBytes: number;
  /**
   * Closed connections' read and output buffers each serving thread keeps for new ones
   * (src/net/buffer-pool.ts); 0: none kept.
   */
  connectionBuffersSpareMax: number;
  /**
   * -o prefetch_keys: most keys of the requests waiting in a read buffer whose hash buckets
   * and items are touched together before the first of them runs (0: off; at most
   * PREFETCH_KEYS_MAX). See doc/store.md, "Prefetching a pipeline's keys".
   */
  prefetchKeys: number;
  /** Unsent output above which a connection stops being read until it drains. */
  writeBacklogBytesMax: number;
  /** Longest multiget line accepted before the connection is closed (memcached grows without bound). */
  multigetLineBytesMax: number;

  // --- TLS (memcached -Z and -o ssl_*; see doc/tls.md)
  /** -Z: TLS on every TCP listener except those given as notls:. UDP and unix sockets stay plain. */
  tlsEnabled: boolean;
  /** -o ssl_chain_cert: PEM file with the server certificate and its chain; null: not given. */
  tlsChainCertPath: string | null;
  /** -o ssl_key: private key file; null: the key is read from the ssl_chain_cert file. */
  tlsKeyPath: string | null;
  /** -o ssl_keyformat: 1 PEM, 2 DER. */
  tlsKeyFormat: TlsKeyFormat;
  /** -o ssl_verify_mode: client certificate checking. */
  tlsVerifyMode: TlsVerifyMode;
  /** -o ssl_ciphers: OpenSSL cipher list (TLS 1.2 and below; TLS_* names set TLS 1.3 suites); null: Node's default. */
  tlsCiphers: string | null;
  /** -o ssl_ca_cert: PEM file of CAs that client certificates are checked against; null: none. */
  tlsCaCertPath: string | null;
  /**
   * -o ssl_wbuf_size (given in KiB): memcached encrypts replies in chunks of at most this many
   * bytes, so no TLS record carries more; here the records' largest plaintext (doc/tls.md).
   */
  tlsWriteBufferBytes: number;
  /** -o ssl_session_cache: server-side session-ID cache (TLS 1.2 resumption without tickets). */
  tlsSessionCache: boolean;
  /** -o ssl_min_version. */
  tlsMinVersion: TlsVersionName;
  /** Bounds of the session-ID cache: entries (OpenSSL's default cache size) and bytes. */
  tlsSessionCacheEntriesMax: number;
  tlsSessionCacheBytesMax: number;
  /** Lifetime of a TLS session: cache entries and session tickets (the ticket lifetime hint). */
  tlsSessionTimeoutSeconds: number;
  /**
   * Session ticket keys are replaced this often; the previous key still decrypts for one more
   * period. Must be at least tlsSessionTimeoutSeconds, so no ticket dies before its lifetime.
   */
  tlsTicketKeyRotationSeconds: number;
  /** A client that has not finished its TLS handshake after this long is dropped. */
  tlsHandshakeTimeoutSeconds: number;

  // --- memory and items
  /** -e: the memory file a warm restart keeps the store in (src/store/memory-file.ts); null: none. */
  memoryFile: string | null;
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
  /**
   * -L: memcached's large pages: refused when the kernel has transparent huge pages off;
   * otherwise one slab page is preallocated per class at startup (huge pages are advised
   * over the store with or without -L, src/platform/startup.ts).
   */
  largePages: boolean;
  /** -k: lock down all paged memory (mlockall, through the native addon). */
  lockMemory: boolean;

  // --- LRU
  /** -o lru_maintainer / no_lru_maintainer: segmented LRU on/off (also `lru mode`). */
  lruSegmented: boolean;
  /** -o lru_maintainer / no_lru_maintainer: the background LRU maintainer runs. */
  lruMaintainerThread: boolean;
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
  /** -o warmup_ms: JIT warm-up before listening, ms per serving thread (0: none; src/protocol/warmup.ts). */
  warmupMs: number;
  /**
   * -o loop_yield: each serving thread yields its CPU after each poll phase of its event loop
   * ('auto': when the serving threads outnumber the CPUs the process may run on; doc/threads.md).
   */
  loopYield: LoopYield;
  /**
   * -o tcp_accept: how TCP connections reach the worker threads at -t N > 1 ('dispatch':
   * thread 0 accepts and deals them out in turn, as memcached's dispatcher; 'reuseport': each
   * worker accepts on an SO_REUSEPORT socket of its own; doc/threads.md).
   */
  tcpAccept: TcpAccept;
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
   * -S: SASL authentication (binary protocol only; PLAIN and CRAM-MD5 against Cyrus'
   * sasldb and, for PLAIN, the MEMCACHED_SASL_PWDB file; see protocol/auth.ts). Implies -B binary; text listeners and UDP are refused with it, as in memcached.
   */
  saslEnabled: boolean;
  /**
   * -Y: ASCII authentication file (`user:password` lines, at most 8). Implies -B ascii;
   * binary listeners and UDP are refused with it, as in memcached.
   */
  authFile: string | null;
  /** -o relaxed_privileges. */
  relaxedPrivileges: boolean;
  /**
   * -o debug_commands: memcached-debug's `debugtime` and `debugitem ref|unref` commands
   * (memcached's own test suite drives the clock and leaks references with them). Off by
   * default, as in a release build of memcached.
   */
  debugCommands: boolean;
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

  // --- platform and observability (not in memcached)
  /**
   * -o tcp_fastopen=<queue>: TCP Fast Open on every TCP listener, with this many pending Fast
   * Open requests (the kernel caps it at net.core.somaxconn); 0 = off. Needs the native addon.
   */
  tcpFastOpenQueue: number;
  /** -o metrics_listen=[<host>:]<port>: the Prometheus endpoint (GET /metrics); null = off. */
  metricsListen: MetricsListen | null;

  // --- extstore (memcached's ext_* options; see doc/extstore.md)
  /** -o ext_path (repeatable): files of the flash tier, striped page by page; empty = off. */
  extPaths: ExtPathSpec[];
  /** -o ext_page_size: megabytes per page (memcached: 64). */
  extPageBytes: number;
  /** -o ext_wbuf_size: megabytes per write buffer (memcached: 4); -I must not exceed it. */
  extWbufBytes: number;
  /** -o ext_threads: IO threads (memcached: 1); sets UV_THREADPOOL_SIZE when given. */
  extThreads: number;
  /** ext_threads was given on the command line (otherwise libuv's pool size is kept). */
  extThreadsSet: boolean;
  /** -o ext_io_depth: reads in flight per IO thread (memcached: 1). */
  extIoDepth: number;
  /** -o ext_item_size: items of at least this size (memcached's item total) go to disk. */
  extItemSizeBytes: number;
  /** -o ext_item_age: also write items idle this long while memory is not full (default: never). */
  extItemAgeSeconds: number;
  /** -o ext_low_ttl: items expiring sooner than this go to their own pages. */
  extLowTtlSeconds: number;
  /** -o ext_recache_rate: one in this many repeat disk hits is copied back to memory (0 = never). */
  extRecacheRate: number;
  /** -o ext_compact_under: compact when fewer pages than this are free (0 = a quarter of the pages). */
  extCompactUnderPages: number;
  /** -o ext_drop_under: with ext_drop_unread, drop COLD values when fewer pages than this are free. */
  extDropUnderPages: number;
  /** -o ext_max_sleep: longest pause of the background compactor, in microseconds. */
  extMaxSleepMicros: number;
  /** -o ext_max_frag: compact pages whose live bytes fall below this fraction (scaled by free pages). */
  extMaxFrag: number;
  /** -o ext_drop_unread: compaction drops values nobody read (COLD) instead of rewriting them. */
  extDropUnread: boolean;
  /** -o slab_automove_freeratio: accepted and reported; see doc/extstore.md. */
  slabAutomoveFreeRatio: number;
}

/** -o metrics_listen: where the Prometheus endpoint listens; host null = every interface. */
export interface MetricsListen {
  host: string | null;
  port: number;
}

export const MIB = 1024 * 1024;
/** -o loop_yield's values. */
export type LoopYield = 'auto' | 'on' | 'off';
export const LOOP_YIELD_VALUES: readonly LoopYield[] = ['auto', 'on', 'off'];
/** -o tcp_accept's values. */
export type TcpAccept = 'dispatch' | 'reuseport';
export const TCP_ACCEPT_VALUES: readonly TcpAccept[] = ['dispatch', 'reuseport'];
/** -o warmup_ms default: no JIT warm-up (it costs resident memory per thread; doc/network.md). */
export const WARMUP_MS_DEFAULT = 0;
/** -o warmup_ms upper bound. */
export const WARMUP_MS_MAX = 60_000;

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

    tlsEnabled: false,
    tlsChainCertPath: null,
    tlsKeyPath: null,
    tlsKeyFormat: 1,
    tlsVerifyMode: 0,
    tlsCiphers: null,
    tlsCaCertPath: null,
    tlsWriteBufferBytes: 16 * 1024,
    tlsSessionCache: false,
    tlsMinVersion: 'tlsv1.2',
    tlsSessionCacheEntriesMax: 20 * 1024,
    tlsSessionCacheBytesMax: 8 * MIB,
    tlsSessionTimeoutSeconds: 3600,
    tlsTicketKeyRotationSeconds: 3600,
    tlsHandshakeTimeoutSeconds: 30,

    connectionsMax: 1024,
    requestsPerEvent: 20,
    idleTimeoutSeconds: 0,
    readBufferBytes: 16 * 1024,
    connectionBuffersSpareMax: 32,
    prefetchKeys: 32,
    writeBacklogBytesMax: 4 * MIB,
    multigetLineBytesMax: 4 * MIB,

    memoryFile: null,
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
    lruMaintainerThread: true,
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
    slabAutomoveWindowSamples: 10,

    shutdownEnabled: false,
    flushEnabled: true,
    dumpEnabled: true,
    watchEnabled: true,

    threadCount: 4,
    warmupMs: WARMUP_MS_DEFAULT,
    loopYield: 'auto',
    tcpAccept: 'dispatch',
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
    readBufMemLimitBytes: 0,
    debugCommands: false,
    maxconnsFast: true,
    tailRepairTimeSeconds: 0,
    watcherLogbufBytes: 256 * 1024,
    workerLogbufBytes: 64 * 1024,
    inlineAsciiResponse: false,
    trackSizes: false,
    tcpFastOpenQueue: 0,
    metricsListen: null,

    extPaths: [],
    extPageBytes: 64 * MIB,
    extWbufBytes: 4 * MIB,
    extThreads: 1,
    extThreadsSet: false,
    extIoDepth: 1,
    extItemSizeBytes: 512,
    extItemAgeSeconds: 4294967295,
    extLowTtlSeconds: 0,
    extRecacheRate: 2000,
    extCompactUnderPages: 0,
    extDropUnderPages: 0,
    extMaxSleepMicros: 1_000_000,
    extMaxFrag: 0.8,
    extDropUnread: false,
    slabAutomoveFreeRatio: 0.01,
  };
}
