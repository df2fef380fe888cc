/**
 * The layers and the directions they may depend on, in one place (doc/architecture.md):
 *
 *   cli ─► net ─► protocol ─► engine ─► store, extstore
 *                               │
 *   metrics/prometheus (an observer, beside net) reads engine stats; the rest of metrics
 *   (counters, the watch logger, latency histograms) is used by the layers and uses none.
 *
 * Checked by test/architecture/layers.test.ts (npm test). dependency-cruiser reads the
 * TypeScript imports, type-only ones included.
 */
module.exports = {
  forbidden: [
    {
      name: 'protocol-not-into-store',
      comment: 'Protocol code reaches items only through the engine (its views and operations): the one door.',
      severity: 'error',
      from: { path: '^src/protocol/' },
      to: { path: '^src/(store|extstore)/' },
    },
    {
      name: 'net-only-down-to-protocol',
      comment: 'The network layer hands bytes to protocol sessions; it knows no engine or store.',
      severity: 'error',
      from: { path: '^src/net/' },
      to: { path: '^src/(engine|store|extstore|cli)/' },
    },
    {
      name: 'protocol-not-up',
      severity: 'error',
      from: { path: '^src/protocol/' },
      to: { path: '^src/(net|cli)/' },
    },
    {
      name: 'engine-not-up',
      comment: 'The engine knows no wire format, socket or command line.',
      severity: 'error',
      from: { path: '^src/engine/' },
      to: { path: '^src/(protocol|net|cli)/' },
    },
    {
      name: 'store-at-the-bottom',
      comment: 'The store and extstore are libraries under the engine.',
      severity: 'error',
      from: { path: '^src/(store|extstore)/' },
      to: { path: '^src/(engine|protocol|net|cli|metrics|platform)/' },
    },
    {
      name: 'metrics-core-not-up',
      comment: 'Counters, the watch logger and latency histograms are used by every layer and use none.',
      severity: 'error',
      from: { path: '^src/metrics/(?!prometheus)' },
      to: { path: '^src/(engine|protocol|net|cli|store|extstore)/' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
