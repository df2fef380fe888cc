/**
 * Engine-level test helpers: an Engine in-process (no server, no timers), and small wrappers
 * that call it the way the protocol sessions do (src/protocol/text/session.ts, meta.ts,
 * binary/session.ts) and turn its typed results into words that read well in a failed
 * assertion.
 *
 * Time: the engine's clock is never started here, so `now` only moves when a test sets it
 * (`at(e, t)`); client exptimes are turned into server time with the engine's own
 * `clock.realtime`, as the protocols do.
 */
import {
  DeleteResult, DeltaResult, Engine, MetaDeleteResult, MetaRequest, StoreMode, StoreResult,
} from '../../src/engine/engine';
import { AllocFailure, ItemView, Proto } from '../../src/engine/item-view';
import { generalStats } from '../../src/engine/stats';
import { ServerStats } from '../../src/metrics/stats';
import { hashKey } from '../../src/store/hash';
import { defaultSettings, type Settings } from '../../src/settings';

/** The server time (seconds) every engine made here starts at. */
export const T0 = 1000;

export function makeEngine(over: Partial<Settings> = {}): Engine {
  const e = new Engine({ ...defaultSettings(), ...over }, new ServerStats());
  e.clock.now = T0;
  return e;
}

/** Move the engine's clock to server time `t`. */
export function at(e: Engine, t: number): void {
  e.clock.now = t;
}

export const b = (s: string): Buffer => Buffer.from(s, 'latin1');

export type StoreWord = 'STORED' | 'NOT_STORED' | 'EXISTS' | 'NOT_FOUND' | 'TOO_LARGE' | 'NO_MEMORY';
const STORE_WORDS: Record<StoreResult, StoreWord> = {
  [StoreResult.Stored]: 'STORED',
  [StoreResult.NotStored]: 'NOT_STORED',
  [StoreResult.Exists]: 'EXISTS',
  [StoreResult.NotFound]: 'NOT_FOUND',
};

export interface StoreOpts {
  flags?: number;
  /** Server-relative exptime (already through clock.realtime); 0 = never. */
  exptime?: number;
  /** The CAS the client gives (0 = none). */
  casIn?: number;
  proto?: Proto;
  /** meta ms I. */
  setStale?: boolean;
  /** meta E: the CAS the stored item gets. */
  casIdIn?: number;
  /** Mode used to allocate (the binary protocol allocates a set, then commits a CAS). */
  allocMode?: StoreMode;
}

export interface StoreOutcome {
  result: StoreWord;
  /** v.cas after the store (the new item's CAS on STORED, else 0). */
  cas: number;
  /** Merged size after append/prepend (-1 otherwise). */
  storedBytes: number;
}

/** A storage command as a session runs it: allocForStore, write the value, commitStore. */
export function store(e: Engine, mode: StoreMode, key: string | Buffer, value: string | Buffer,
  o: StoreOpts = {}): StoreOutcome {
  const k = typeof key === 'string' ? b(key) : key;
  const val = typeof value === 'string' ? b(value) : value;
  const v = new ItemView(o.proto ?? Proto.Text);
  const handle = e.allocForStore(v, o.allocMode ?? mode, k, 0, k.length, o.flags ?? 0, o.exptime ?? 0, val.length);
  if (handle === 0) {
    return { result: v.failure === AllocFailure.TooLarge ? 'TOO_LARGE' : 'NO_MEMORY', cas: 0, storedBytes: -1 };
  }
  e.writeValue(handle, 0, val, 0, val.length);
  const r = e.commitStore(v, mode, handle, o.casIn ?? 0, o.setStale ?? false, o.casIdIn ?? -1);
  return { result: STORE_WORDS[r], cas: v.cas, storedBytes: v.storedBytes };
}

export const set = (e: Engine, key: string, value: string | Buffer, o: StoreOpts = {}): StoreOutcome =>
  store(e, StoreMode.Set, key, value, o);

/** What a get hands its sink, copied out. */
export interface Got {
  value: Buffer;
  flags: number;
  cas: number;
  exptime: number;
  lastAccess: number;
  fetched: boolean;
  stale: boolean;
  tokenSent: boolean;
  won: boolean;
  created: boolean;
  onDisk: boolean;
  nbytes: number;
}

function copyOut(v: ItemView, withValue = true): Got {
  let value = Buffer.alloc(0);
  if (withValue && !v.onDisk) {
    value = Buffer.alloc(v.nbytes);
    v.copyValue(value, 0);
  }
  return {
    value, flags: v.flags, cas: v.cas, exptime: v.exptime, lastAccess: v.lastAccess, fetched: v.fetched,
    stale: v.stale, tokenSent: v.tokenSent, won: v.won, created: v.created, onDisk: v.onDisk, nbytes: v.nbytes,
  };
}

/** get (text/binary): the item as the sink saw it, or null on a miss. */
export function get(e: Engine, key: string, proto = Proto.Text): Got | null {
  const k = b(key);
  let out: Got | null = null;
  const hit = e.get(new ItemView(proto), k, 0, k.length, { item: (v) => { out = copyOut(v); } });
  if (hit !== (out !== null)) throw new Error('get: result and sink disagree');
  return out;
}

/** The value as a string, or null on a miss (counts as a get). */
export function value(e: Engine, key: string): string | null {
  const g = get(e, key);
  return g === null ? null : g.value.toString('latin1');
}

/** gat: fetch and set a server-relative exptime. */
export function gat(e: Engine, key: string, exptime: number): Got | null {
  const k = b(key);
  let out: Got | null = null;
  e.getAndTouch(new ItemView(), k, 0, k.length, exptime, { item: (v) => { out = copyOut(v); } });
  return out;
}

export function touch(e: Engine, key: string, exptime: number): boolean {
  const k = b(key);
  return e.touch(new ItemView(), k, 0, k.length, exptime);
}

const DELETE_WORDS = ['DELETED', 'NOT_FOUND', 'EXISTS'] as const;
export function del(e: Engine, key: string, casIn = 0, proto = Proto.Text): (typeof DELETE_WORDS)[number] {
  const k = b(key);
  return DELETE_WORDS[e.delete(new ItemView(proto), k, 0, k.length, casIn) as DeleteResult];
}

const DELTA_WORDS = ['OK', 'NOT_FOUND', 'NON_NUMERIC', 'NO_MEMORY', 'CAS_MISMATCH', 'NOT_STORED', 'CREATE_NO_MEMORY'] as const;
export type DeltaWord = (typeof DELTA_WORDS)[number];
export const deltaWord = (r: DeltaResult): DeltaWord => DELTA_WORDS[r];

export interface DeltaOutcome {
  result: DeltaWord;
  value: bigint;
  cas: number;
  copied: boolean;
}

/** The new value of an incr/decr: a number when it was computed without bigints. */
function resultOf(v: ItemView): bigint {
  return v.deltaSmall >= 0 ? BigInt(v.deltaSmall) : v.delta;
}

/** incr/decr as the text protocol runs it (no held items unless given). */
export function incr(e: Engine, key: string, delta: bigint | number, o: { decr?: boolean; casIn?: number;
  held?: { isHeld(ref: number, cas: number): boolean } | null; proto?: Proto } = {}): DeltaOutcome {
  const k = b(key);
  const v = new ItemView(o.proto ?? Proto.Text);
  // A number delta takes the engine's number path (which falls back to bigints past 2^53), a bigint the exact one.
  const r = typeof delta === 'number'
    ? e.incrDecrSmall(v, k, 0, k.length, !o.decr, delta, o.casIn ?? 0, o.held ?? null)
    : e.incrDecr(v, k, 0, k.length, !o.decr, delta, o.casIn ?? 0, o.held ?? null);
  return { result: DELTA_WORDS[r], value: r === DeltaResult.Ok ? resultOf(v) : -1n, cas: r === DeltaResult.Ok ? v.cas : 0,
    copied: v.copied };
}

export function decr(e: Engine, key: string, delta: bigint | number): DeltaOutcome {
  return incr(e, key, delta, { decr: true });
}

/** A fresh MetaRequest with fields set (flag positions: the order the flags came in). */
export function metaReq(fields: Partial<MetaRequest> = {}): MetaRequest {
  const r = new MetaRequest();
  r.reset();
  Object.assign(r, fields);
  return r;
}

/** mg: the item as the sink saw it (won/created set), or null on a miss. */
export function metaGet(e: Engine, key: string, req: MetaRequest): Got | null {
  const k = b(key);
  let out: Got | null = null;
  const hit = e.metaGet(new ItemView(Proto.Meta), k, 0, k.length, req, { item: (v) => { out = copyOut(v); } });
  if (hit !== (out !== null)) throw new Error('metaGet: result and sink disagree');
  return out;
}

const MD_WORDS = ['HD', 'NF', 'EX', 'NO_MEMORY'] as const;
export function metaDelete(e: Engine, key: string, req: MetaRequest): (typeof MD_WORDS)[number] {
  const k = b(key);
  return MD_WORDS[e.metaDelete(new ItemView(Proto.Meta), k, 0, k.length, req) as MetaDeleteResult];
}

export interface MetaDeltaOutcome extends DeltaOutcome {
  created: boolean;
  exptime: number;
}

export function metaArith(e: Engine, key: string, req: MetaRequest, incrMode = true): MetaDeltaOutcome {
  const k = b(key);
  const v = new ItemView(Proto.Meta);
  const r = e.metaArithmetic(v, k, 0, k.length, incrMode, req, null);
  const ok = r === DeltaResult.Ok;
  return { result: DELTA_WORDS[r], value: ok ? resultOf(v) : -1n, cas: ok ? v.cas : 0, copied: v.copied,
    created: v.created, exptime: ok ? v.exptime : -1 };
}

/** `stats` as a name -> number map, rendered by the engine's stats module. */
export function stats(e: Engine): Record<string, number> {
  const out: Record<string, number> = {};
  generalStats({ engine: e, startedUnixSeconds: 0, connections: () => [], acceptingConnections: () => true },
    (k, v) => void (out[k] = Number(v)));
  return out;
}

/** Just the counters named, for exact comparisons with toEqual. */
export function pick(e: Engine, names: string[]): Record<string, number> {
  const all = stats(e);
  const out: Record<string, number> = {};
  for (const n of names) {
    if (!(n in all)) throw new Error(`no stat named ${n}`);
    out[n] = all[n];
  }
  return out;
}

/**
 * Is an item with this key in the hash index? No counting, no bump and no lazy expiry: an
 * expired item not yet reclaimed still answers true.
 */
export function linked(e: Engine, key: string): boolean {
  const k = b(key);
  return e.items.index.find(hashKey(k, 0, k.length), k, 0, k.length) !== 0;
}

/** The stored exptime of a live key (no counting, no bump), or null. */
export function exptimeOf(e: Engine, key: string): number | null {
  const k = b(key);
  const ref = e.peek(k, 0, k.length);
  return ref === 0 ? null : e.items.exptime(ref);
}
