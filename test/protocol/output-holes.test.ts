/**
 * Output holes (src/protocol/output.ts): replies reserved in place while a value is read
 * from extstore, filled or turned into their miss reply in any order, with everything
 * after them kept in order and only the bytes before the first pending hole sendable.
 */
import { describe, expect, it } from 'vitest';
import { Output } from '../../src/protocol/output';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const text = (o: Output): string => o.buf.toString('latin1', o.sent, o.length);

function reply(o: Output, key: string, value: string, miss = ''): ReturnType<Output['holeFrom']> {
  const start = o.length;
  o.ascii(`VALUE ${key} 0 ${value.length}\r\n`);
  const at = o.length - start;
  const hole = o.holeFrom(start, value.length + 2, b(miss));
  o.buf.write('\r\n', hole.start + at + value.length, 'latin1');
  return Object.assign(hole, { at });
}

describe('Output holes', () => {
  it('fills in any order; only bytes before the first pending hole are sendable', () => {
    const o = new Output(64);
    o.ascii('A\r\n');
    const h1 = reply(o, 'k1', 'one');
    o.ascii('B\r\n');
    const h2 = reply(o, 'k2', 'two');
    o.ascii('END\r\n');
    expect(o.sendable()).toBe(3);
    let notified = 0;
    o.onHoleDone = () => notified++;
    o.fillHole(h2, (h2 as unknown as { at: number }).at, b('two'), 0, 3);
    expect(notified).toBe(0);
    expect(o.sendable()).toBe(3);
    o.fillHole(h1, (h1 as unknown as { at: number }).at, b('one'), 0, 3);
    expect(notified).toBe(1);
    expect(o.holeCount).toBe(0);
    expect(o.sendable()).toBe(o.length);
    expect(text(o)).toBe('A\r\nVALUE k1 0 3\r\none\r\nB\r\nVALUE k2 0 3\r\ntwo\r\nEND\r\n');
  });

  it('a miss replaces the hole with its miss reply and moves later bytes and holes up', () => {
    const o = new Output(64);
    const h1 = reply(o, 'k1', 'one', '');
    const h2 = reply(o, 'k2', 'two', 'EN\r\n');
    o.ascii('END\r\n');
    o.missHole(h1);
    expect(o.sendable()).toBe(h2.start);
    o.missHole(h2);
    expect(text(o)).toBe('EN\r\nEND\r\n');
  });

  it('markSent keeps held bytes and holes in place, compacting once half the buffer is sent', () => {
    const o = new Output(64);
    o.ascii('x'.repeat(20));
    const h = reply(o, 'k', 'value');
    o.ascii('tail\r\n');
    o.markSent(o.sendable(), false); // 20 of 64 bytes sent: nothing moves
    expect(o.sent).toBe(20);
    expect(h.start).toBe(20);
    const big = new Output(64);
    big.ascii('y'.repeat(100));
    const h2 = reply(big, 'k', 'value');
    big.ascii('tail\r\n');
    big.markSent(big.sendable(), true); // 100 of 128 sent: the rest moves to the front
    expect(big.sent).toBe(0);
    expect(h2.start).toBe(0);
    big.fillHole(h2, 13, b('value'), 0, 5);
    expect(text(big)).toBe('VALUE k 0 5\r\nvalue\r\ntail\r\n');
    o.fillHole(h, 13, b('value'), 0, 5);
    expect(text(o)).toBe('VALUE k 0 5\r\nvalue\r\ntail\r\n');
  });

  it('truncate drops holes past the mark (they die); discard kills the rest', () => {
    const o = new Output(64);
    const h1 = reply(o, 'k1', 'one');
    const mark = o.length;
    const h2 = reply(o, 'k2', 'two');
    // It says how many died (the session counts their reads as aborted at once).
    expect(o.truncate(mark)).toBe(1);
    expect(h2.dead).toBe(true);
    expect(h2.abortCounted).toBe(true);
    expect(o.holeCount).toBe(1);
    o.discard();
    expect(h1.dead).toBe(true);
    // A read left by a connection that went away is counted when it completes instead.
    expect(h1.abortCounted).toBe(false);
    expect(o.length).toBe(0);
    o.fillHole(h1, 0, b('one'), 0, 3); // ignored
    expect(o.length).toBe(0);
  });

  it('refuses reset and detach while holes are pending', () => {
    const o = new Output(64);
    reply(o, 'k', 'v');
    expect(() => o.reset()).toThrow();
    expect(() => o.detach()).toThrow();
  });
});
