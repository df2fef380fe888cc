import { describe, expect, it } from 'vitest';
import { makeHarness } from './harness';

/** Every request of `script`, split into two writes at every byte offset, gives the same replies. */
function expectSplitInvariant(script: string, expected: string): void {
  for (let cut = 0; cut <= script.length; cut++) {
    const h = makeHarness();
    const { reply } = h.run([script.slice(0, cut), script.slice(cut)]);
    expect(reply, `split at ${cut}`).toBe(expected);
  }
}

describe('text protocol: split at every byte', () => {
  it('set/get/gets/delete', () => {
    expectSplitInvariant(
      'set foo 5 0 3\r\nbar\r\nget foo\r\ndelete foo\r\nget foo\r\n',
      'STORED\r\nVALUE foo 5 3\r\nbar\r\nEND\r\nDELETED\r\nEND\r\n',
    );
  });
  it('values containing CRLF, empty values, multiget', () => {
    expectSplitInvariant(
      'set a 0 0 4\r\n\r\n\r\n\r\nset b 1 0 0\r\n\r\nget a b c\r\n',
      'STORED\r\nSTORED\r\nVALUE a 0 4\r\n\r\n\r\n\r\nVALUE b 1 0\r\n\r\nEND\r\n',
    );
  });
  it('noreply, incr/decr, append/prepend', () => {
    expectSplitInvariant(
      'set n 0 0 2 noreply\r\n10\r\nincr n 5\r\ndecr n 100\r\nappend n 0 0 1\r\nx\r\nprepend n 0 0 1 noreply\r\ny\r\nget n\r\n',
      '15\r\n0\r\nSTORED\r\nVALUE n 0 4\r\ny0 x\r\nEND\r\n',
    );
  });
  it('bad data chunk then recovery', () => {
    // the LF left over is a line too short for memcached 1.6.45's parser
    expectSplitInvariant('set k 0 0 1\r\nab\r\nget k\r\n', 'CLIENT_ERROR bad data chunk\r\nCLIENT_ERROR bad command line format\r\nEND\r\n');
  });
  it('too large is swallowed', () => {
    const big = 'x'.repeat(2 * 1024 * 1024);
    const h = makeHarness();
    const r = h.run([`set big 0 0 ${big.length}\r\n`, big.slice(0, 1000), big.slice(1000) + '\r\nget big\r\n']).reply;
    expect(r).toBe('SERVER_ERROR object too large for cache\r\nEND\r\n');
  });
});

describe('text protocol: memcached replies', () => {
  it('unknown commands and token counts (memcached 1.6.45: a known command short of arguments is a bad format)', () => {
    const h = makeHarness();
    expect(h.send('bogus\r\n')).toBe('ERROR\r\n');
    expect(h.send('set a 0 0\r\n')).toBe('CLIENT_ERROR bad command line format\r\n');
    expect(h.send('get\r\n')).toBe('CLIENT_ERROR bad command line format\r\n');
    expect(h.send('\r\n')).toBe('CLIENT_ERROR bad command line format\r\n');
    expect(h.send('sets a\r\n')).toBe('ERROR\r\n');
    expect(h.send('bogus noreply\r\n')).toBe('');
  });
  it('bad numbers (a refused set still skips its value)', () => {
    const h = makeHarness();
    expect(h.send('set a x 0 1\r\nx\r\n')).toBe('CLIENT_ERROR bad command line format\r\n');
    expect(h.send('set a 0 0 -1\r\n')).toBe('CLIENT_ERROR bad command line format\r\n');
    expect(h.send('set a -1 0 1\r\nx\r\n')).toBe('CLIENT_ERROR bad command line format\r\n');
    expect(h.send('incr a x\r\n')).toBe('CLIENT_ERROR invalid numeric delta argument\r\n');
    expect(h.send('touch a x\r\n')).toBe('CLIENT_ERROR invalid exptime argument\r\n');
  });
  it('key length limit is 250', () => {
    const h = makeHarness();
    const k250 = 'k'.repeat(250);
    expect(h.send(`set ${k250} 0 0 1\r\nx\r\n`)).toBe('STORED\r\n');
    // memcached 1.6.45 sends this error with a second CRLF
    expect(h.send(`get ${k250}k\r\n`)).toBe('CLIENT_ERROR bad command line format\r\n\r\n');
    expect(h.send(`set ${k250}k 0 0 1\r\nx\r\n`)).toBe('CLIENT_ERROR bad command line format\r\n');
  });
  it('incr is 64-bit unsigned and wraps; decr stops at 0; non-numeric refused', () => {
    const h = makeHarness();
    h.send('set n 0 0 20\r\n18446744073709551615\r\n');
    expect(h.send('incr n 1\r\n')).toBe('0\r\n');
    expect(h.send('get n\r\n')).toBe('VALUE n 0 20\r\n0                   \r\nEND\r\n');
    expect(h.send('decr n 5\r\n')).toBe('0\r\n');
    h.send('set s 0 0 3\r\nabc\r\n');
    expect(h.send('incr s 1\r\n')).toBe('CLIENT_ERROR cannot increment or decrement non-numeric value\r\n');
    expect(h.send('incr missing 1\r\n')).toBe('NOT_FOUND\r\n');
    h.send('set d 0 0 2\r\n99\r\n');
    expect(h.send('incr d 1\r\n')).toBe('100\r\n');
    expect(h.send('get d\r\n')).toBe('VALUE d 0 3\r\n100\r\nEND\r\n');
  });
  it('cas: gets value, EXISTS on mismatch, NOT_FOUND when missing', () => {
    const h = makeHarness();
    h.send('set c 0 0 1\r\na\r\n');
    const m = /VALUE c 0 1 (\d+)/.exec(h.send('gets c\r\n'));
    expect(m).not.toBeNull();
    const cas = m![1];
    expect(h.send(`cas c 0 0 1 ${Number(cas) + 1}\r\nb\r\n`)).toBe('EXISTS\r\n');
    expect(h.send(`cas c 0 0 1 ${cas}\r\nb\r\n`)).toBe('STORED\r\n');
    expect(h.send(`cas c 0 0 1 ${cas}\r\nb\r\n`)).toBe('EXISTS\r\n');
    expect(h.send('cas nope 0 0 1 1\r\nb\r\n')).toBe('NOT_FOUND\r\n');
  });
  it('add/replace semantics', () => {
    const h = makeHarness();
    expect(h.send('replace r 0 0 1\r\na\r\n')).toBe('NOT_STORED\r\n');
    expect(h.send('add r 0 0 1\r\na\r\n')).toBe('STORED\r\n');
    expect(h.send('add r 0 0 1\r\nb\r\n')).toBe('NOT_STORED\r\n');
    expect(h.send('replace r 3 0 1\r\nc\r\n')).toBe('STORED\r\n');
    expect(h.send('get r\r\n')).toBe('VALUE r 3 1\r\nc\r\nEND\r\n');
  });
  it('negative exptime expires at once; touch and gat', () => {
    const h = makeHarness();
    expect(h.send('set e 0 -1 1\r\na\r\n')).toBe('STORED\r\n');
    expect(h.send('get e\r\n')).toBe('END\r\n');
    h.send('set t 0 0 1\r\na\r\n');
    expect(h.send('touch t 100\r\n')).toBe('TOUCHED\r\n');
    expect(h.send('gat 0 t\r\n')).toBe('VALUE t 0 1\r\na\r\nEND\r\n');
    expect(h.send('touch none 1\r\n')).toBe('NOT_FOUND\r\n');
  });
  it('flush_all invalidates; delete takes any arguments', () => {
    const h = makeHarness();
    h.send('set f 0 0 1\r\na\r\n');
    expect(h.send('flush_all\r\n')).toBe('OK\r\n');
    expect(h.send('get f\r\n')).toBe('END\r\n');
    // memcached 1.6.45 ignores what follows the key (noreply aside)
    expect(h.send('delete f 1\r\n')).toBe('NOT_FOUND\r\n');
    expect(h.send('delete f 0\r\n')).toBe('NOT_FOUND\r\n');
    expect(h.send('delete f x noreply\r\n')).toBe('');
  });
  it('HTTP request line closes the connection', () => {
    const h = makeHarness();
    expect(h.run(['GET / HTTP/1.1\r\n'])).toEqual({ reply: '', closed: true });
  });
  it('an unterminated non-get line over 2048 bytes closes; a long get waits', () => {
    expect(makeHarness().run(['set ' + 'x'.repeat(3000)]).closed).toBe(true);
    const h = makeHarness();
    const keys = Array.from({ length: 400 }, (_, i) => `key${i}`).join(' ');
    h.send('set key7 0 0 1\r\nv\r\n');
    const r = h.run([`get ${keys.slice(0, 2500)}`, `${keys.slice(2500)}\r\n`]);
    expect(r.closed).toBe(false);
    expect(r.reply).toBe('VALUE key7 0 1\r\nv\r\nEND\r\n');
  });
  it('huge declared length is refused without allocation', () => {
    const h = makeHarness();
    expect(h.send('set k 0 0 4294967295\r\n')).toBe('CLIENT_ERROR bad command line format\r\n');
    expect(h.send('set k 0 0 2147483645\r\n')).toBe('SERVER_ERROR object too large for cache\r\n');
  });
  it('version, verbosity, stats reset', () => {
    const h = makeHarness();
    expect(h.send('version\r\n')).toMatch(/^VERSION 1\.6\.\d+\r\n$/);
    expect(h.send('verbosity 1\r\n')).toBe('OK\r\n');
    expect(h.send('verbosity 1 noreply\r\n')).toBe('');
    expect(h.send('stats reset\r\n')).toBe('RESET\r\n');
    expect(h.send('stats\r\n')).toMatch(/STAT curr_items 0\r\n[\s\S]*END\r\n$/);
  });
});
