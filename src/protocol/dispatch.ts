/**
 * Which protocol session a new connection gets, as memcached picks it (-B, -l proto[...]):
 *
 *   ascii   → TextSession, behind AsciiAuthSession when -Y is given
 *   binary  → BinarySession (SASL when -S is given)
 *   auto    → the first byte decides for the life of the connection: 0x80 is binary,
 *             anything else text (memcached's try_read_command_negotiate); UDP always
 *
 * memcached skips -Y authentication on a negotiated text connection; here a negotiated text
 * connection authenticates like any other, so `-l proto[negotiating]:...` cannot bypass -Y.
 */
import type { Engine } from '../engine/engine';
import type { BindProtocol, Settings } from '../settings';
import { AsciiAuthSession } from './ascii-auth';
import { initAuth, type Authenticators } from './auth';
import { BinarySession } from './binary/session';
import { MAGIC_REQUEST } from './binary/wire';
import type { Output } from './output';
import { FeedStatus, type ConnectionInfo, type ProtocolSession } from './session';
import type { AdminHooks } from './text/admin';
import { TextSession } from './text/session';

/** What sessions need from the server: admin hooks plus, with -S or -Y, the authenticators. */
export interface SessionHooks extends AdminHooks {
  /** From initAuth(settings) at startup; built on first use when absent. */
  auth?: Authenticators;
}

const lazyAuth = new WeakMap<Settings, Authenticators>();

function authenticators(hooks: SessionHooks, settings: Settings): Authenticators {
  if (hooks.auth !== undefined) return hooks.auth;
  let auth = lazyAuth.get(settings);
  if (auth === undefined) {
    const r = initAuth(settings);
    if (!r.ok) throw new Error(r.message);
    auth = r.auth;
    lazyAuth.set(settings, auth);
  }
  return auth;
}

function textSession(engine: Engine, output: Output, conn: ConnectionInfo, hooks: SessionHooks,
  settings: Settings): ProtocolSession {
  const text = new TextSession(engine, output, conn, hooks);
  if (settings.authFile === null) return text;
  const file = authenticators(hooks, settings).authFile;
  if (file === null) throw new Error('-Y is set but no auth file was loaded');
  return new AsciiAuthSession(engine, output, file, text);
}

function binarySession(engine: Engine, output: Output, conn: ConnectionInfo, hooks: SessionHooks,
  settings: Settings): ProtocolSession {
  const sasl = settings.saslEnabled ? authenticators(hooks, settings).sasl : null;
  return new BinarySession(engine, output, conn, hooks, sasl);
}

/** -B auto: decide on the first byte, then hand every call to the chosen session. */
class NegotiatingSession implements ProtocolSession {
  status: FeedStatus = FeedStatus.Ok;
  closeIsError = false;
  private inner: ProtocolSession | null = null;

  constructor(
    private readonly make: (binary: boolean) => ProtocolSession,
  ) {}

  feed(buf: Buffer, start: number, end: number): number {
    if (this.inner === null) {
      if (start >= end) return 0;
      this.inner = this.make(buf[start] === MAGIC_REQUEST);
    }
    const n = this.inner.feed(buf, start, end);
    this.status = this.inner.status;
    this.closeIsError = this.inner.closeIsError === true;
    return n;
  }

  release(): void {
    this.inner?.release();
  }

  /** The session chosen on the first byte; null before any byte. */
  get chosen(): ProtocolSession | null {
    return this.inner;
  }
}

/**
 * The kind of session serving a connection: its class, or under -B auto `auto:` and the class
 * chosen behind the negotiating wrapper (a different set of objects from a fixed protocol's);
 * null while no byte has decided.
 */
export function sessionKind(session: ProtocolSession): string | null {
  if (!(session instanceof NegotiatingSession)) return session.constructor.name;
  const chosen = session.chosen;
  return chosen === null ? null : `auto:${chosen.constructor.name}`;
}

/**
 * The session for a new connection. `protocol` is the listener's own proto[...] when it has
 * one; otherwise -B (settings.bindProtocol).
 */
export function createSession(engine: Engine, output: Output, conn: ConnectionInfo, hooks: SessionHooks,
  settings: Settings, protocol: BindProtocol = settings.bindProtocol): ProtocolSession {
  // memcached's UDP ignores -B: each datagram's first byte decides (try_read_command_udp)
  switch (conn.transport === 'udp' ? 'auto' : protocol) {
    case 'ascii':
      return textSession(engine, output, conn, hooks, settings);
    case 'binary':
      return binarySession(engine, output, conn, hooks, settings);
    case 'auto':
      return new NegotiatingSession((binary) => binary
        ? binarySession(engine, output, conn, hooks, settings)
        : textSession(engine, output, conn, hooks, settings));
  }
}
