/**
 * The SASL configuration of -S, read the way memcached and Cyrus SASL find and read it:
 *
 *  - the file is `memcached.conf` (Cyrus' per-application file) in the first directory of
 *    $SASL_CONF_PATH (a colon-separated list) that has one; with SASL_CONF_PATH unset,
 *    memcached looks in /etc/sasl then /etc/sasl2 (either may hold `memcached.conf` as a
 *    file, or as a directory holding the file), then Cyrus in its own default directories
 *    (Debian's: /etc/sasl2, /etc/sasl, /usr/lib/<multiarch>/sasl2, /usr/lib/sasl2). No file
 *    found, or one that cannot be opened, means no settings: every default holds.
 *  - lines are `key: value`; blank lines and lines whose first non-blank is '#' are skipped;
 *    a key is letters, digits, '-' and '_' (compared case-insensitively) and must be
 *    followed directly by ':'; the value is the rest of the line, trimmed, and must not be
 *    empty. Any other line makes the file invalid, and Cyrus then refuses to start (memcached
 *    exits with status 1). Unknown keys are accepted and ignored; the first line of a key
 *    wins.
 *  - used here: `mech_list` (whitespace-separated, case-insensitive; names of mechanisms
 *    not implemented here are skipped, as Cyrus skips mechanisms it has no plugin for),
 *    `sasldb_path` (default /etc/sasldb2). `pwcheck_method` and `auxprop_plugin` values
 *    other than Cyrus' defaults (auxprop, sasldb) are reported: only the sasldb is read.
 *
 * Not for: the mechanisms themselves (auth.ts) or the sasldb format (sasldb.ts).
 */
import * as fs from 'node:fs';

/** The file name Cyrus builds from memcached's application name. */
export const SASL_CONF_FILE = 'memcached.conf';
/** A configuration file is a few lines; past this the rest is not read. */
export const SASL_CONF_BYTES_MAX = 64 * 1024;
/** Cyrus' default when no sasldb_path is set. */
export const SASLDB_DEFAULT_PATH = '/etc/sasldb2';
/** The mechanisms implemented, in the order Cyrus lists them when mech_list is not set. */
export const SASL_MECHANISMS_DEFAULT: readonly string[] = ['CRAM-MD5', 'PLAIN'];

/** memcached's own search when SASL_CONF_PATH is unset (sasl_defs.c's locations). */
const MEMCACHED_CONF_DIRS: readonly string[] = ['/etc/sasl', '/etc/sasl2'];
const MULTIARCH: Readonly<Record<string, string>> = {
  x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu', arm: 'arm-linux-gnueabihf', ia32: 'i386-linux-gnu',
  ppc64: 'powerpc64le-linux-gnu', s390x: 's390x-linux-gnu', riscv64: 'riscv64-linux-gnu',
};
/** Debian's libsasl2 then looks in its compiled-in path. */
function cyrusDefaultDirs(): string[] {
  const multiarch = MULTIARCH[process.arch];
  return ['/etc/sasl2', '/etc/sasl', ...(multiarch === undefined ? [] : [`/usr/lib/${multiarch}/sasl2`]), '/usr/lib/sasl2'];
}

export interface SaslConfig {
  /** The file read, or null when none was found. */
  file: string | null;
  /** Offered mechanisms, upper case, in mech_list order (repeats kept, as Cyrus lists them). */
  mechanisms: string[];
  sasldbPath: string;
  warnings: string[];
}

export type SaslConfigResult = { ok: true; config: SaslConfig } | { ok: false; message: string };

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Which memcached.conf -S reads, given the environment; null when there is none. */
export function findSaslConfig(env: NodeJS.ProcessEnv): string | null {
  const confPath = env.SASL_CONF_PATH;
  if (confPath !== undefined) {
    for (const dir of confPath.split(':')) {
      if (dir !== '' && isFile(`${dir}/${SASL_CONF_FILE}`)) return `${dir}/${SASL_CONF_FILE}`;
    }
    return null;
  }
  for (const dir of MEMCACHED_CONF_DIRS) {
    const inner = `${dir}/${SASL_CONF_FILE}/${SASL_CONF_FILE}`;
    if (isFile(inner)) return inner;
    if (isFile(`${dir}/${SASL_CONF_FILE}`)) return `${dir}/${SASL_CONF_FILE}`;
  }
  for (const dir of cyrusDefaultDirs()) {
    if (isFile(`${dir}/${SASL_CONF_FILE}`)) return `${dir}/${SASL_CONF_FILE}`;
  }
  return null;
}

const isSpace = (c: number): boolean => c === 0x20 || (c >= 0x09 && c <= 0x0d);
const isKeyByte = (c: number): boolean =>
  (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d || c === 0x5f;

/** Parse a Cyrus configuration file: key → value (first line of a key wins), or null when invalid. */
export function parseSaslConfig(text: Buffer): Map<string, string> | null {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < text.length) {
    let nl = text.indexOf(0x0a, pos);
    if (nl < 0) nl = text.length;
    const line = text.subarray(pos, nl);
    pos = nl + 1;
    let i = 0;
    while (i < line.length && isSpace(line[i])) i++;
    if (i === line.length || line[i] === 0x23) continue;
    const keyStart = i;
    while (i < line.length && isKeyByte(line[i])) i++;
    if (i === line.length || line[i] !== 0x3a) return null;
    const key = line.toString('latin1', keyStart, i).toLowerCase();
    i++;
    while (i < line.length && isSpace(line[i])) i++;
    let end = line.length;
    while (end > i && isSpace(line[end - 1])) end--;
    if (end === i) return null;
    if (!out.has(key)) out.set(key, line.toString('latin1', i, end));
  }
  return out;
}

/** Read the configuration -S uses; a file Cyrus would refuse is an error. */
export function loadSaslConfig(env: NodeJS.ProcessEnv = process.env): SaslConfigResult {
  const file = findSaslConfig(env);
  const warnings: string[] = [];
  let settings = new Map<string, string>();
  if (file !== null) {
    let text: Buffer | null = null;
    try {
      const fd = fs.openSync(file, 'r');
      try {
        const buf = Buffer.alloc(SASL_CONF_BYTES_MAX);
        text = buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0));
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      text = null; // Cyrus goes on without a file it cannot open
    }
    if (text !== null) {
      const parsed = parseSaslConfig(text);
      if (parsed === null) return { ok: false, message: `SASL: ${file}: not a valid configuration file` };
      settings = parsed;
    }
  }
  let mechanisms = [...SASL_MECHANISMS_DEFAULT];
  const mechList = settings.get('mech_list');
  if (mechList !== undefined) {
    mechanisms = [];
    for (const name of mechList.split(/[ \t\n\v\f\r]+/)) {
      const upper = name.toUpperCase();
      if (SASL_MECHANISMS_DEFAULT.includes(upper)) mechanisms.push(upper);
      else if (upper !== '') warnings.push(`SASL: mechanism ${name} in mech_list is not supported; not offered`);
    }
  }
  const pwcheck = settings.get('pwcheck_method');
  if (pwcheck !== undefined && !/(^|\s)auxprop(\s|$)/i.test(pwcheck)) {
    warnings.push(`SASL: pwcheck_method ${pwcheck} is not supported; passwords are checked against the sasldb`);
  }
  const auxprop = settings.get('auxprop_plugin');
  if (auxprop !== undefined && !/(^|\s)sasldb(\s|$)/i.test(auxprop)) {
    warnings.push(`SASL: auxprop_plugin ${auxprop} is not supported; passwords are read from the sasldb`);
  }
  return { ok: true, config: { file, mechanisms, sasldbPath: settings.get('sasldb_path') ?? SASLDB_DEFAULT_PATH, warnings } };
}
