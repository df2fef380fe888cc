/**
 * The private Node.js fields src/net/node-internals.ts relies on, checked on this Node.js:
 * a failure here means an upgrade changed them (the server then falls back, slower).
 */
import * as net from 'node:net';
import { describe, expect, it } from 'vitest';
import { interceptAccepts, socketWithReadBuffer, type OpaqueHandle } from '../../src/net/node-internals';
import { nativeAddon } from '../../src/platform/native';

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

function exchange(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1', () => c.end(text));
    let got = '';
    c.on('data', (d) => { got += d.toString(); });
    c.on('close', () => resolve(got));
    c.on('error', reject);
  });
}

describe('interceptAccepts', () => {
  it('hands accepted connections over as bare handles, with no net.Socket or connection count on the server', async () => {
    const server = net.createServer({ pauseOnConnect: true });
    let events = 0;
    server.on('connection', (s) => { events++; s.destroy(); });
    const port = await listen(server);
    const taken: OpaqueHandle[] = [];
    expect(interceptAccepts(server, (h) => {
      taken.push(h);
      const buf = Buffer.alloc(64);
      const sock = socketWithReadBuffer(h, buf, (n) => {
        sock.write(buf.subarray(0, n).toString().toUpperCase());
        return true;
      });
      sock.on('end', () => sock.end());
      return true;
    })).toBe(true);
    expect(await exchange(port, 'hello')).toBe('HELLO');
    expect(taken).toHaveLength(1);
    expect(events).toBe(0);
    await new Promise<void>((resolve) => server.getConnections((_err, n) => { expect(n).toBe(0); resolve(); }));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it("a handle it declines gets Node's own socket and 'connection' event", async () => {
    const server = net.createServer({ pauseOnConnect: true });
    server.on('connection', (s: net.Socket) => {
      s.resume();
      s.on('data', (d) => s.end(`socket:${d.toString()}`));
    });
    const port = await listen(server);
    let offered = 0;
    expect(interceptAccepts(server, () => { offered++; return false; })).toBe(true);
    expect(await exchange(port, 'x')).toBe('socket:x');
    expect(offered).toBe(1);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** TCP_NODELAY and SO_KEEPALIVE of the first connection `server` accepts (the handle is closed). */
  async function acceptedFlags(server: net.Server, inherited: boolean): Promise<[number, number]> {
    const addon = nativeAddon();
    if (addon === null) throw new Error('the native addon is not built');
    const port = (server.address() as net.AddressInfo).port;
    let flags: [number, number] | null = null;
    interceptAccepts(server, (h) => {
      const handle = h as unknown as { fd: number; close(): void };
      flags = addon.socketFlags(handle.fd);
      handle.close();
      return true;
    }, inherited);
    await exchange(port, 'x').catch(() => '');
    for (let i = 0; i < 100 && flags === null; i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (flags === null) throw new Error('no connection was offered');
    return flags;
  }

  it.runIf(nativeAddon() !== null)("accepted sockets inherit TCP_NODELAY and SO_KEEPALIVE from the addon's listening socket, as from memcached's", async () => {
    const addon = nativeAddon()!;
    const fd = addon.tcpSocket('127.0.0.1', 0, true);
    expect(addon.socketFlags(fd)).toEqual([1, 1]);
    const server = net.createServer({ pauseOnConnect: true });
    await new Promise<void>((resolve) => server.listen({ fd }, 16, () => resolve()));
    expect(await acceptedFlags(server, true)).toEqual([1, 1]);
    // A listening socket of Node's own carries neither: each accepted one gets both set.
    const plain = net.createServer({ pauseOnConnect: true });
    await listen(plain);
    expect(await acceptedFlags(plain, false)).toEqual([1, 1]);
    const unset = net.createServer({ pauseOnConnect: true });
    await listen(unset);
    expect(await acceptedFlags(unset, true)).toEqual([0, 0]);
  });
});
