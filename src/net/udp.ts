/**
 * UDP transport (-U), framed as memcached's doc/protocol.txt "UDP protocol" describes.
 *
 * Not for: TCP or unix sockets (connection.ts, listeners.ts).
 *
 * Every datagram starts with an 8-byte frame header, big-endian:
 *
 *   0      2          4             6          8
 *   ┌──────┬──────────┬─────────────┬──────────┬──────────────────────────┐
 *   │ req  │ sequence │ total count │ reserved │ payload (text or binary) │
 *   │ id   │ number   │ of datagrams│ (0)      │                          │
 *   └──────┴──────────┴─────────────┴──────────┴──────────────────────────┘
 *
 * Requests: one datagram each (total must be 1, else dropped, as memcached does), longer than
 * the header. Replies: everything the request produced, as one message split into datagrams of
 * at most UDP_DATAGRAM_BYTES_MAX bytes including the header (memcached's
 * UDP_MAX_PAYLOAD_SIZE), with the request's id, sequence numbers 0..n-1 and n in each.
 * (memcached 1.6 frames each response object of a multi-key get as its own message, every
 * one "seq 0 of 1"; this follows the documented framing instead, which clients reassemble.)
 *
 * Each datagram gets a session of its own, released when the datagram is done: a session may
 * keep state for an incomplete request (a value still arriving), and none may cross datagrams.
 * That is one session object per datagram; UDP is off by default and not the hot path.
 *
 * Several serving threads (-t N): as memcached gives each worker thread a duplicate of its UDP
 * socket, thread 0 binds and each further thread serves a duplicate of that descriptor
 * (shareUdp, listenSharedUdp). Whichever thread the kernel wakes first reads a datagram; the
 * reply goes out from the same thread. `stats conns` lists one UDP entry per thread.
 */
import * as dgram from 'node:dgram';
import type * as net from 'node:net';
import { Output } from '../protocol/output';
import { FeedStatus, type ProtocolSession } from '../protocol/session';
import { closeDescriptor } from '../platform/descriptors';
import { duplicateFd } from '../platform/sockets';
import { ListenError, isFamilyUnavailable, type ListenTarget } from './addresses';
import { addressName } from './connection';
import { verboseLines, type NetContext } from './context';
import { listenTargets } from './listeners';
import { udpSocketFd } from './node-internals';
import type { NetConnectionInfo } from './registry';

export const UDP_HEADER_BYTES = 8;
/** memcached's UDP_MAX_PAYLOAD_SIZE: a reply datagram, header included. */
export const UDP_DATAGRAM_BYTES_MAX = 1400;
/** memcached's UDP_DATA_SIZE. */
export const UDP_DATA_BYTES_MAX = UDP_DATAGRAM_BYTES_MAX - UDP_HEADER_BYTES;
/** The header's 16-bit counters bound one reply (about 91 MB); longer replies are cut there. */
export const UDP_DATAGRAMS_PER_REPLY_MAX = 0xffff;

/** A UDP socket of thread 0 that another serving thread serves too: a duplicate descriptor. */
export interface SharedUdpSocket {
  readonly fd: number;
  readonly family: 4 | 6;
  readonly protocol: ListenTarget['protocol'];
  readonly tag: ListenTarget['tag'];
}

export class UdpEndpoint {
  readonly info: NetConnectionInfo;
  readonly socket: dgram.Socket;
  private readonly ctx: NetContext;
  private readonly output = new Output();

  constructor(ctx: NetContext, socket: dgram.Socket, target: Pick<ListenTarget, 'protocol' | 'tag'>) {
    this.ctx = ctx;
    this.socket = socket;
    const addr = socket.address();
    this.info = {
      id: ctx.registry.nextId(),
      transport: 'udp',
      peerName: addressName('udp', addr.address, addr.port),
      localName: null,
      protocol: target.protocol,
      tag: target.tag,
      lastCommandTime: ctx.registry.nowSeconds,
      stateName: 'conn_read',
    };
    socket.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => this.onDatagram(msg, rinfo));
    socket.on('error', (err: Error) => ctx.log(1, `<${this.info.id} udp error: ${err.message}`));
  }

  get address(): net.AddressInfo {
    return this.socket.address();
  }

  close(): Promise<void> {
    this.ctx.registry.removeEndpoint(this.info);
    return new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  private onDatagram(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    // memcached counts what it received before deciding to drop it.
    if (msg.length <= UDP_HEADER_BYTES) return;
    this.ctx.stats.bytes_read += msg.length;
    if (msg.readUInt16BE(4) !== 1) return;
    this.serve(msg);
    this.sendReply(msg.readUInt16BE(0), rinfo);
  }

  /**
   * Run every request in the datagram. A yield only matters between connections; a datagram
   * is bounded, so keep going. An incomplete request at the end is dropped with the session.
   */
  private serve(msg: Buffer): void {
    const session = this.ctx.factory.create(this.info, this.output);
    try {
      feedAll(session, msg, this.ctx);
    } finally {
      session.release();
      this.info.stateName = 'conn_read';
    }
  }

  private sendReply(requestId: number, rinfo: dgram.RemoteInfo): void {
    const out = this.output;
    const length = out.length;
    if (length === 0) return;
    const count = Math.min(Math.ceil(length / UDP_DATA_BYTES_MAX), UDP_DATAGRAMS_PER_REPLY_MAX);
    const dataBytes = Math.min(length, count * UDP_DATA_BYTES_MAX);
    // One buffer per reply: every send keeps its slice until the kernel has it.
    const framed = Buffer.allocUnsafe(dataBytes + count * UDP_HEADER_BYTES);
    let src = 0;
    let dst = 0;
    for (let seq = 0; seq < count; seq++) {
      const n = Math.min(UDP_DATA_BYTES_MAX, dataBytes - src);
      framed.writeUInt16BE(requestId, dst);
      framed.writeUInt16BE(seq, dst + 2);
      framed.writeUInt16BE(count, dst + 4);
      framed.writeUInt16BE(0, dst + 6);
      out.buf.copy(framed, dst + UDP_HEADER_BYTES, src, src + n);
      this.socket.send(framed, dst, n + UDP_HEADER_BYTES, rinfo.port, rinfo.address);
      src += n;
      dst += n + UDP_HEADER_BYTES;
    }
    this.ctx.stats.bytes_written += dst;
    out.reset();
  }
}

function feedAll(session: ProtocolSession, msg: Buffer, ctx: NetContext): void {
  const end = msg.length;
  let pos = UDP_HEADER_BYTES;
  while (pos < end) {
    const used = session.feed(msg, pos, end);
    if (!(used >= 0 && pos + used <= end)) throw new Error(`session consumed ${used} of ${end - pos} bytes`);
    pos += used;
    if (session.status !== FeedStatus.Yield) return;
    ctx.stats.conn_yields++;
    if (used === 0) throw new Error('session yielded without consuming');
  }
}

function bindOne(address: string, family: 4 | 6, port: number): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', ipv6Only: family === 6 });
  return new Promise<dgram.Socket>((resolve, reject) => {
    const onError = (err: Error): void => {
      socket.close();
      reject(err);
    };
    socket.once('error', onError);
    socket.bind({ address, port, exclusive: true }, () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/** Bind UDP on every target, like listenTcp; `opened` receives what was bound. */
export async function listenUdp(ctx: NetContext, opened: UdpEndpoint[]): Promise<void> {
  const { settings } = ctx;
  const { describe, groups } = await listenTargets(settings, 'UDP', settings.udpPort);
  for (const group of groups) {
    let bound = 0;
    let firstError: unknown = null;
    for (const target of group) {
      let socket: dgram.Socket;
      try {
        socket = await bindOne(target.address, target.family, target.port);
      } catch (err) {
        if (!(target.optional && isFamilyUnavailable(err))) throw new ListenError(describe, err);
        firstError ??= err;
        continue;
      }
      bound++;
      const endpoint = new UdpEndpoint(ctx, socket, target);
      ctx.registry.addEndpoint(endpoint.info);
      opened.push(endpoint);
      ctx.log(2, verboseLines.udpListening(endpoint.info.id));
    }
    if (bound === 0) throw new ListenError(describe, firstError);
  }
}

/**
 * Duplicates of thread 0's UDP sockets for one worker thread (it closes them with its
 * endpoints). Throws when a descriptor cannot be had: then no further thread is started.
 */
export function shareUdp(endpoints: readonly UdpEndpoint[]): SharedUdpSocket[] {
  const out: SharedUdpSocket[] = [];
  try {
    for (const e of endpoints) {
      const fd = udpSocketFd(e.socket);
      if (fd === null) throw new Error('the descriptor of a UDP socket is not available (Node.js internals changed)');
      out.push({ fd: duplicateFd(fd), family: e.address.family === 'IPv6' ? 6 : 4, protocol: e.info.protocol, tag: e.info.tag });
    }
  } catch (err) {
    for (const u of out) closeDescriptor(u.fd);
    throw err;
  }
  return out;
}

/** A worker thread: serve thread 0's UDP sockets through the duplicates given. */
export async function listenSharedUdp(ctx: NetContext, opened: UdpEndpoint[], shared: readonly SharedUdpSocket[]): Promise<void> {
  for (let i = 0; i < shared.length; i++) {
    const u = shared[i];
    const socket = dgram.createSocket({ type: u.family === 6 ? 'udp6' : 'udp4' });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind({ fd: u.fd }, () => {
          socket.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      for (let j = i + 1; j < shared.length; j++) closeDescriptor(shared[j].fd);
      throw new ListenError('failed to serve the UDP socket of thread 0', err);
    }
    const endpoint = new UdpEndpoint(ctx, socket, u);
    ctx.registry.addEndpoint(endpoint.info);
    opened.push(endpoint);
    ctx.log(2, verboseLines.udpListening(endpoint.info.id));
  }
}
