/** MCTS_STRESS, the concurrency suites' longer local mode (reports.ts). */
import { describe, expect, it } from 'vitest';
import { sentPerConnection, stressFactor } from './reports';

describe('MCTS_STRESS', () => {
  it('is 1 when unset or empty, else the whole number given', () => {
    expect(stressFactor(undefined)).toBe(1);
    expect(stressFactor('')).toBe(1);
    expect(stressFactor('1')).toBe(1);
    expect(stressFactor('25')).toBe(25);
  });

  it('refuses what is not a whole number from 1 to 1000', () => {
    for (const bad of ['0', '-2', '1.5', 'ten', '1001', ' ']) expect(() => stressFactor(bad)).toThrow(/MCTS_STRESS/);
  });

  it('counts a load client connection\'s requests in whole pipelines', () => {
    expect(sentPerConnection(2_000, 16)).toBe(2_000);
    expect(sentPerConnection(300, 16)).toBe(304);
    expect(sentPerConnection(3_000, 16)).toBe(3_008);
  });
});
