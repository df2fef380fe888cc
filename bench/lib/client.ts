/**
 * A minimal memcached text-protocol client for the harness: `version` (readiness probe),
 * `stats`, and a pipelined filler of distinct keys (used when the load generator cannot set
 * a chosen key range itself, as memcaslap cannot).
 *
 * Not for: load generation with measured latencies (memtier_benchmark and memcaslap do that).
 */
import * as net from 'node:net';

export const LOOPBACK = '127.0.0.1';
const CRLF = Buffer.from('\r\n', 'latin1');

/** Send `request` and collect the reply until `isComplete(reply)`, bounded by `timeoutMs`. */
export async function exchange(
  port: number,
  request: string,
  isComplete: (reply: string) => boolean,
  timeoutMs: number,
): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    const socket = net.connect({ host: LOOPBACK, port });
    let reply = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete reply to ${JSON.stringify(request.trim())} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('latin1');
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk: string) => {
      reply += chunk;
      if (isComplete(reply)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(reply);
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      if (!isComplete(reply)) reject(new Error(`connection closed before a complete reply to ${JSON.stringify(request.trim())}`));
    });
  });
}

/** The server's `version` reply ("1.6.18"), or an error if it does not answer. */
export async function version(port: number, timeoutMs = 1_000): Promise<string> {
  const reply = await exchange(port, 'version\r\n', (r) => r.includes('\r\n'), timeoutMs);
  const m = /^VERSION (\S+)/.exec(reply);
  if (m === null) throw new Error(`unexpected version reply ${JSON.stringify(reply)}`);
  return m[1];
}

/** `stats` as a name → value map (values kept as strings). */
export async function stats(port: number, timeoutMs = 3_000): Promise<Record<string, string>> {
  const reply = await exchange(port, 'stats\r\n', (r) => r.endsWith('END\r\n') || /^(SERVER_|CLIENT_)?ERROR/m.test(r), timeoutMs);
  const out: Record<string, string> = {};
  for (const line of reply.split('\r\n')) {
    const m = /^STAT (\S+) (.*)$/.exec(line);
    if (m !== null) out[m[1]] = m[2];
  }
  if (Object.keys(out).length === 0) throw new Error(`unexpected stats reply ${JSON.stringify(reply.slice(0, 200))}`);
  return out;
}

export interface FillSpec {
  port: number;
  keyPrefix: string;
  keyFirst: number;
  keyCount: number;
  valueBytes: number;
  connections: number;
  /** Sets written per batch before waiting for their replies. */
  batch: number;
  timeoutMs: number;
}

export interface FillResult {
  sets: number;
  stored: number;
  /** Replies other than STORED (SERVER_ERROR out of memory, ...). */
  failed: number;
  seconds: number;
}

/**
 * Set keys `<prefix><first>` .. `<prefix><first+count-1>` once each, spread over several
 * connections, `batch` pipelined sets at a time.
 */
export async function fill(spec: FillSpec): Promise<FillResult> {
  const started = process.hrtime.bigint();
  const value = Buffer.alloc(spec.valueBytes, 0x78);
  let next = spec.keyFirst;
  const end = spec.keyFirst + spec.keyCount;
  let stored = 0;
  let failed = 0;
  const deadline = Date.now() + spec.timeoutMs;

  const worker = async (): Promise<void> => {
    const socket = net.connect({ host: LOOPBACK, port: spec.port });
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    let pending = '';
    let waiters: (() => void) | null = null;
    let failure: Error | null = null;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      pending += chunk;
      if (waiters !== null) waiters();
    });
    socket.on('error', (err) => {
      failure = err;
      if (waiters !== null) waiters();
    });
    try {
      while (next < end) {
        if (Date.now() > deadline) throw new Error(`fill did not finish within ${spec.timeoutMs} ms`);
        const first = next;
        const n = Math.min(spec.batch, end - first);
        next += n;
        const parts: Buffer[] = [];
        for (let k = first; k < first + n; k++) {
          parts.push(Buffer.from(`set ${spec.keyPrefix}${k} 0 0 ${spec.valueBytes}\r\n`, 'latin1'), value, CRLF);
        }
        socket.write(Buffer.concat(parts));
        let lines = 0;
        while (lines < n) {
          const nl = pending.indexOf('\r\n');
          if (nl >= 0) {
            if (pending.startsWith('STORED')) stored++;
            else failed++;
            pending = pending.slice(nl + 2);
            lines++;
            continue;
          }
          if (failure !== null) throw failure;
          await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error('fill: no reply within 10 s')), 10_000);
            waiters = () => {
              clearTimeout(timer);
              waiters = null;
              resolve();
            };
          });
        }
      }
    } finally {
      socket.destroy();
    }
  };

  await Promise.all(Array.from({ length: spec.connections }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { sets: spec.keyCount, stored, failed, seconds };
}

