'use strict';
/**
 * A load process for test/threads/server-concurrency.test.ts: opens several connections to a
 * server on 127.0.0.1 and runs one bounded, pipelined workload on each, then prints one JSON
 * report on stdout. Workloads:
 *   incr    pipelined `incr k<i> 1`; counts how many each key got
 *   cas     gets + cas read-modify-write loops; counts the updates that stuck
 *   values  pipelined sets and gets of self-checking values (length, key, seed, checksum
 *           inside); counts torn values
 *   disk    as values, with values of 0.5-8 KiB (extstore writes them to disk) and deletes
 * Usage: node load-client.cjs PORT MODE CONNECTIONS ROUNDS KEYS SEED DEADLINE_MS PIPELINE
 * (PIPELINE: requests per write; each connection sends ROUNDS rounded up to whole pipelines)
 */
const net = require('node:net');

const [port, mode, connections, rounds, keys, seed, deadlineMs, pipeline] = process.argv.slice(2).map((a, i) => (i === 1 ? a : Number(a)));
if (!(pipeline >= 1)) throw new Error('load-client.cjs: pipeline (the 8th argument) must be at least 1');
const deadline = Date.now() + deadlineMs;

function xorshift(s) {
  let x = s >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x;
  };
}

/** A connection with a reply reader: line(), and bytes(n) for values. */
function connect() {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let waiter = null;
    const pump = () => {
      if (waiter !== null && waiter()) waiter = null;
    };
    sock.on('data', (d) => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      pump();
    });
    sock.on('error', reject);
    sock.on('close', () => {
      if (waiter !== null) {
        process.stderr.write('the server closed a connection with replies outstanding\n');
        process.exit(1);
      }
    });
    sock.on('connect', () => resolve({
      sock,
      line() {
        return new Promise((res, rej) => {
          const tryLine = () => {
            const i = buf.indexOf('\r\n');
            if (i < 0) return false;
            const l = buf.toString('latin1', 0, i);
            buf = buf.subarray(i + 2);
            res(l);
            return true;
          };
          void rej;
          if (!tryLine()) waiter = tryLine;
        });
      },
      bytes(n) {
        return new Promise((res) => {
          const tryBytes = () => {
            if (buf.length < n + 2) return false;
            const b = Buffer.from(buf.subarray(0, n));
            buf = buf.subarray(n + 2);
            res(b);
            return true;
          };
          if (!tryBytes()) waiter = tryBytes;
        });
      },
    }));
  });
}

function makeValue(rnd, k) {
  const size = mode === 'disk' ? 512 + (rnd() % (8 * 1024 - 512))
    : 16 + (rnd() % 16 === 0 ? rnd() % (600 * 1024) : rnd() % 400);
  const v = Buffer.alloc(size);
  const s = rnd();
  v.writeUInt32LE(size, 0);
  v.writeUInt32LE(s, 4);
  v.writeUInt32LE(k, 8);
  let y = s || 1;
  let sum = 0;
  for (let i = 16; i < size; i++) {
    y ^= y << 13; y >>>= 0; y ^= y >>> 17; y ^= y << 5; y >>>= 0;
    v[i] = y & 0xff;
    sum = (sum + v[i]) | 0;
  }
  v.writeInt32LE(sum, 12);
  return v;
}

function checkValue(b, k) {
  if (b.length < 16 || b.readUInt32LE(0) !== b.length || b.readUInt32LE(8) !== k) return false;
  let y = b.readUInt32LE(4) || 1;
  let sum = 0;
  for (let i = 16; i < b.length; i++) {
    y ^= y << 13; y >>>= 0; y ^= y >>> 17; y ^= y << 5; y >>>= 0;
    if (b[i] !== (y & 0xff)) return false;
    sum = (sum + b[i]) | 0;
  }
  return sum === b.readInt32LE(12);
}

async function runConnection(c, index, report) {
  const rnd = xorshift(seed * 7919 + index * 104729 + 1);
  for (let r = 0; r < rounds && Date.now() < deadline; r += pipeline) {
    if (mode === 'incr') {
      const batch = [];
      for (let i = 0; i < pipeline; i++) batch.push(rnd() % keys);
      c.sock.write(batch.map((k) => `incr k${k} 1\r\n`).join(''));
      for (const k of batch) {
        const l = await c.line();
        if (!/^\d+$/.test(l)) throw new Error(`incr k${k}: ${l}`);
        report.perKey[k]++;
        report.done++;
      }
    } else if (mode === 'cas') {
      for (let i = 0; i < pipeline; i++) {
        const k = rnd() % keys;
        for (;;) {
          c.sock.write(`gets k${k}\r\n`);
          const head = (await c.line()).split(' ');
          if (head[0] !== 'VALUE') throw new Error(`gets k${k}: ${head.join(' ')}`);
          const value = Number((await c.bytes(Number(head[3]))).toString());
          if ((await c.line()) !== 'END') throw new Error('gets: no END');
          const next = String(value + 1);
          c.sock.write(`cas k${k} 0 0 ${next.length} ${head[4]}\r\n${next}\r\n`);
          const l = await c.line();
          if (l === 'STORED') break;
          if (l !== 'EXISTS') throw new Error(`cas k${k}: ${l}`);
          report.retries++;
        }
        report.perKey[k]++;
        report.done++;
      }
    } else if (mode === 'values' || mode === 'disk') {
      const batch = [];
      const parts = [];
      for (let i = 0; i < pipeline; i++) {
        const k = rnd() % keys;
        if (mode === 'disk' && rnd() % 10 === 0) {
          parts.push(Buffer.from(`delete k${k}\r\n`));
          batch.push({ k, set: false, del: true });
        } else if (rnd() % 3 === 0) {
          const v = makeValue(rnd, k);
          parts.push(Buffer.from(`set k${k} ${k} 0 ${v.length}\r\n`), v, Buffer.from('\r\n'));
          batch.push({ k, set: true });
        } else {
          parts.push(Buffer.from(`get k${k}\r\n`));
          batch.push({ k, set: false });
        }
      }
      c.sock.write(Buffer.concat(parts));
      for (const { k, set, del } of batch) {
        if (del) {
          const l = await c.line();
          if (l === 'DELETED') report.deleted++;
          else if (l !== 'NOT_FOUND') throw new Error(`delete k${k}: ${l}`);
          continue;
        }
        if (set) {
          const l = await c.line();
          if (l === 'STORED') report.stored++;
          else if (l === 'SERVER_ERROR out of memory storing object') report.noMemory++;
          else throw new Error(`set k${k}: ${l}`);
          continue;
        }
        const l = await c.line();
        if (l === 'END') {
          report.misses++;
          continue;
        }
        const head = l.split(' ');
        if (head[0] !== 'VALUE' || head[1] !== `k${k}`) throw new Error(`get k${k}: ${l}`);
        const b = await c.bytes(Number(head[3]));
        if ((await c.line()) !== 'END') throw new Error('get: no END');
        report.hits++;
        if (Number(head[2]) !== k || !checkValue(b, k)) report.torn++;
      }
      report.done += pipeline;
    } else {
      throw new Error(`unknown mode ${mode}`);
    }
  }
}

(async () => {
  const report = { done: 0, perKey: new Array(keys).fill(0), torn: 0, hits: 0, misses: 0, stored: 0, noMemory: 0, retries: 0, deleted: 0 };
  const conns = await Promise.all(Array.from({ length: connections }, () => connect()));
  await Promise.all(conns.map((c, i) => runConnection(c, i, report)));
  for (const c of conns) c.sock.destroy();
  process.stdout.write(JSON.stringify(report));
})().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
