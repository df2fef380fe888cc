/**
 * The command-line options of the platform and observability work: -k (mlockall, checked at
 * startup, not at parse time), -o tcp_fastopen and -o metrics_listen (memcached-ts's own).
 */
import { describe, expect, it } from 'vitest';
import { parseCommandLine, type ParseResult } from '../../src/cli/options';
import { helpText } from '../../src/cli/help';
import { loopYieldPlan } from '../../src/cli/threads';
import { loadNative } from '../../src/platform/native';
import type { Settings } from '../../src/settings';

function settingsOf(argv: string[]): Settings {
  const result = parseCommandLine(argv);
  if (result.kind !== 'run') throw new Error(`expected to run, got exit ${result.code}: ${result.stderr}`);
  return result.settings;
}

function exitOf(argv: string[]): Extract<ParseResult, { kind: 'exit' }> {
  const result = parseCommandLine(argv);
  if (result.kind !== 'exit') throw new Error(`expected an exit for ${argv.join(' ')}`);
  return result;
}

describe('-k', () => {
  it('parses (whether mlockall can run is a startup check)', () => {
    expect(settingsOf(['-k']).lockMemory).toBe(true);
    expect(settingsOf(['--lock-memory']).lockMemory).toBe(true);
    expect(settingsOf([]).lockMemory).toBe(false);
  });
});

describe('-o tcp_fastopen', () => {
  it('takes a queue length; 0 is off, the default', () => {
    expect(settingsOf([]).tcpFastOpenQueue).toBe(0);
    expect(settingsOf(['-o', 'tcp_fastopen=16']).tcpFastOpenQueue).toBe(16);
    expect(settingsOf(['-o', 'tcp_fastopen=0']).tcpFastOpenQueue).toBe(0);
    expect(settingsOf(['-o', 'tcp_fastopen=65535,idle_timeout=5']).tcpFastOpenQueue).toBe(65535);
  });

  it.each([['tcp_fastopen=-1'], ['tcp_fastopen=65536'], ['tcp_fastopen=lots'], ['tcp_fastopen']])('refuses %s', (option) => {
    const exit = exitOf(['-o', option]);
    expect(exit.code).not.toBe(0);
    expect(exit.stderr).toContain('tcp_fastopen');
  });
});

describe('-o loop_yield', () => {
  it('takes auto (the default), on or off', () => {
    expect(settingsOf([]).loopYield).toBe('auto');
    expect(settingsOf(['-o', 'loop_yield=on']).loopYield).toBe('on');
    expect(settingsOf(['-o', 'loop_yield=off,idle_timeout=5']).loopYield).toBe('off');
    expect(settingsOf(['-o', 'loop_yield=auto']).loopYield).toBe('auto');
    expect(helpText(settingsOf([]))).toContain('loop_yield');
  });

  it.each([['loop_yield=yes'], ['loop_yield'], ['loop_yield=']])('refuses %s', (option) => {
    const exit = exitOf(['-o', option]);
    expect(exit.code).not.toBe(0);
    expect(exit.stderr).toContain('loop_yield');
  });

  it('auto yields only when the serving threads outnumber the CPUs; on and off are as said', () => {
    const s = settingsOf([]);
    const on = settingsOf(['-o', 'loop_yield=on']);
    const off = settingsOf(['-o', 'loop_yield=off']);
    if (loadNative().addon === null) {
      // without the addon nothing yields ('on' is refused at startup: checkPlatform)
      expect(loopYieldPlan(s, 4, 1).on).toBe(false);
      return;
    }
    expect(loopYieldPlan(s, 2, 1)).toEqual({ on: true, line: 'loop yield: on: 2 serving threads on 1 CPU (-o loop_yield=auto)' });
    expect(loopYieldPlan(s, 4, 2).line).toBe('loop yield: on: 4 serving threads on 2 CPUs (-o loop_yield=auto)');
    expect(loopYieldPlan(s, 2, 2)).toEqual({ on: false, line: null });
    expect(loopYieldPlan(s, 1, 1).on).toBe(false);
    expect(loopYieldPlan(on, 1, 16)).toEqual({ on: true, line: 'loop yield: on (-o loop_yield=on)' });
    expect(loopYieldPlan(off, 8, 1)).toEqual({ on: false, line: null });
  });
});

describe('-o metrics_listen', () => {
  it.each<[string, Settings['metricsListen']]>([
    ['metrics_listen=9150', { host: null, port: 9150 }],
    ['metrics_listen=:9150', { host: null, port: 9150 }],
    ['metrics_listen=*:9150', { host: null, port: 9150 }],
    ['metrics_listen=127.0.0.1:9150', { host: '127.0.0.1', port: 9150 }],
    ['metrics_listen=localhost:9150', { host: 'localhost', port: 9150 }],
    ['metrics_listen=[::1]:9150', { host: '::1', port: 9150 }],
  ])('%s', (option, expected) => {
    expect(settingsOf(['-o', option]).metricsListen).toEqual(expected);
  });

  it('is off by default', () => {
    expect(settingsOf([]).metricsListen).toBeNull();
  });

  it.each([
    ['metrics_listen=127.0.0.1'],
    ['metrics_listen=::1:9150'],
    ['metrics_listen=[::1]9150'],
    ['metrics_listen=[1.2.3.4]:9150'],
    ['metrics_listen=127.0.0.1:0'],
    ['metrics_listen=127.0.0.1:65536'],
    ['metrics_listen=a b:9150'],
    ['metrics_listen'],
  ])('refuses %s with exit 64 naming the option', (option) => {
    const exit = exitOf(['-o', option]);
    expect(exit.code).not.toBe(0);
    expect(exit.stderr).toContain('metrics_listen');
  });
});

describe('-h', () => {
  it('lists -k and the two -o options', () => {
    const text = helpText();
    expect(text).toContain('-k, --lock-memory');
    expect(text).toContain('- tcp_fastopen:');
    expect(text).toContain('- metrics_listen:');
  });
});

describe('-o prefetch_keys', () => {
  it('takes 0 (off) to the store limit; on by default', () => {
    expect(settingsOf([]).prefetchKeys).toBe(32);
    expect(settingsOf(['-o', 'prefetch_keys=0']).prefetchKeys).toBe(0);
    expect(settingsOf(['-o', 'prefetch_keys=64,idle_timeout=5']).prefetchKeys).toBe(64);
    expect(helpText(settingsOf([]))).toContain('prefetch_keys');
  });

  it.each([['prefetch_keys=65'], ['prefetch_keys=-1'], ['prefetch_keys=some'], ['prefetch_keys']])('refuses %s', (option) => {
    const exit = exitOf(['-o', option]);
    expect(exit.code).not.toBe(0);
    expect(exit.stderr).toContain('prefetch_keys');
  });
});
