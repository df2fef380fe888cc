/**
 * A small meta-protocol client for tests (memcached protocol.txt, "Meta Commands"): mg, ms,
 * md, ma and mn over one socket, replies parsed into status + flags (+ value).
 *
 * Requests are pipelined: each call writes its line at once and queues a waiter, replies
 * are matched to waiters in order. Quiet requests (q) get no reply on success, so a quiet
 * request resolves when a later non-quiet reply arrives (usually the `mn` that `flush()`
 * sends): if the next reply carries the quiet request's opaque (O flag) it is its reply,
 * otherwise the quiet request resolved silently (`status: 'quiet'`). Give every quiet
 * request a distinct opaque so its reply can be told apart.
 *
 * Not for: byte-exact comparison (see conformance/), the text or binary protocol.
 */

import * as net from 'node:net';
import { LOOPBACK } from './servers';

export type MetaStatus = 'VA' | 'HD' | 'EN' | 'NS' | 'EX' | 'NF' | 'MN' | 'ME' | 'ERROR' | 'CLIENT_ERROR' | 'SERVER_ERROR' | 'quiet';

export interface MetaReply {
  status: MetaStatus;
  /** Return flags in the order the server printed them: `{ c: '12', k: 'foo', W: '' }`. */
  flags: Map<string, string>;
  /** The value of a VA reply. */
  value?: Buffer;
  /** The whole status line, without CRLF (for errors and diagnostics). */
  line: string;
}

export type FlagInput = string | Array<string | undefined | false>;

interface Waiter {
  quiet: boolean;
  opaque: string | undefined;
  resolve: (reply: MetaReply) => void;
  reject: (error: Error) => void;
}

const statuses = new Set(['VA', 'HD', 'EN', 'NS', 'EX', 'NF', 'MN', 'ME']);

/** Parses one meta reply from `buf` at `at`; returns it and the offset after it, or null if incomplete. */
export function parseMetaReply(buf: Buffer, at = 0): { reply: MetaReply; next: number } | null {
  const eol = buf.indexOf('\r\n', at, 'latin1');
  if (eol < 0) return null;
  const line = buf.toString('latin1', at, eol);
  const words = line.split(' ');
  const head = words[0];
  if (!statuses.has(head)) {
    const status = head === 'ERROR' || head === 'CLIENT_ERROR' || head === 'SERVER_ERROR' ? head : 'ERROR';
    return { reply: { status, flags: new Map(), line }, next: eol + 2 };
  }
  let flagWords = words.slice(1);
  let value: Buffer | undefined;
  let next = eol + 2;
  if (head === 'VA') {
    const size = Number(words[1]);
    if (buf.length < next + size + 2) return null;
    value = Buffer.from(buf.subarray(next, next + size));
    next += size + 2;
    flagWords = words.slice(2);
  } else if (head === 'ME') {
    flagWords = [];
  }
  const flags = new Map<string, string>();
  for (const word of flagWords) if (word !== '') flags.set(word[0], word.slice(1));
  return { reply: { status: head as MetaStatus, flags, value, line }, next };
}

export class MetaClient {
  private buffered = Buffer.alloc(0);
  private readonly waiters: Waiter[] = [];
  private failure: Error | undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
      this.drain();
    });
    const fail = (error: Error): void => {
      this.failure ??= error;
      for (const w of this.waiters.splice(0)) w.reject(error);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed')));
  }

  static async connect(port: number, host = LOOPBACK): Promise<MetaClient> {
    return await new Promise<MetaClient>((resolve, reject) => {
      const socket = net.connect({ port, host });
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        resolve(new MetaClient(socket));
      });
      socket.once('error', reject);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private drain(): void {
    let at = 0;
    for (;;) {
      const parsed = parseMetaReply(this.buffered, at);
      if (parsed === null) break;
      at = parsed.next;
      this.deliver(parsed.reply);
    }
    this.buffered = this.buffered.subarray(at);
  }

  private deliver(reply: MetaReply): void {
    const replyOpaque = reply.flags.get('O');
    // Quiet requests before this reply either got it (matching opaque) or succeeded silently.
    while (this.waiters.length > 0 && this.waiters[0].quiet) {
      const w = this.waiters.shift()!;
      if (w.opaque !== undefined && replyOpaque === w.opaque) {
        w.resolve(reply);
        return;
      }
      w.resolve({ status: 'quiet', flags: new Map(), line: '' });
    }
    const w = this.waiters.shift();
    if (w === undefined) throw new Error(`unsolicited meta reply ${JSON.stringify(reply.line)}`);
    w.resolve(reply);
  }

  /** Sends one raw meta request (line plus optional data) and queues its reply. */
  request(line: string, data?: Buffer | string): Promise<MetaReply> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const words = line.split(' ');
    const quiet = words.slice(2).includes('q') || (words[0] === 'ms' && words.slice(3).includes('q'));
    const opaqueWord = words.find((w, i) => i > 0 && w.startsWith('O'));
    const promise = new Promise<MetaReply>((resolve, reject) => {
      this.waiters.push({ quiet, opaque: opaqueWord?.slice(1), resolve, reject });
    });
    const parts = [Buffer.from(line + '\r\n', 'latin1')];
    if (data !== undefined) parts.push(typeof data === 'string' ? Buffer.from(data, 'latin1') : data, Buffer.from('\r\n'));
    this.socket.write(Buffer.concat(parts));
    return promise;
  }

  private static flagText(flags: FlagInput | undefined): string {
    if (flags === undefined) return '';
    const list = typeof flags === 'string' ? flags.split(' ') : flags;
    const words = list.filter((f): f is string => typeof f === 'string' && f !== '');
    return words.length === 0 ? '' : ' ' + words.join(' ');
  }

  get(key: string, flags: FlagInput = 'v'): Promise<MetaReply> {
    return this.request(`mg ${key}${MetaClient.flagText(flags)}`);
  }

  set(key: string, value: Buffer | string, flags?: FlagInput): Promise<MetaReply> {
    const data = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
    return this.request(`ms ${key} ${data.length}${MetaClient.flagText(flags)}`, data);
  }

  delete(key: string, flags?: FlagInput): Promise<MetaReply> {
    return this.request(`md ${key}${MetaClient.flagText(flags)}`);
  }

  arithmetic(key: string, flags?: FlagInput): Promise<MetaReply> {
    return this.request(`ma ${key}${MetaClient.flagText(flags)}`);
  }

  /** Sends `mn`: resolves once every earlier (quiet or not) request is answered. */
  noop(): Promise<MetaReply> {
    return this.request('mn');
  }

  /** Pipelines quiet gets for `keys` (opaque = index) and an mn; returns hits by key. */
  async getMany(keys: readonly string[], flags: FlagInput = ['v', 'k']): Promise<Map<string, MetaReply>> {
    const extra = typeof flags === 'string' ? flags.split(' ') : flags;
    const pending = keys.map((key, i) => this.get(key, [...extra, 'q', `O${i}`]));
    await this.noop();
    const replies = await Promise.all(pending);
    const hits = new Map<string, MetaReply>();
    replies.forEach((reply, i) => {
      if (reply.status !== 'quiet') hits.set(keys[i], reply);
    });
    return hits;
  }
}
