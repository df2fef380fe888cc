/**
 * The texts of -h, -V and -i.
 *
 * What it is for: memcached-style help that lists only the options memcached-ts honours, with
 * the defaults taken from Settings so the text cannot drift from the code.
 * What it is not for: options that are rejected (proxy, ssl_kernel_tls...): they are
 * named in the error the parser returns, not advertised here.
 */

import { defaultSettings, MIB, Settings, WARMUP_MS_DEFAULT } from '../settings';
import { MEMCACHED_COMPAT_VERSION, SERVER_NAME, SERVER_VERSION } from '../version';

export const PROGRAM_NAME = SERVER_NAME;
/** Kept equal to package.json's version by a test (rootDir forbids importing package.json). */
export const VERSION = SERVER_VERSION;

const KIB = 1024;

/**
 * -V: our own name, so that nobody mistakes this server for memcached's C code, and the
 * memcached release whose protocols, options and stats it follows.
 */
export function versionText(): string {
  return `${PROGRAM_NAME} ${VERSION} (memcached ${MEMCACHED_COMPAT_VERSION} compatible)\n`;
}

/** -i: memcached prints its and libevent's licence; we have one licence of our own. */
export function licenseText(): string {
  return (
    `${PROGRAM_NAME} ${VERSION}\n\n` +
    'Licensed under the BSD 3-Clause License; see the LICENSE file distributed with memcached-ts.\n' +
    `The command line, protocols and statistics follow memcached ${MEMCACHED_COMPAT_VERSION} (BSD licensed, Danga Interactive).\n`
  );
}

/** -h */
export function helpText(defaults: Settings = defaultSettings()): string {
  return [
    `${PROGRAM_NAME} ${VERSION} (memcached ${MEMCACHED_COMPAT_VERSION} compatible)`,
    ...listenerLines(defaults),
    ...processLines(),
    ...memoryLines(defaults),
    ...connectionLines(defaults),
    ...commandLines(),
    ...extendedLines(defaults),
    '',
  ].join('\n');
}

function listenerLines(d: Settings): string[] {
  return [
    `-p, --port=<num>          TCP port to listen on (default: ${d.tcpPort}, 0 is off, -1 any free port)`,
    `-U, --udp-port=<num>      UDP port to listen on (default: ${d.udpPort}, off; -1 any free port)`,
    '-s, --unix-socket=<file>  UNIX socket to listen on (disables network support)',
    `-a, --unix-mask=<mask>    access mask for UNIX socket, in octal (default: ${d.socketAccessMask.toString(8)})`,
    '-l, --listen=<addr>       interface to listen on (default: INADDR_ANY)',
    '                          comma separated list, may be repeated; each entry is',
    '                          [proto[<ascii|binary|negotiating>]:][tag[<name>]:]<ip>[:<port>]',
    '                          e.g. -l 127.0.0.1:11211,proto[ascii]:tag[tools]:[::1]:11212',
    '                          if TLS/SSL is enabled, \'notls\', \'btls\', \'mtls\' prefix can be used to',
    '                          specify for specific listeners no tls, basic tls (no client',
    '                          certificate), or peer-auth tls (client certificate required),',
    '                          e.g. -l mtls:proto[ascii]:tag[tools]:127.0.0.1:11212',
    `-b, --listen-backlog=<num> set the backlog queue limit (default: ${d.backlog})`,
    `-B, --protocol=<name>     protocol - one of ascii, binary, or auto (default: ${d.bindProtocol})`,
    '-Z, --enable-ssl          enable TLS/SSL on TCP listeners (see the ssl_* options of -o)',
  ];
}

function processLines(): string[] {
  return [
    '-d, --daemon              run as a daemon',
    '-r, --enable-coredumps    require core files: fails at startup if the core size limit is 0',
    '                          (Node.js cannot raise it: use ulimit -c or LimitCORE=)',
    '-u, --user=<user>         assume identity of <username> (only when run as root)',
    '-P, --pidfile=<file>      save PID in <file>',
    '-v, --verbose             verbose (print errors/warnings while in event loop)',
    '-vv                       very verbose (also print client commands/responses)',
    '-vvv                      extremely verbose (internal state transitions)',
    '-h, --help                print this help and exit',
    '-i, --license             print the license and exit',
    '-V, --version             print version and exit',
  ];
}

function memoryLines(d: Settings): string[] {
  return [
    `-m, --memory-limit=<num>  item memory in megabytes (default: ${d.memoryLimitBytes / MIB})`,
    '-M, --disable-evictions   return error on memory exhausted instead of evicting',
    `-f, --slab-growth-factor=<num> chunk size growth factor (default: ${d.growthFactor.toFixed(2)})`,
    `-n, --slab-min-size=<bytes> min space used for key+value+flags (default: ${d.chunkSizeBytes})`,
    '-I, --max-item-size=<num> adjusts max item size, k and m suffixes allowed',
    `                          (default: ${d.itemSizeMaxBytes / MIB}m, min: 1k, max: 1024m)`,
    '-C, --disable-cas         disable use of CAS',
    '-k, --lock-memory         lock the item memory (slab pages) in RAM; needs the native',
    '                          addon and RLIMIT_MEMLOCK above -m (LimitMEMLOCK=infinity)',
    '-L, --enable-largepages   try to use large memory pages (if available): a slab page per',
    '                          class at start; huge pages are advised over the store anyway',
    '-e, --memory-file=<file>  keep the cache in this file (tmpfs) across a graceful stop',
    '                          (SIGUSR1) and restart: warm restart, extstore included',
  ];
}

function connectionLines(d: Settings): string[] {
  return [
    `-c, --conn-limit=<num>    max simultaneous connections (default: ${d.connectionsMax})`,
    `-t, --threads=<num>       number of threads to use (default: ${d.threadCount});`,
    '                          accepted, but requests are served on one event loop thread',
    '-R, --max-reqs-per-event  maximum number of requests per event, limits the',
    '                          requests processed per connection to prevent',
    `                          starvation (default: ${d.requestsPerEvent})`,
  ];
}

function commandLines(): string[] {
  return [
    '-A, --enable-shutdown     enable ascii "shutdown" command',
    '-F, --disable-flush-all   disable flush_all command',
    '-X, --disable-dumping     disable stats cachedump, stats detail, and lru_crawler metadump',
    '-W, --disable-watch       disable watch commands (live logging)',
    '-S, --enable-sasl         turn on SASL authentication (binary protocol; PLAIN and',
    '                          CRAM-MD5; Cyrus memcached.conf from $SASL_CONF_PATH,',
    '                          users from its sasldb_path (saslpasswd2) and, for PLAIN,',
    '                          from the file named by $MEMCACHED_SASL_PWDB)',
    '-Y, --auth-file=<file>    enable ASCII protocol authentication. format:',
    '                          user:pass\\nuser2:pass2\\n (at most 8 users; reread on SIGHUP)',
    '-D <char>                 use <char> as the delimiter between key prefixes and IDs',
    '                          for per-prefix stats; also turns "stats detail" on',
    `                          (default: "${defaultSettings().prefixDelimiter}")`,
  ];
}

function extendedLines(d: Settings): string[] {
  return [
    '-o, --extended            comma separated list of extended options, may be repeated',
    '                          most options have a \'no_\' prefix to disable',
    `   - maxconns_fast:       immediately close new connections after limit (default: ${onOff(d.maxconnsFast)})`,
    `   - hashpower:           initial hash table size as a power of 2 (default: ${d.hashPowerInit})`,
    '   - no_hashexpand:       disables hash table expansion (dangerous)',
    `   - hash_algorithm:      murmur3 (the only one implemented; the default)`,
    '   - tail_repair_time:    seconds before forcefully killing an LRU tail item',
    '                          (at least 10; disabled by default; very dangerous)',
    '   - no_lru_crawler:      disable the LRU crawler',
    `   - lru_crawler_sleep:   microseconds to sleep between items (default: ${d.lruCrawlerSleepMicros})`,
    `   - lru_crawler_tocrawl: max items to crawl per slab per run (default: ${d.lruCrawlerToCrawl}, unlimited)`,
    '   - no_lru_maintainer:   disable the segmented LRU (hot/warm/cold)',
    `   - hot_lru_pct:         pct of slab memory to reserve for hot lru (default: ${d.hotLruPct})`,
    `   - warm_lru_pct:        pct of slab memory to reserve for warm lru (default: ${d.warmLruPct})`,
    `   - hot_max_factor:      items idle > cold age * this leave hot (default: ${d.hotMaxFactor.toFixed(2)})`,
    `   - warm_max_factor:     items idle > cold age * this leave warm (default: ${d.warmMaxFactor.toFixed(2)})`,
    '   - temporary_ttl:       TTLs at or below get a separate LRU, never evicted',
    `                          (requires lru_maintainer, default: ${d.temporaryTtlSeconds})`,
    `   - idle_timeout:        timeout for idle connections in seconds (default: ${d.idleTimeoutSeconds}, none)`,
    `   - slab_reassign, no_slab_reassign: allow moving slab pages (default: ${onOff(d.slabReassign)})`,
    `   - slab_automove:       0 (off), 1 or 2 (default: ${d.slabAutomove})`,
    `   - slab_automove_ratio: young/old ratio for automove, 0-1 (default: ${d.slabAutomoveRatio})`,
    `   - slab_automove_window: samples averaged by automove (default: ${d.slabAutomoveWindowSamples})`,
    `   - slab_chunk_max:      maximum slab chunk in kilobytes (default: ${d.slabChunkMaxBytes / KIB})`,
    '   - no_chunked_items:    slab_chunk_max = slab page size',
    `   - watcher_logbuf_size: kilobytes of per-watcher write buffer (default: ${d.watcherLogbufBytes / KIB})`,
    `   - worker_logbuf_size:  kilobytes of per-worker log buffer (default: ${d.workerLogbufBytes / KIB})`,
    '   - track_sizes:         enable dynamic reports for \'stats sizes\' command',
    '   - modern:              enables options which will be default in future (currently nothing)',
    '   - no_modern:           uses defaults of previous major version (1.4.x)',
    '   - relaxed_privileges:  recorded for compatibility',
    `   - read_buf_mem_limit:  limit in megabytes for connection read/response buffers,`,
    `                          split between the -t threads; 0 means unlimited (default: ${d.readBufMemLimitBytes / MIB})`,
    '   - debug_commands:      the "debugtime" and "debugitem ref|unref" commands of',
    '                          memcached\'s debug build (for memcached\'s own test suite)',
    ...platformLines(d),
    ...tlsLines(d),
    ...extstoreLines(d),
  ];
}

/** Options of memcached-ts's own (memcached has no such names). */
function platformLines(d: Settings): string[] {
  return [
    `   - warmup_ms:           ms each serving thread runs its request paths on a scratch`,
    `                          store before listening, so V8 has compiled them before the`,
    `                          first client (default: ${WARMUP_MS_DEFAULT}, off; 300 is enough)`,
    '   - loop_yield:          auto, on or off: each serving thread yields its CPU after',
    '                          handling what it was woken for (default: auto, on when the',
    '                          serving threads outnumber the CPUs; needs the native addon)',
    '   - tcp_accept:          dispatch or reuseport: with several threads, thread 0 accepts',
    '                          TCP connections and deals them out in turn (dispatch, the',
    '                          default), or each thread accepts on a socket of its own',
    '   - prefetch_keys:       most keys of the requests waiting in a read buffer whose',
    '                          hash buckets and items are touched together before the first',
    `                          runs (default: ${d.prefetchKeys}; 0: off)`,
    '   - tcp_fastopen:        TCP Fast Open on TCP listeners with this queue length',
    '                          (default: 0, off; needs the native addon and the host\'s',
    '                          net.ipv4.tcp_fastopen set to 2 or 3)',
    '   - metrics_listen:      [<host>:]<port> of a Prometheus endpoint, GET /metrics',
    '                          (default: off), e.g. metrics_listen=127.0.0.1:9150',
  ];
}

function extstoreLines(d: Settings): string[] {
  return [
    '   - External storage (ext_*) related options (see doc/extstore.md)',
    '   - ext_path:            file to write to for external storage, ie: ext_path=/mnt/d1/extstore:1G',
    '                          repeat for several files (pages are striped over them)',
    `   - ext_page_size:       size in megabytes of storage pages. (default: ${d.extPageBytes / MIB})`,
    `   - ext_wbuf_size:       size in megabytes of page write buffers. (default: ${d.extWbufBytes / MIB})`,
    '   - ext_threads:         number of IO threads to run (libuv thread pool size;',
    '                          default: UV_THREADPOOL_SIZE or 4)',
    `   - ext_io_depth:        reads in flight per IO thread (default: ${d.extIoDepth})`,
    `   - ext_item_size:       store items larger than this (bytes, default ${d.extItemSizeBytes})`,
    '   - ext_item_age:        store items idle at least this long (seconds, default: no age limit)',
    `   - ext_low_ttl:         consider TTLs lower than this specially (default: ${d.extLowTtlSeconds})`,
    '   - ext_drop_unread:     don\'t re-write unread values during compaction (default: disabled)',
    `   - ext_recache_rate:    recache an item every N accesses (default: ${d.extRecacheRate})`,
    '   - ext_compact_under:   compact when fewer than this many free pages',
    '                          (default: 1 percent of the assigned storage)',
    '   - ext_drop_under:      drop COLD items when fewer than this many free pages',
    '                          (default: 1 percent of the assigned storage)',
    `   - ext_max_frag:        max page fragmentation to tolerate (default: ${d.extMaxFrag.toFixed(2)})`,
    `   - ext_max_sleep:       max sleep time of background threads in us (default: ${d.extMaxSleepMicros})`,
  ];
}

function tlsLines(d: Settings): string[] {
  return [
    '   - ssl_chain_cert:      certificate chain file in PEM format',
    '   - ssl_key:             private key, if not part of the -ssl_chain_cert',
    `   - ssl_keyformat:       private key format: 1 (PEM) or 2 (DER) (default: ${d.tlsKeyFormat})`,
    `   - ssl_verify_mode:     peer certificate verification mode, default is ${d.tlsVerifyMode}(None).`,
    '                          valid values are 0(None), 1(Request), 2(Require)',
    '                          or 3(Once)',
    '   - ssl_ciphers:         specify cipher list to be used',
    '   - ssl_ca_cert:         PEM format file of acceptable client CA\'s',
    '   - ssl_wbuf_size:       size in kilobytes of per-connection SSL output buffer:',
    `                          no TLS record carries more (default: ${d.tlsWriteBufferBytes / 1024})`,
    '   - ssl_session_cache:   enable server-side SSL session cache, to support session',
    '                          resumption (session tickets are always on)',
    `   - ssl_min_version:     minimum protocol version to accept (default: ${d.tlsMinVersion})`,
    '                          valid values are 0(tlsv1.0), 1(tlsv1.1), 2(tlsv1.2), or 3(tlsv1.3).',
  ];
}

function onOff(enabled: boolean): string {
  return enabled ? 'enabled' : 'disabled';
}
