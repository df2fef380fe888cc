/**
 * memcached's TLS flags (-Z, -o ssl_*, -l notls:/btls:/mtls:) parsed into Settings, with memcached's
 * messages for bad values and for relations between options.
 */
import { describe, expect, it } from 'vitest';
import { parseCommandLine, type ParseResult } from '../../src/cli/options';
import { helpText } from '../../src/cli/help';
import type { Settings } from '../../src/settings';

function run(argv: string[]): { settings: Settings; warnings: string[] } {
  const result = parseCommandLine(argv);
  if (result.kind !== 'run') throw new Error(`expected to run, got exit ${result.code}: ${result.stderr}`);
  return result;
}

function exitOf(argv: string[]): Extract<ParseResult, { kind: 'exit' }> {
  const result = parseCommandLine(argv);
  if (result.kind !== 'exit') throw new Error(`expected an exit for ${argv.join(' ')}`);
  return result;
}

const CERT = ['-o', 'ssl_chain_cert=/etc/mc/chain.pem'];

describe('-Z and -o ssl_*', () => {
  it('maps every memcached option', () => {
    const { settings } = run(['-Z', '-o', 'ssl_chain_cert=c.pem,ssl_key=k.der,ssl_keyformat=2,ssl_verify_mode=3,' +
      'ssl_ciphers=ECDHE-ECDSA-AES128-GCM-SHA256:TLS_AES_128_GCM_SHA256,ssl_ca_cert=ca.pem,' +
      'ssl_session_cache,ssl_min_version=3,ssl_wbuf_size=4']);
    expect(settings).toMatchObject({
      tlsEnabled: true,
      tlsChainCertPath: 'c.pem',
      tlsKeyPath: 'k.der',
      tlsKeyFormat: 2,
      tlsVerifyMode: 3,
      tlsCiphers: 'ECDHE-ECDSA-AES128-GCM-SHA256:TLS_AES_128_GCM_SHA256',
      tlsCaCertPath: 'ca.pem',
      tlsSessionCache: true,
      tlsMinVersion: 'tlsv1.3',
      tlsWriteBufferBytes: 4096,
    });
  });

  it.each([['0', 'tlsv1.0'], ['1', 'tlsv1.1'], ['2', 'tlsv1.2'], ['3', 'tlsv1.3'], ['tlsv1.3', 'tlsv1.3'], ['TLSv1.2', 'tlsv1.2']])(
    'ssl_min_version=%s is %s', (value, name) => {
      expect(run(['-Z', ...CERT, '-o', `ssl_min_version=${value}`]).settings.tlsMinVersion).toBe(name);
    });

  it('ssl_* without -Z are recorded and TLS stays off, as in memcached', () => {
    expect(run(CERT).settings).toMatchObject({ tlsEnabled: false, tlsChainCertPath: '/etc/mc/chain.pem' });
  });

  it.each([
    [['-o', 'ssl_verify_mode=4'], 1, 'Invalid ssl_verify_mode. Use help to see valid options.'],
    [['-o', 'ssl_verify_mode=x'], 1, 'could not parse argument to ssl_verify_mode'],
    [['-o', 'ssl_min_version=4'], 1, 'Invalid ssl_min_version. Use help to see valid options.'],
    [['-o', 'ssl_keyformat=3'], 1, 'Invalid ssl_keyformat 3: 1 (PEM) or 2 (DER)'],
    [['-o', 'ssl_wbuf_size=lots'], 1, 'could not parse argument to ssl_wbuf_size'],
    [['-o', 'ssl_wbuf_size=0'], 1, 'ssl_wbuf_size must be from 1 to 16384 kilobytes'],
    [['-o', 'ssl_chain_cert='], 1, 'Missing ssl_chain_cert argument'],
    [['-o', 'ssl_kernel_tls'], 64, '-o ssl_kernel_tls is not implemented yet'],
    [['-Z'], 64, 'Error loading the certificate chain: (null)'],
    [['-Z', '-p', '0', ...CERT], 64, 'ERROR: You cannot enable SSL without a TCP port.'],
    [['-l', 'notls:127.0.0.1'], 64, "'notls' option is valid only when SSL is enabled"],
    [['-l', 'btls:127.0.0.1'], 64, "'btls' option is valid only when SSL is enabled"],
    [['-l', 'mtls:127.0.0.1'], 64, "'mtls' option is valid only when SSL is enabled"],
  ])('%j exits %i: %s', (argv, code, message) => {
    const exit = exitOf(argv);
    expect(exit.code).toBe(code);
    expect(exit.stderr).toContain(message);
  });
});

describe('-l notls:, btls:, mtls:', () => {
  it('records the prefix and keeps the rest of the grammar', () => {
    const { settings } = run(['-Z', ...CERT, '-l', 'notls:proto[ascii]:tag[ops]:127.0.0.1:11212,[::1]:11213',
      '-l', 'btls:127.0.0.1:11214,mtls:proto[binary]:127.0.0.1:11215']);
    expect(settings.listeners).toEqual([
      { host: '127.0.0.1', port: 11212, protocol: 'ascii', tag: 'ops', tls: 'notls' },
      { host: '::1', port: 11213, protocol: null, tag: null },
      { host: '127.0.0.1', port: 11214, protocol: null, tag: null, tls: 'btls' },
      { host: '127.0.0.1', port: 11215, protocol: 'binary', tag: null, tls: 'mtls' },
    ]);
    // memcached's `stats settings` prints -l as given.
    expect(settings.listenAddresses).toEqual(['notls:proto[ascii]:tag[ops]:127.0.0.1:11212', '[::1]:11213',
      'btls:127.0.0.1:11214', 'mtls:proto[binary]:127.0.0.1:11215']);
  });

  it('ssl_wbuf_size is taken in kilobytes, as memcached', () => {
    expect(run(['-Z', ...CERT, '-o', 'ssl_wbuf_size=64']).settings.tlsWriteBufferBytes).toBe(65536);
  });
});

describe('warnings', () => {
  it('says what -Z does not cover', () => {
    expect(run(['-Z', ...CERT, '-U', '11211']).warnings.join('\n')).toContain('UDP (-U) is not encrypted');
    expect(run(['-Z', ...CERT, '-s', '/tmp/mc.sock']).warnings.join('\n')).toContain('unix socket (-s) is served without TLS');
    expect(run(['-Z', ...CERT, '-o', 'ssl_verify_mode=2']).warnings.join('\n')).toContain('without ssl_ca_cert');
    expect(run(['-Z', ...CERT, '-l', 'mtls:127.0.0.1']).warnings.join('\n')).toContain('-l mtls:127.0.0.1 without -o ssl_ca_cert');
    expect(run(['-Z', ...CERT, '-l', 'mtls:127.0.0.1', '-o', 'ssl_ca_cert=ca.pem']).warnings).toEqual([]);
  });
});

describe('-h', () => {
  it('lists -Z, the listener prefixes and the ssl_* options', () => {
    const h = helpText();
    for (const text of ['-Z, --enable-ssl', "'notls', 'btls', 'mtls'", 'ssl_chain_cert', 'ssl_session_cache', 'ssl_min_version',
      'ssl_wbuf_size']) {
      expect(h).toContain(text);
    }
  });
});
