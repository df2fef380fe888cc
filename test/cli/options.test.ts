import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OPTION_SPECS, parseCommandLine, ParseResult } from '../../src/cli/options';
import { VERSION } from '../../src/cli/help';
import { defaultSettings, MIB, Settings } from '../../src/settings';
import { memcachedBin } from '../helpers/servers';

const KIB = 1024;

function run(argv: string[]): { settings: Settings; warnings: string[] } {
  const result = parseCommandLine(argv);
  if (result.kind !== 'run') throw new Error(`expected to run, got exit ${result.code}: ${result.stderr}`);
  return result;
}

function settingsOf(argv: string[]): Settings {
  return run(argv).settings;
}

function exitOf(argv: string[]): Extract<ParseResult, { kind: 'exit' }> {
  const result = parseCommandLine(argv);
  if (result.kind !== 'exit') throw new Error(`expected an exit for ${argv.join(' ')}`);
  return result;
}

describe('defaults', () => {
  it('no arguments gives memcached 1.6 defaults and no warnings', () => {
    expect(parseCommandLine([])).toEqual({ kind: 'run', settings: defaultSettings(), warnings: [] });
  });
});

describe('flags map to settings', () => {
  const cases: Array<[string[], Partial<Settings>]> = [
    [['-p', '11300'], { tcpPort: 11300 }],
    [['-p11300'], { tcpPort: 11300 }],
    [['--port=11300'], { tcpPort: 11300 }],
    [['--port', '11300'], { tcpPort: 11300 }],
    [['-p', '0'], { tcpPort: 0 }],
    // memcached's test suite asks for ephemeral ports this way
    [['-p', '-1'], { tcpPort: -1 }],
    [['-U', '-1'], { udpPort: -1, tcpPort: -1 }],
    [['-p', '11300', '-U', '11301'], { tcpPort: 11300, udpPort: 11301 }],
    [['-a', '0755'], { socketAccessMask: 0o755 }],
    [['-A'], { shutdownEnabled: true }],
    [['-m', '128'], { memoryLimitBytes: 128 * MIB }],
    [['-m', '128m'], { memoryLimitBytes: 128 * MIB }],
    [['--memory-limit=2048'], { memoryLimitBytes: 2048 * MIB }],
    [['-M'], { evictToFree: false }],
    [['-e', '/dev/shm/mc'], { memoryFile: '/dev/shm/mc' }],
    [['--memory-file=/dev/shm/mc'], { memoryFile: '/dev/shm/mc' }],
    [['-c', '4096'], { connectionsMax: 4096 }],
    [['-v'], { verbose: 1 }],
    [['-vv'], { verbose: 2 }],
    [['-vvv'], { verbose: 3 }],
    [['-v', '--verbose'], { verbose: 2 }],
    [['-d'], { daemonize: true }],
    [['-dvv'], { daemonize: true, verbose: 2 }],
    [['-r'], { maximizeCoreFile: true }],
    [['-R', '50'], { requestsPerEvent: 50 }],
    [['-u', 'memcache'], { username: 'memcache' }],
    [['-ud'], { username: 'd', daemonize: false }],
    [['-P', '/run/memcached.pid'], { pidFile: '/run/memcached.pid' }],
    [['-f', '1.08'], { growthFactor: 1.08 }],
    [['-n', '64'], { chunkSizeBytes: 64 }],
    [['-t', '1'], { threadCount: 1 }],
    [['-D', '#'], { prefixDelimiter: '#', detailEnabled: true }],
    [['-C'], { casEnabled: false }],
    [['-b', '4096'], { backlog: 4096 }],
    [['-B', 'ascii'], { bindProtocol: 'ascii' }],
    [['-B', 'binary'], { bindProtocol: 'binary' }],
    [['--protocol=auto'], { bindProtocol: 'auto' }],
    [['-I', '2m'], { itemSizeMaxBytes: 2 * MIB }],
    [['-I', '524288'], { itemSizeMaxBytes: 512 * KIB }],
    [['-F'], { flushEnabled: false }],
    [['-X'], { dumpEnabled: false }],
    [['-W'], { watchEnabled: false }],
    [['-p', '1', '-p', '2'], { tcpPort: 2 }],
    [['-p', '  11300'], { tcpPort: 11300 }],
  ];
  it.each(cases)('%j', (argv, expected) => {
    expect(settingsOf(argv)).toMatchObject(expected);
  });
});

describe('ports and sockets', () => {
  it('-U alone moves TCP to the UDP port, as memcached does', () => {
    expect(settingsOf(['-U', '11400'])).toMatchObject({ tcpPort: 11400, udpPort: 11400 });
  });

  it('-U 0 alone leaves TCP alone', () => {
    expect(settingsOf(['-U', '0'])).toMatchObject({ tcpPort: 11211, udpPort: 0 });
  });

  it('-s turns TCP and UDP off', () => {
    expect(settingsOf(['-s', '/tmp/mc.sock', '-p', '11300', '-U', '11301'])).toMatchObject({
      socketPath: '/tmp/mc.sock',
      tcpPort: 0,
      udpPort: 0,
    });
  });

  it('-s rejects a path that does not fit sockaddr_un', () => {
    expect(exitOf(['-s', '/tmp/' + 'x'.repeat(103)]).code).toBe(64);
    expect(settingsOf(['-s', '/tmp/' + 'x'.repeat(102)]).socketPath).toHaveLength(107);
  });
});

describe('-l', () => {
  it('accepts a comma separated list, repeated flags, and ; as memcached does', () => {
    const s = settingsOf(['-l', '127.0.0.1,10.0.0.1', '-l', '10.0.0.2;10.0.0.3']);
    expect(s.listenAddresses).toEqual(['127.0.0.1', '10.0.0.1', '10.0.0.2', '10.0.0.3']);
    expect(s.listeners.map((l) => l.host)).toEqual(['127.0.0.1', '10.0.0.1', '10.0.0.2', '10.0.0.3']);
  });

  it('skips an entry given twice', () => {
    expect(settingsOf(['-l', '127.0.0.1', '-l', '127.0.0.1']).listeners).toHaveLength(1);
  });

  it.each([
    ['127.0.0.1', { host: '127.0.0.1', port: null, protocol: null, tag: null }],
    ['127.0.0.1:11212', { host: '127.0.0.1', port: 11212, protocol: null, tag: null }],
    ['localhost:11212', { host: 'localhost', port: 11212, protocol: null, tag: null }],
    ['*', { host: null, port: null, protocol: null, tag: null }],
    ['*:11212', { host: null, port: 11212, protocol: null, tag: null }],
    ['::1', { host: '::1', port: null, protocol: null, tag: null }],
    ['[::1]', { host: '::1', port: null, protocol: null, tag: null }],
    ['[::1]:11212', { host: '::1', port: 11212, protocol: null, tag: null }],
    ['proto[ascii]:127.0.0.1:11212', { host: '127.0.0.1', port: 11212, protocol: 'ascii', tag: null }],
    ['proto[binary]:tag[tools]:[::1]:11213', { host: '::1', port: 11213, protocol: 'binary', tag: 'tools' }],
    ['proto[negotiating]:0.0.0.0', { host: '0.0.0.0', port: null, protocol: 'auto', tag: null }],
    ['tag[12345678]:127.0.0.1', { host: '127.0.0.1', port: null, protocol: null, tag: '12345678' }],
  ])('parses %s', (entry, expected) => {
    expect(settingsOf(['-l', entry]).listeners).toEqual([expected]);
  });

  it.each([
    ['notls:127.0.0.1:11211', "'notls' option is valid only when SSL is enabled"],
    ['mtls:127.0.0.1:11211', "'mtls' option is valid only when SSL is enabled"],
    ['btls:127.0.0.1:11211', "'btls' option is valid only when SSL is enabled"],
    ['127.0.0.1:70000', 'invalid port number 70000'],
    ['127.0.0.1:abc', 'invalid port number "abc"'],
    ['tag[123456789]:127.0.0.1', 'between 1 and 8'],
    ['tag[]:127.0.0.1', 'between 1 and 8'],
    ['proto[proxy]:127.0.0.1', 'proxy is not implemented'],
    ['proto[sql]:127.0.0.1', 'unknown protocol'],
    ['proto[ascii]127.0.0.1', 'expected proto[<value>]:'],
    ['[::1', 'invalid IPv6 address'],
    ['[::1]x', 'invalid IPv6 address'],
    [':11212', 'invalid address'],
    ['127.0.0.1:11212:', 'invalid address "127.0.0.1:11212:"'],
  ])('rejects %s', (entry, message) => {
    const exit = exitOf(['-l', entry]);
    expect(exit.code).toBe(64);
    expect(exit.stderr).toContain(message);
  });
});

describe('item size and slab chunks, with memcached rules', () => {
  it('-I above 1 MiB keeps slab_chunk_max at half a page', () => {
    expect(settingsOf(['-I', '4m'])).toMatchObject({ itemSizeMaxBytes: 4 * MIB, slabChunkMaxBytes: 512 * KIB });
  });

  it('-I 1024m is the largest item, and needs -m of twice that', () => {
    expect(settingsOf(['-m', '2048', '-I', '1024m']).itemSizeMaxBytes).toBe(1024 * MIB);
    expect(exitOf(['-m', '4096', '-I', '1025m']).stderr).toContain('higher than a gigabyte');
  });

  it('-I below slab_chunk_max needs a smaller slab_chunk_max, as in memcached', () => {
    expect(exitOf(['-I', '1k']).stderr).toContain('cannot be larger than -I');
    expect(settingsOf(['-I', '1k', '-o', 'slab_chunk_max=1'])).toMatchObject({
      itemSizeMaxBytes: KIB,
      slabChunkMaxBytes: KIB,
    });
  });

  it('slab_chunk_max given explicitly survives a large -I', () => {
    expect(settingsOf(['-I', '2m', '-o', 'slab_chunk_max=256']).slabChunkMaxBytes).toBe(256 * KIB);
  });

  it('no_chunked_items makes slab_chunk_max a whole page', () => {
    expect(settingsOf(['-o', 'no_chunked_items']).slabChunkMaxBytes).toBe(MIB);
  });

  it('no_modern resets slab_chunk_max only when it was not given', () => {
    expect(settingsOf(['-o', 'no_modern']).slabChunkMaxBytes).toBe(MIB);
    expect(settingsOf(['-o', 'slab_chunk_max=64,no_modern']).slabChunkMaxBytes).toBe(64 * KIB);
  });

  it.each([
    [['-I', '1000'], 'cannot be less than 1024 bytes'],
    [['-I', '600k'], 'must be evenly divisible by slab_chunk_max'],
    [['-I', '64m'], 'higher than 1/2 of memory max'],
    [['-m', '0'], 'higher than 1/2 of memory max'],
    [['-o', 'slab_chunk_max=48'], 'must be evenly divisible'],
    [['-o', 'slab_chunk_max=384', '-I', '768k'], 'must divide evenly into 1048576'],
    [['-n', '600000'], 'cannot be larger than slab_chunk_max'],
  ])('%j fails with exit 64', (argv, message) => {
    const exit = exitOf(argv);
    expect(exit.code).toBe(64);
    expect(exit.stderr).toContain(message);
  });
});

describe('-t', () => {
  it('accepts -t 4 (serving threads: src/cli/threads.ts) without a warning', () => {
    expect(run(['-t', '4'])).toMatchObject({ settings: { threadCount: 4 }, warnings: [] });
  });

  it('warns nothing for -t 1 or without -t', () => {
    expect(run(['-t', '1']).warnings).toEqual([]);
    expect(run([]).warnings).toEqual([]);
  });

  it('adds memcached\'s warning above 64 threads', () => {
    expect(run(['-t', '65']).warnings).toHaveLength(1);
  });
});

describe('bad values fail like memcached', () => {
  it.each([
    [['-c', '0'], 1, 'Maximum connections must be greater than 0'],
    [['-c', '-5'], 1, 'Maximum connections must be greater than 0'],
    [['-c', 'many'], 1, 'takes a whole number'],
    [['-c', '99999999'], 1, 'above the limit'],
    [['-t', '0'], 1, 'Number of threads must be greater than 0'],
    [['-t', '99999999999'], 1, 'above the limit'],
    [['-R', '0'], 1, 'Number of requests per event must be greater than 0'],
    [['-n', '0'], 1, 'Chunk size must be greater than 0'],
    [['-f', '1.0'], 1, 'Factor must be greater than 1'],
    [['-f', '0.5'], 1, 'Factor must be greater than 1'],
    [['-f', 'abc'], 1, 'takes a number'],
    [['-m', '1g'], 1, '-m takes megabytes'],
    [['-I', '1g'], 1, 'optional k or m suffix'],
    [['-m', '-1'], 1, '-m takes megabytes'],
    [['-m', '32705'], 1, 'the most item memory this server can address'],
    [['-m', '99999999'], 1, 'above the limit'],
    [['-a', '999'], 1, 'octal access mask'],
    [['-a', '1777'], 1, 'octal access mask'],
    [['-b', '-1'], 1, 'backlog'],
    [['-D', ''], 1, 'No delimiter specified'],
    [['-u', ''], 1, '-u must not be empty'],
    [['-B', 'foo'], 64, 'Invalid value for binding protocol: foo'],
    [['-p', '70000'], 64, 'invalid port number 70000'],
    [['-U', '-2'], 64, 'invalid port number -2'],
    [['-p', 'http'], 1, 'takes a whole number'],
    [['-x'], 1, "unknown option '-x'"],
    [['--portt=1'], 1, "unknown option '--portt=1' (Did you mean --port?)"],
    [['-p'], 1, 'argument missing'],
    [['11211'], 1, 'unexpected argument "11211"'],
    [['-m', '64', '128'], 1, 'unexpected argument "128"'],
  ])('%j exits %i', (argv, code, message) => {
    const exit = exitOf(argv);
    expect(exit).toMatchObject({ code, stdout: '' });
    expect(exit.stderr).toMatch(/^memcached-ts: .*\n$/);
    expect(exit.stderr).toContain(message);
  });

  it('reports the first bad option, in argv order', () => {
    expect(exitOf(['-t', '0', '-c', '0']).stderr).toContain('threads');
    expect(exitOf(['-c', '0', '-t', '0']).stderr).toContain('connections');
  });
});

describe('options memcached-ts does not implement', () => {
  it.each([
    [['-o', 'ssl_kernel_tls'], '-o ssl_kernel_tls is not implemented yet (kernel TLS offload'],
    [['-N', '2'], 'option -N'],
    [['-o', 'proxy_config=/x.lua'], '-o proxy_config is not implemented yet (the proxy)'],
    [['-o', 'drop_privileges'], '-o drop_privileges is not implemented yet'],
    [['-o', 'slab_sizes=96-192'], '-o slab_sizes is not implemented yet'],
    [['-o', 'sock_cookie_id=5'], '-o sock_cookie_id is not implemented yet'],
  ])('%j exits 64 naming it', (argv, message) => {
    const exit = exitOf(argv);
    expect(exit.code).toBe(64);
    expect(exit.stderr.startsWith(`memcached-ts: ${message}`), exit.stderr).toBe(true);
  });
});

describe('-o', () => {
  const cases: Array<[string, Partial<Settings>]> = [
    ['maxconns_fast', { maxconnsFast: true }],
    ['no_maxconns_fast', { maxconnsFast: false }],
    ['hashpower=24', { hashPowerInit: 24 }],
    ['no_hashexpand', { hashExpand: false }],
    ['hash_algorithm=murmur3', { hashAlgorithm: 'murmur3' }],
    ['no_slab_reassign', { slabReassign: false }],
    ['no_slab_reassign,slab_reassign', { slabReassign: true }],
    ['slab_automove=2', { slabAutomove: 2 }],
    ['no_slab_automove', { slabAutomove: 0 }],
    ['no_slab_automove,slab_automove', { slabAutomove: 1 }],
    ['slab_automove_ratio=0.5', { slabAutomoveRatio: 0.5 }],
    ['slab_automove_window=60', { slabAutomoveWindowSamples: 60 }],
    ['tail_repair_time=60', { tailRepairTimeSeconds: 60 }],
    ['no_lru_crawler', { lruCrawler: false }],
    ['lru_crawler_sleep=500', { lruCrawlerSleepMicros: 500 }],
    ['lru_crawler_tocrawl=4294967295', { lruCrawlerToCrawl: 4294967295 }],
    ['no_lru_maintainer', { lruSegmented: false, lruMaintainerThread: false }],
    ['read_buf_mem_limit=64', { readBufMemLimitBytes: 64 * MIB }],
    ['debug_commands', { debugCommands: true }],
    ['hot_lru_pct=30,warm_lru_pct=50', { hotLruPct: 30, warmLruPct: 50 }],
    ['hot_max_factor=0.5,warm_max_factor=3', { hotMaxFactor: 0.5, warmMaxFactor: 3 }],
    ['temporary_ttl=30', { tempLru: true, temporaryTtlSeconds: 30 }],
    ['idle_timeout=600', { idleTimeoutSeconds: 600 }],
    ['watcher_logbuf_size=512,worker_logbuf_size=128', { watcherLogbufBytes: 512 * KIB, workerLogbufBytes: 128 * KIB }],
    ['slab_chunk_max=16', { slabChunkMaxBytes: 16 * KIB }],
    ['track_sizes', { trackSizes: true }],
    ['inline_ascii_resp', { inlineAsciiResponse: true }],
    ['relaxed_privileges', { relaxedPrivileges: true }],
    ['modern', {}],
    ['no_drop_privileges', {}],
    [' modern , track_sizes ', { trackSizes: true }],
    [
      'no_modern',
      { slabReassign: false, slabAutomove: 0, maxconnsFast: false, lruSegmented: false, lruCrawler: false },
    ],
  ];
  it.each(cases)('%s', (list, expected) => {
    const { settings, warnings } = run(['-o', list]);
    expect(settings).toMatchObject(expected);
    expect(warnings).toEqual([]);
  });

  it('accepts -o repeated and --extended', () => {
    expect(settingsOf(['-o', 'track_sizes', '--extended=hashpower=20', '-o', 'idle_timeout=5'])).toMatchObject({
      trackSizes: true,
      hashPowerInit: 20,
      idleTimeoutSeconds: 5,
    });
  });

  it('warns when a flag sub-option is given a value', () => {
    expect(run(['-o', 'modern=1']).warnings).toEqual(['memcached-ts: -o modern takes no value; "=1" is ignored']);
  });

  it('warns that resp_obj_mem_limit is deprecated', () => {
    expect(run(['-o', 'resp_obj_mem_limit=10']).warnings[0]).toContain('deprecated');
  });

  it.each([
    ['foo', 1, 'Illegal suboption "foo"'],
    ['temp_lru', 1, 'Illegal suboption "temp_lru"'],
    ['constructor', 1, 'Illegal suboption "constructor"'],
    ['hashpower', 1, '-o hashpower needs a value'],
    ['hashpower=11', 1, 'Initial hashtable multiplier of 11 is too low'],
    ['hashpower=33', 1, 'Initial hashtable multiplier of 33 is too high'],
    ['hash_algorithm=md5', 1, 'Unknown hash_algorithm'],
    ['slab_automove=3', 1, 'slab_automove must be between 0 and 2'],
    ['slab_automove_ratio=0', 1, 'slab_automove_ratio must be > 0'],
    ['slab_automove_window=2', 1, 'slab_automove_window must be from 3 to 1800'],
    ['tail_repair_time=5', 1, 'less than 10 seconds'],
    ['lru_crawler_sleep=2000000', 1, 'LRU crawler sleep must be between 0 and 1 second'],
    ['lru_crawler_tocrawl=abc', 1, 'takes a whole number'],
    ['lru_crawler_tocrawl=4294967296', 1, 'numeric 32bit value'],
    ['hot_lru_pct=80', 1, 'hot_lru_pct must be from 1 to 79'],
    ['warm_lru_pct=0', 1, 'warm_lru_pct must be from 1 to 79'],
    ['hot_max_factor=0', 1, 'hot_max_factor must be > 0'],
    ['idle_timeout=abc', 1, 'takes a whole number'],
    ['idle_timeout=-1', 1, 'idle_timeout must be from 0 to 2147483647'],
    ['slab_chunk_max=0', 1, 'slab_chunk_max must be > 0'],
    ['slab_chunk_max=2048', 1, 'specified in kilobytes'],
    ['worker_logbuf_size=0', 1, 'worker_logbuf_size must be from 1 to 1048576'],
    ['hot_lru_pct=50,warm_lru_pct=40', 64, 'cannot be more than 80% combined'],
    ['temporary_ttl=10,no_lru_maintainer', 64, 'temporary_ttl requires lru_maintainer'],
  ])('-o %s exits %i', (list, code, message) => {
    const exit = exitOf(['-o', list]);
    expect(exit.code).toBe(code);
    expect(exit.stderr).toContain(message);
  });
});

describe('-h, -V, -i', () => {
  it('-V prints the version and exits 0', () => {
    expect(exitOf(['-V'])).toEqual({ kind: 'exit', code: 0, stdout: 'memcached-ts 0.1.0 (memcached 1.6.45 compatible)\n', stderr: '' });
  });

  it('VERSION matches package.json', () => {
    const pkg = JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')) as { version: string };
    expect(VERSION).toBe(pkg.version);
  });

  it('-h exits 0 with the help on stdout, and -i with the licence', () => {
    expect(exitOf(['-h'])).toMatchObject({ code: 0, stderr: '' });
    expect(exitOf(['--help']).stdout).toMatch(/^memcached-ts 0\.1\.0/);
    expect(exitOf(['-i']).stdout).toContain('BSD');
  });

  it('-h acts where it stands, as memcached getopt loop does', () => {
    expect(exitOf(['-h', '-c', '0']).code).toBe(0);
    expect(exitOf(['-c', '0', '-h']).code).toBe(1);
  });

  it('hash algorithms other than murmur3 are refused rather than ignored', () => {
    const exit = exitOf(['-o', 'hash_algorithm=xxh3']);
    expect(exit.code).toBe(64);
    expect(exit.stderr).toContain('not implemented');
  });

  it('-h lists every option that works and none that is rejected', () => {
    const help = exitOf(['-h']).stdout;
    for (const spec of OPTION_SPECS) {
      if ('hiV'.includes(spec.short)) continue;
      const argv = spec.valueName === null ? [`-${spec.short}`] : [`-${spec.short}`, sampleValue(spec.short)];
      const result = parseCommandLine(argv);
      const rejected = result.kind === 'exit' && result.stderr.includes('not implemented');
      expect(help.includes(`\n-${spec.short}`), `-${spec.short} in -h`).toBe(!rejected);
    }
  });

  it('-h lists the -o names that work and no rejected one', () => {
    const help = exitOf(['-h']).stdout;
    const names = [...help.matchAll(/^ {3}- ([a-z_]+)[:,]/gm)].map((match) => match[1]);
    expect(names.length).toBeGreaterThan(20);
    for (const name of names) {
      const result = parseCommandLine(['-o', name]);
      const failure = result.kind === 'exit' ? result.stderr : '';
      expect(failure.includes('not implemented') || failure.includes('Illegal'), `${name}: ${failure}`).toBe(false);
    }
  });
});

function sampleValue(short: string): string {
  const samples: Record<string, string> = { B: 'ascii', D: ':', I: '1m', a: '700', f: '1.25', l: '127.0.0.1', o: 'modern' };
  return samples[short] ?? '2';
}

/** The same bad command lines against memcached itself, where it is installed. */
describe.skipIf(!existsSync(memcachedBin()))('exit codes agree with the reference memcached', () => {
  it.each([
    [['-c', '0']],
    [['-t', '0']],
    [['-R', '0']],
    [['-n', '0']],
    [['-f', '1.0']],
    [['-B', 'foo']],
    [['-p', '70000']],
    [['-I', '1000']],
    [['-I', '1k']],
    [['-I', '600k']],
    [['-I', '64m']],
    [['-m', '0']],
    [['-D', '']],
    [['-x']],
    [['-o', 'foo']],
    [['-o', 'hashpower=11']],
    [['-o', 'slab_automove=3']],
    [['-o', 'tail_repair_time=5']],
    [['-o', 'lru_crawler_sleep=2000000']],
    [['-o', 'hot_lru_pct=50,warm_lru_pct=40']],
    [['-o', 'temporary_ttl=10,no_lru_maintainer']],
    [['-o', 'slab_chunk_max=48']],
  ])('%j', (argv) => {
    // -u nobody so that memcached gets past its own root check when the tests run as root.
    const memcached = spawnSync(memcachedBin(), ['-u', 'nobody', '-p', '0', '-U', '0', ...argv], { timeout: 5000 });
    expect(memcached.status).not.toBeNull();
    expect(exitOf(argv).code).toBe(memcached.status);
  });
});
