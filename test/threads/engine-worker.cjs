'use strict';
/**
 * A serving thread for test/threads/store-concurrency.test.ts: attaches an Engine to the store
 * the test's main thread created (workerData.memory) and runs one bounded workload against
 * it, reporting what it did so the main thread can check invariants. Loads the compiled
 * modules from dist/ (npm test builds first).
 */
const path = require('node:path');
const { workerData, parentPort } = require('node:worker_threads');

const { dist, settings, memory, statsTable, thread, mode, seed, rounds, keys, deadlineMs } = workerData;
const { Engine } = require(path.join(dist, 'engine', 'engine.js'));
const { ItemView } = require(path.join(dist, 'engine', 'item-view.js'));
const { ServerStats } = require(path.join(dist, 'metrics', 'stats.js'));

// Numeric values of the engine's const enums (inlined by TypeScript, so not exported at run time).
const SET = 0;
const CAS = 5;
const STORED = 0;
const EXISTS = 2;
const NOT_FOUND = 3;
const DELTA_OK = 0;

// Each thread counts in its own row of the shared stats table, as a serving thread does.
const engine = new Engine(settings, new ServerStats(statsTable, thread), undefined, memory);
const v = new ItemView();
let x = seed >>> 0 || 1;
function rnd() {
  x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
  return x;
}
const keyBuf = Buffer.alloc(64);
function key(i) {
  return keyBuf.write(`k${i}`, 0, 'latin1');
}

/** Store `value` under key i; returns a StoreResult or -1 when there was no memory. */
function store(kl, value, mode, casIn) {
  const h = engine.allocForStore(v, mode, keyBuf, 0, kl, 0, 0, value.length);
  if (h === 0) return -1;
  engine.writeValue(h, 0, value, 0, value.length);
  return engine.commitStore(v, mode, h, casIn);
}

let got = null;
let gotCas = 0;
const sink = {
  item(view) {
    if (got === null || got.length < view.nbytes) got = Buffer.alloc(Math.max(view.nbytes, 1024));
    view.copyValue(got, 0);
    gotCas = view.cas;
    sink.len = view.nbytes;
  },
  len: 0,
};
function read(kl) {
  return engine.get(v, keyBuf, 0, kl, sink) ? sink.len : -1;
}

const deadline = Date.now() + deadlineMs;
const report = { done: 0, perKey: new Array(keys).fill(0), torn: 0, hits: 0, misses: 0, stored: 0, noMemory: 0, retries: 0 };

if (mode === 'incr') {
  // Each round adds 1 to a random counter; the per-key counts must match the values.
  for (let r = 0; r < rounds && Date.now() < deadline; r++) {
    const k = rnd() % keys;
    const res = engine.incrDecr(v, keyBuf, 0, key(k), true, 1n);
    if (res !== DELTA_OK) throw new Error(`incr k${k}: result ${res}`);
    report.perKey[k]++;
    report.done++;
  }
} else if (mode === 'cas') {
  // Read-modify-write by cas until it sticks: no successful update may be lost.
  for (let r = 0; r < rounds && Date.now() < deadline; r++) {
    const k = rnd() % keys;
    const kl = key(k);
    for (;;) {
      const n = read(kl);
      if (n < 0) throw new Error(`cas loop: k${k} missing`);
      const next = Buffer.from(String(Number(got.toString('latin1', 0, n)) + 1));
      const res = store(kl, next, CAS, gotCas);
      if (res === STORED) break;
      if (res !== EXISTS) throw new Error(`cas k${k}: result ${res}`);
      report.retries++;
    }
    report.perKey[k]++;
    report.done++;
  }
} else if (mode === 'values') {
  // Self-checking values of random sizes (some chunked): length, seed and a checksum inside.
  // `hold` (optional, shared): while its word is 1 the workload goes on past its rounds (until
  // the deadline), so the main thread can wait for background work it needs to have seen.
  const { sizeMax, hold } = workerData;
  const more = (r) => (r < rounds || (hold !== undefined && Atomics.load(hold, 0) === 1)) && Date.now() < deadline;
  const big = Buffer.alloc(sizeMax + 16);
  for (let r = 0; more(r); r++) {
    const k = rnd() % keys;
    const kl = key(k);
    if (rnd() % 3 === 0) {
      const size = 16 + (rnd() % 16 === 0 ? rnd() % sizeMax : rnd() % 300);
      const s = rnd();
      big.writeUInt32LE(size, 0);
      big.writeUInt32LE(s, 4);
      big.writeUInt32LE(k, 8);
      let sum = 0;
      let y = s || 1;
      for (let i = 16; i < size; i++) {
        y ^= y << 13; y >>>= 0; y ^= y >>> 17; y ^= y << 5; y >>>= 0;
        big[i] = y & 0xff;
        sum = (sum + big[i]) | 0;
      }
      big.writeInt32LE(sum, 12);
      const res = store(kl, big.subarray(0, size), SET, 0);
      if (res === STORED) report.stored++;
      else if (res === -1) report.noMemory++;
      else throw new Error(`set k${k}: result ${res}`);
    } else {
      const n = read(kl);
      if (n < 0) { report.misses++; continue; }
      report.hits++;
      const b = got;
      const size = b.readUInt32LE(0);
      let sum = 0;
      let y = b.readUInt32LE(4) || 1;
      let ok = size === n && b.readUInt32LE(8) === k;
      for (let i = 16; ok && i < size; i++) {
        y ^= y << 13; y >>>= 0; y ^= y >>> 17; y ^= y << 5; y >>>= 0;
        if (b[i] !== (y & 0xff)) ok = false;
        sum = (sum + b[i]) | 0;
      }
      if (!ok || sum !== b.readInt32LE(12)) report.torn++;
    }
    report.done++;
  }
} else {
  throw new Error(`unknown mode ${mode}`);
}
void NOT_FOUND;
parentPort.postMessage(report);
