/**
 * A read-only reader of Cyrus SASL's password database (sasldb), as `saslpasswd2` writes it
 * on Debian: a Berkeley DB hash file. Only what the lookup of a user's `userPassword`
 * property needs is read; nothing is ever written.
 *
 * Layout (Berkeley DB hash, version 8 or 9 of its format):
 *  - page 0 is the meta page: magic 0x061561 at byte 12 (its byte order gives the file's),
 *    format version at 16, page size at 20, encryption algorithm at 24, flags at 26, last
 *    page number at 32;
 *  - hash pages (type 13, or 2 for the older unsorted kind) start with a 26-byte header
 *    (lsn 8, pgno 4, prev 4, next 4, entries u16, free-space offset u16, level u8, type u8),
 *    then `entries` u16 offsets of items that are stored from the end of the page down.
 *    Items alternate key, data; an item runs from its offset to the previous item's (the
 *    page end for the first). An item's first byte is its kind: 1 the bytes follow; 3 they
 *    live on a chain of overflow pages (type 7, `free-space offset` is the bytes on that
 *    page, which start after the header), the item holding the first page (u32 at 4) and
 *    the total length (u32 at 8); a chain that comes back to a page is corrupt; other kinds (duplicate sets) are not used by sasldb.
 *  - keys are `user NUL realm NUL property`; the `userPassword` property is the password in
 *    clear, as `saslpasswd2 -p` stores it.
 *
 * Every hash page is read (rather than walking buckets by Berkeley DB's hash function): a
 * page of a deleted bucket chain is freed (its type becomes 0), so the live pages are the
 * hash pages. The file is read whole (at most SASLDB_BYTES_MAX), parsed once and kept while
 * its size, mtime and inode stay the same; Cyrus opens it per lookup, so a change made with
 * saslpasswd2 counts from the next attempt. A file that is not such a database, is
 * encrypted or checksummed, or is corrupt reads as holding no users: the parse is bounded
 * by the file size and SASLDB_OVERFLOW_PAGES_MAX, never throws and never loops.
 *
 * Not for: other sasldb back ends (gdbm, lmdb) — those files read as empty.
 */
import * as fs from 'node:fs';

/** Larger files are not read (a sasldb holds a few records per user: kilobytes). */
export const SASLDB_BYTES_MAX = 16 * 1024 * 1024;
/** An item (key or password) longer than this is skipped. */
export const SASLDB_ITEM_BYTES_MAX = 64 * 1024;
/** Overflow pages followed in one parse, all items together; past it the file is corrupt. */
export const SASLDB_OVERFLOW_PAGES_MAX = 4096;

const HASH_MAGIC = 0x061561;
/** Berkeley DB 4.6+ writes version 9; 4.x before that 8 (both share the page layout read here). */
const HASH_VERSIONS: readonly number[] = [8, 9];
const PAGE_BYTES_MIN = 512;
const PAGE_BYTES_MAX = 64 * 1024;
const PAGE_HEADER_BYTES = 26;
const META_MAGIC_AT = 12;
const META_VERSION_AT = 16;
const META_PAGESIZE_AT = 20;
const META_ENCRYPT_AT = 24;
const META_FLAGS_AT = 26;
const META_LAST_PGNO_AT = 32;
/** DBMETA_CHKSUM: pages carry a checksum after the header (Cyrus never asks for it). */
const META_FLAG_CHECKSUM = 0x01;
const PAGE_NEXT_AT = 16;
const PAGE_ENTRIES_AT = 20;
const PAGE_FREE_AT = 22;
const PAGE_TYPE_AT = 25;
const P_HASH_UNSORTED = 2;
const P_OVERFLOW = 7;
const P_HASH = 13;
const H_KEYDATA = 1;
const H_OFFPAGE = 3;
const H_OFFPAGE_BYTES = 12;
const H_OFFPAGE_PGNO_AT = 4;
const H_OFFPAGE_TLEN_AT = 8;

const PASSWORD_PROPERTY = Buffer.from('userPassword', 'latin1');

/** `user NUL realm` → the cleartext password. */
export type SasldbPasswords = Map<string, Buffer>;

/** The lookup key of a user in a realm. */
export function sasldbKey(user: string, realm: string): string {
  return `${user}\0${realm}`;
}

class Corrupt extends Error {}

/**
 * The `userPassword` records of a Berkeley DB hash sasldb held in `file`, or null when it is
 * not one this reader understands, or is corrupt.
 */
export function parseSasldb(file: Buffer): SasldbPasswords | null {
  try {
    return parse(file);
  } catch (e) {
    if (e instanceof Corrupt) return null;
    throw e;
  }
}

function parse(file: Buffer): SasldbPasswords | null {
  if (file.length < PAGE_BYTES_MIN) return null;
  let le: boolean;
  if (file.readUInt32LE(META_MAGIC_AT) === HASH_MAGIC) le = true;
  else if (file.readUInt32BE(META_MAGIC_AT) === HASH_MAGIC) le = false;
  else return null;
  const u32 = (at: number): number => (le ? file.readUInt32LE(at) : file.readUInt32BE(at));
  const u16 = (at: number): number => (le ? file.readUInt16LE(at) : file.readUInt16BE(at));
  if (!HASH_VERSIONS.includes(u32(META_VERSION_AT))) return null;
  const pageSize = u32(META_PAGESIZE_AT);
  if (pageSize < PAGE_BYTES_MIN || pageSize > PAGE_BYTES_MAX || (pageSize & (pageSize - 1)) !== 0) return null;
  if (file[META_ENCRYPT_AT] !== 0 || (file[META_FLAGS_AT] & META_FLAG_CHECKSUM) !== 0) return null;
  const pagesInFile = Math.floor(file.length / pageSize);
  const lastPage = Math.min(u32(META_LAST_PGNO_AT), pagesInFile - 1);

  let overflowBudget = SASLDB_OVERFLOW_PAGES_MAX;
  /** An item's bytes, or null when it is of a kind sasldb does not use or too long. */
  const item = (start: number, end: number): Buffer | null => {
    if (end - start < 1) throw new Corrupt();
    const kind = file[start];
    if (kind === H_KEYDATA) return end - start - 1 > SASLDB_ITEM_BYTES_MAX ? null : file.subarray(start + 1, end);
    if (kind !== H_OFFPAGE) return null;
    if (end - start < H_OFFPAGE_BYTES) throw new Corrupt();
    let pgno = u32(start + H_OFFPAGE_PGNO_AT);
    const total = u32(start + H_OFFPAGE_TLEN_AT);
    if (total > SASLDB_ITEM_BYTES_MAX) return null;
    const out = Buffer.alloc(total);
    const seen = new Set<number>();
    let have = 0;
    while (have < total) {
      if (--overflowBudget < 0 || pgno === 0 || pgno > lastPage || seen.has(pgno)) throw new Corrupt();
      seen.add(pgno);
      const page = pgno * pageSize;
      if (file[page + PAGE_TYPE_AT] !== P_OVERFLOW) throw new Corrupt();
      const len = u16(page + PAGE_FREE_AT);
      if (len === 0 || len > pageSize - PAGE_HEADER_BYTES || len > total - have) throw new Corrupt();
      file.copy(out, have, page + PAGE_HEADER_BYTES, page + PAGE_HEADER_BYTES + len);
      have += len;
      pgno = u32(page + PAGE_NEXT_AT);
    }
    return out;
  };

  const passwords: SasldbPasswords = new Map();
  for (let pgno = 1; pgno <= lastPage; pgno++) {
    const page = pgno * pageSize;
    const type = file[page + PAGE_TYPE_AT];
    if (type !== P_HASH && type !== P_HASH_UNSORTED) continue;
    const entries = u16(page + PAGE_ENTRIES_AT);
    const itemsFrom = PAGE_HEADER_BYTES + 2 * entries;
    if (entries % 2 !== 0 || itemsFrom > pageSize) throw new Corrupt();
    let prev = pageSize;
    const bounds = (i: number): [number, number] => {
      const at = u16(page + PAGE_HEADER_BYTES + 2 * i);
      if (at < itemsFrom || at >= prev) throw new Corrupt();
      const r: [number, number] = [page + at, page + prev];
      prev = at;
      return r;
    };
    for (let i = 0; i < entries; i += 2) {
      const [ks, ke] = bounds(i);
      const [ds, de] = bounds(i + 1);
      const key = item(ks, ke);
      if (key === null) continue;
      const nul1 = key.indexOf(0);
      const nul2 = nul1 < 0 ? -1 : key.indexOf(0, nul1 + 1);
      if (nul2 < 0 || !key.subarray(nul2 + 1).equals(PASSWORD_PROPERTY)) continue;
      const data = item(ds, de);
      if (data === null) continue;
      const name = sasldbKey(key.toString('latin1', 0, nul1), key.toString('latin1', nul1 + 1, nul2));
      if (!passwords.has(name)) passwords.set(name, Buffer.from(data));
    }
  }
  return passwords;
}

interface Cached {
  path: string;
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  passwords: SasldbPasswords;
}

const EMPTY: SasldbPasswords = new Map();

/**
 * The sasldb at a path, parsed when it changed since the last lookup. A missing, unreadable,
 * oversized or corrupt file holds no users.
 */
export class Sasldb {
  private cached: Cached | null = null;

  constructor(readonly path: string) {}

  /** The cleartext password of `user` in `realm`, or null. */
  password(user: string, realm: string): Buffer | null {
    return this.passwords().get(sasldbKey(user, realm)) ?? null;
  }

  passwords(): SasldbPasswords {
    let fd: number;
    try {
      fd = fs.openSync(this.path, 'r');
    } catch {
      this.cached = null;
      return EMPTY;
    }
    try {
      const st = fs.fstatSync(fd, { bigint: true });
      const c = this.cached;
      if (c !== null && c.dev === st.dev && c.ino === st.ino && c.size === st.size && c.mtimeNs === st.mtimeNs &&
        c.ctimeNs === st.ctimeNs) {
        return c.passwords;
      }
      let passwords = EMPTY;
      if (st.isFile() && st.size <= BigInt(SASLDB_BYTES_MAX)) {
        const buf = Buffer.alloc(Number(st.size));
        let n = 0;
        while (n < buf.length) {
          const got = fs.readSync(fd, buf, n, buf.length - n, n);
          if (got === 0) break;
          n += got;
        }
        passwords = parseSasldb(buf.subarray(0, n)) ?? EMPTY;
      }
      this.cached = { path: this.path, dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, passwords };
      return passwords;
    } catch {
      this.cached = null;
      return EMPTY;
    } finally {
      fs.closeSync(fd);
    }
  }
}
