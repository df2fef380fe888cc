/**
 * memcached 1.6's command line, parsed into Settings.
 *
 * What it is for: turning argv into validated Settings, or into the exit (code and text) that
 * memcached would produce, without touching the process: no output, no process.exit. The
 * caller prints `warnings` and acts on the result.
 * What it is not for: acting on the settings (pid file, daemon, user switch: see process.ts).
 *
 * commander tokenizes argv (short and long names, clusters such as -vvv or -dv, attached
 * values such as -p11211, missing arguments, unknown options). Every occurrence is then
 * applied in argv order, as memcached's getopt loop does, so a later flag overrides an earlier
 * one and the first bad value is the one reported. Relations between settings are checked
 * afterwards, in memcached's order.
 *
 * Exit codes follow memcached: 1 for a bad value of one option (its getopt loop returns 1),
 * 64 (EX_USAGE) for relations between options and for what memcached-ts does not implement.
 */

import { HASH_POWER_LIMIT } from '../store/hash';
import { CLASSES_MAX, PAGES_MAX } from '../store/slabs';
import { PREFETCH_KEYS_MAX } from '../store/items';
import { BUCKET_NAMES } from '../extstore/extstore';
import { isIPv6 } from 'node:net';
import { Command, CommanderError, Option } from 'commander';
import {
  BindProtocol, defaultSettings, ListenerSpec, ListenerTls, LOOP_YIELD_VALUES, MetricsListen, TCP_ACCEPT_VALUES, MIB, Settings, TlsVerifyMode, TlsVersionName, WARMUP_MS_MAX,
} from '../settings';
import { helpText, licenseText, PROGRAM_NAME, versionText } from './help';

export type ParseResult =
  | { kind: 'run'; settings: Settings; warnings: string[] }
  | { kind: 'exit'; code: number; stdout: string; stderr: string };

/** sysexits.h, as memcached uses them. */
export const EXIT_FAILURE = 1;
export const EX_USAGE = 64;
export const EX_NOUSER = 67;
export const EX_OSERR = 71;

const KIB = 1024;
const INT32_MAX = 2 ** 31 - 1;
const PORT_MAX = 65535;
/** memcached's ITEM_SIZE_MAX_LOWER_LIMIT and ITEM_SIZE_MAX_UPPER_LIMIT. */
const ITEM_SIZE_MIN_BYTES = 1 * KIB;
const ITEM_SIZE_MAX_BYTES = 1024 * MIB;
/** No bound in memcached; 1 TiB of cache is far beyond what one Node.js process can hold. */
/**
 * The most item memory the store can address: 32-bit item references name at most PAGES_MAX
 * pages of 1 MiB, and the arena keeps one page per class beyond -m (src/store/slabs.ts).
 * Refused above, rather than silently capped.
 */
const MEMORY_LIMIT_MEGABYTES_MAX = PAGES_MAX - CLASSES_MAX;
/** Linux's default fs.nr_open: more connections than this cannot have descriptors anyway. */
const CONNECTIONS_MAX = 1024 * 1024;
/** memcached warns above 64 threads and has no bound; ours are not real threads yet. */
const THREADS_WARN_ABOVE = 64;
const THREADS_MAX = 1024;
/** sockaddr_un.sun_path holds 108 bytes including the terminating NUL. */
const SOCKET_PATH_BYTES_MAX = 107;
/** No bound in memcached; each listener is a socket, so keep the count sane. */
const LISTENERS_MAX = 256;
/** The longest DNS name; IPv6 literals are far shorter. */
const HOST_BYTES_MAX = 253;
/** memcached packs listener tags into a uint64_t. */
const TAG_BYTES_MAX = 8;

/** Thrown while parsing; becomes an 'exit' result. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_FAILURE,
  ) {
    super(message);
  }
}

/** One getopt option of memcached: the table commander is built from. */
export interface OptionSpec {
  short: string;
  /** memcached's getopt_long name; null where it has none (-D). */
  long: string | null;
  /** Placeholder of the value; null for a flag. */
  valueName: string | null;
}

export const OPTION_SPECS: readonly OptionSpec[] = [
  { short: 'a', long: 'unix-mask', valueName: 'mask' },
  { short: 'A', long: 'enable-shutdown', valueName: null },
  { short: 'Z', long: 'enable-ssl', valueName: null },
  { short: 'p', long: 'port', valueName: 'num' },
  { short: 's', long: 'unix-socket', valueName: 'file' },
  { short: 'U', long: 'udp-port', valueName: 'num' },
  { short: 'm', long: 'memory-limit', valueName: 'num' },
  { short: 'M', long: 'disable-evictions', valueName: null },
  { short: 'c', long: 'conn-limit', valueName: 'num' },
  { short: 'k', long: 'lock-memory', valueName: null },
  { short: 'h', long: 'help', valueName: null },
  { short: 'i', long: 'license', valueName: null },
  { short: 'V', long: 'version', valueName: null },
  { short: 'r', long: 'enable-coredumps', valueName: null },
  { short: 'v', long: 'verbose', valueName: null },
  { short: 'd', long: 'daemon', valueName: null },
  { short: 'l', long: 'listen', valueName: 'addr' },
  { short: 'u', long: 'user', valueName: 'user' },
  { short: 'P', long: 'pidfile', valueName: 'file' },
  { short: 'f', long: 'slab-growth-factor', valueName: 'num' },
  { short: 'n', long: 'slab-min-size', valueName: 'bytes' },
  { short: 't', long: 'threads', valueName: 'num' },
  { short: 'D', long: null, valueName: 'char' },
  { short: 'L', long: 'enable-largepages', valueName: null },
  { short: 'R', long: 'max-reqs-per-event', valueName: 'num' },
  { short: 'C', long: 'disable-cas', valueName: null },
  { short: 'b', long: 'listen-backlog', valueName: 'num' },
  { short: 'B', long: 'protocol', valueName: 'name' },
  { short: 'I', long: 'max-item-size', valueName: 'num' },
  { short: 'S', long: 'enable-sasl', valueName: null },
  { short: 'F', long: 'disable-flush-all', valueName: null },
  { short: 'X', long: 'disable-dumping', valueName: null },
  { short: 'W', long: 'disable-watch', valueName: null },
  { short: 'Y', long: 'auth-file', valueName: 'file' },
  { short: 'e', long: 'memory-file', valueName: 'file' },
  { short: 'o', long: 'extended', valueName: 'options' },
  { short: 'N', long: 'napi-ids', valueName: 'num' },
];

/** Parse state: the settings plus what memcached remembers only while parsing. */
export interface ParseState {
  settings: Settings;
  warnings: string[];
  tcpSpecified: boolean;
  udpSpecified: boolean;
  /** -o slab_chunk_max given: then -I above 1 MiB does not reset it. */
  slabChunkMaxChanged: boolean;
  /** -B given: then -S and -Y check it instead of choosing the protocol. */
  protocolSpecified: boolean;
}

type EarlyExit = Extract<ParseResult, { kind: 'exit' }>;
type OptionHandler = (state: ParseState, value: string) => EarlyExit | void;

/** One occurrence of an option in argv, in order. */
interface OptionEvent {
  short: string;
  value: string;
}

/** argv: the arguments after the program name, e.g. process.argv.slice(2). */
export function parseCommandLine(argv: string[]): ParseResult {
  const state: ParseState = {
    settings: defaultSettings(),
    warnings: [],
    tcpSpecified: false,
    udpSpecified: false,
    slabChunkMaxChanged: false,
    protocolSpecified: false,
  };
  try {
    for (const event of tokenize(argv)) {
      const exit = OPTION_HANDLERS[event.short](state, event.value);
      if (exit !== undefined) return exit;
    }
    validateRelations(state);
  } catch (error) {
    if (error instanceof UsageError) return usageExit(error);
    throw error;
  }
  return { kind: 'run', settings: state.settings, warnings: state.warnings };
}

export function formatMessage(message: string): string {
  return `${PROGRAM_NAME}: ${message}`;
}

function usageExit(error: UsageError): EarlyExit {
  return { kind: 'exit', code: error.exitCode, stdout: '', stderr: formatMessage(error.message) + '\n' };
}

function stdoutExit(text: string): EarlyExit {
  return { kind: 'exit', code: 0, stdout: text, stderr: '' };
}

// --- tokenizing

function tokenize(argv: string[]): OptionEvent[] {
  const events: OptionEvent[] = [];
  const program = buildCommand(events);
  try {
    program.parse(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) throw new UsageError(commanderMessage(error, program.args), EXIT_FAILURE);
    throw error;
  }
  return events;
}

function buildCommand(events: OptionEvent[]): Command {
  const program = new Command(PROGRAM_NAME)
    .exitOverride()
    .helpOption(false)
    .allowExcessArguments(false)
    .configureOutput({ writeOut: () => {}, writeErr: () => {}, outputError: () => {} });
  for (const spec of OPTION_SPECS) program.addOption(recordingOption(spec, events));
  return program;
}

function recordingOption(spec: OptionSpec, events: OptionEvent[]): Option {
  const names = spec.long === null ? `-${spec.short}` : `-${spec.short}, --${spec.long}`;
  const flags = spec.valueName === null ? names : `${names} <${spec.valueName}>`;
  return new Option(flags).argParser((value: string | undefined, previous: unknown) => {
    // memcached skips leading white space in every option value.
    events.push({ short: spec.short, value: (value ?? '').trimStart() });
    return previous;
  });
}

function commanderMessage(error: CommanderError, operands: string[]): string {
  // memcached's getopt ignores stray words; they are typos (a lost '-', a value too many).
  if (error.code === 'commander.excessArguments') {
    return `unexpected argument "${operands.join(' ')}": ${PROGRAM_NAME} takes options only`;
  }
  // One line: commander puts its "(Did you mean ...?)" on a line of its own.
  return error.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ');
}

// --- value parsing

/** A whole decimal number; atoi() in memcached, strict here. */
export function parseInteger(text: string, what: string): number {
  if (!/^[+-]?\d{1,15}$/.test(text)) throw new UsageError(`${what} takes a whole number, got "${text}"`);
  return Number(text);
}

/** A decimal number such as 1.25 or 1e-3; atof() in memcached, strict here. */
export function parseDecimal(text: string, what: string): number {
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?$/.test(text)) {
    throw new UsageError(`${what} takes a number, got "${text}"`);
  }
  return Number(text);
}

export function requireRange(
  value: number,
  min: number,
  max: number,
  message: string,
  exitCode: number = EXIT_FAILURE,
): number {
  if (value < min || value > max) throw new UsageError(message, exitCode);
  return value;
}

/** A port; with `ephemeral`, -1 too (memcached's -p -1 / -U -1: any free port). */
function parsePort(text: string, what: string, ephemeral = false): number {
  const port = parseInteger(text, what);
  const min = ephemeral ? -1 : 0;
  return requireRange(port, min, PORT_MAX, `invalid port number ${port} for ${what} (${min}-${PORT_MAX})`, EX_USAGE);
}

/** -I: bytes, or kilobytes/megabytes with k/m (memcached knows no other suffix). */
export function parseItemSize(text: string): number {
  const match = /^(\d{1,10})([kKmM]?)$/.exec(text);
  if (match === null) throw new UsageError(`-I takes a size in bytes with an optional k or m suffix, got "${text}"`);
  const unit = match[2].toLowerCase();
  const scale = unit === 'k' ? KIB : unit === 'm' ? MIB : 1;
  return Number(match[1]) * scale;
}

/** -m: megabytes; an "m" suffix is tolerated because memcached's atoi() ignores it. */
function parseMemoryLimit(text: string): number {
  const match = /^(\d{1,10})[mM]?$/.exec(text);
  if (match === null) throw new UsageError(`-m takes megabytes (e.g. -m 64), got "${text}"`);
  const megabytes = Number(match[1]);
  const message = `-m ${megabytes} is above the limit of ${MEMORY_LIMIT_MEGABYTES_MAX} megabytes, the most item memory this server can address (32-bit item references)`;
  requireRange(megabytes, 0, MEMORY_LIMIT_MEGABYTES_MAX, message);
  return megabytes * MIB;
}

function parseAccessMask(text: string): number {
  if (!/^[0-7]{1,4}$/.test(text) || Number.parseInt(text, 8) > 0o777) {
    throw new UsageError(`-a takes an octal access mask such as 0700, got "${text}"`);
  }
  return Number.parseInt(text, 8);
}

function parseBindProtocol(text: string): BindProtocol {
  if (text === 'auto' || text === 'ascii' || text === 'binary') return text;
  const message = `Invalid value for binding protocol: ${text} -- should be one of auto, binary, or ascii`;
  throw new UsageError(message, EX_USAGE);
}

function requireNonEmpty(text: string, what: string): string {
  if (text === '') throw new UsageError(`${what} must not be empty`);
  return text;
}

// --- -l

/** Adds one -l argument: a list separated by ',' or ';' (memcached accepts both). */
function addListeners(state: ParseState, text: string): void {
  const settings = state.settings;
  for (const entry of text.split(/[,;]/).map((part) => part.trim())) {
    if (entry === '' || settings.listenAddresses.includes(entry)) continue;
    if (settings.listeners.length === LISTENERS_MAX) {
      throw new UsageError(`-l: more than ${LISTENERS_MAX} listeners`, EX_USAGE);
    }
    settings.listeners.push(parseListener(entry));
    settings.listenAddresses.push(entry);
  }
}

/**
 * memcached's grammar: [notls:|btls:|mtls:][proto[<p>]:][tag[<t>]:]<host>[:<port>]. The TLS
 * prefixes (1.6.19+) need -Z (checked in validateTls).
 */
export function parseListener(entry: string): ListenerSpec {
  const prefix = /^(notls|btls|mtls):/.exec(entry);
  let rest = prefix === null ? entry : entry.slice(prefix[0].length);
  const protocol = takeBracketed(rest, 'proto');
  if (protocol !== null) rest = protocol.rest;
  const tag = takeBracketed(rest, 'tag');
  if (tag !== null) rest = tag.rest;
  const address = parseHostPort(rest, entry);
  const spec: ListenerSpec = {
    host: address.host,
    port: address.port,
    protocol: protocol === null ? null : listenerProtocol(protocol.value, entry),
    tag: tag === null ? null : listenerTag(tag.value, entry),
  };
  if (prefix !== null) spec.tls = prefix[1] as ListenerTls;
  return spec;
}

/** Takes `<name>[<value>]:` off the front of `text`, or returns null when it is not there. */
function takeBracketed(text: string, name: string): { value: string; rest: string } | null {
  if (!text.startsWith(`${name}[`)) return null;
  const close = text.indexOf(']');
  if (close < 0 || text[close + 1] !== ':') {
    throw new UsageError(`-l ${text}: expected ${name}[<value>]: before the address`, EX_USAGE);
  }
  return { value: text.slice(name.length + 1, close), rest: text.slice(close + 2) };
}

function listenerProtocol(name: string, entry: string): BindProtocol {
  if (name === 'ascii' || name === 'binary') return name;
  if (name === 'negotiating') return 'auto';
  if (name === 'proxy') throw new UsageError(`-l ${entry}: the proxy is not implemented yet`, EX_USAGE);
  throw new UsageError(`-l ${entry}: unknown protocol "${name}" (ascii, binary or negotiating)`, EX_USAGE);
}

function listenerTag(tag: string, entry: string): string {
  const bytes = Buffer.byteLength(tag);
  if (bytes < 1 || bytes > TAG_BYTES_MAX) {
    throw new UsageError(`-l ${entry}: listener tags must be between 1 and ${TAG_BYTES_MAX} characters`, EX_USAGE);
  }
  return tag;
}

/** `host`, `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6 address (two colons or more: no port). */
function parseHostPort(text: string, entry: string): { host: string | null; port: number | null } {
  let host = text;
  let portText: string | null = null;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    const after = text.slice(close + 1);
    if (close < 0 || (after !== '' && !after.startsWith(':'))) {
      throw new UsageError(`-l ${entry}: invalid IPv6 address`, EX_USAGE);
    }
    host = text.slice(1, close);
    portText = after === '' ? null : after.slice(1);
  } else if (text.indexOf(':') >= 0 && text.indexOf(':') === text.lastIndexOf(':')) {
    host = text.slice(0, text.indexOf(':'));
    portText = text.slice(text.indexOf(':') + 1);
  }
  return { host: listenerHost(host, entry), port: portText === null ? null : listenerPort(portText, entry) };
}

function listenerPort(text: string, entry: string): number {
  if (!/^\d{1,5}$/.test(text)) throw new UsageError(`-l ${entry}: invalid port number "${text}"`, EX_USAGE);
  return parsePort(text, `-l ${entry}`);
}

function listenerHost(host: string, entry: string): string | null {
  if (host === '*') return null;
  // A colon left in the host means IPv6, which must then be a whole address.
  const malformed = host.includes(':') ? !isIPv6(host) : host === '' || /[\s[\]]/.test(host);
  if (malformed || Buffer.byteLength(host) > HOST_BYTES_MAX) {
    throw new UsageError(`-l ${entry}: invalid address "${host}"`, EX_USAGE);
  }
  return host;
}

// --- options

export function notImplemented(what: string): never {
  throw new UsageError(`option ${what} is not implemented yet`, EX_USAGE);
}

function setThreads(state: ParseState, text: string): void {
  const threads = parseCount(text, '-t', 'Number of threads must be greater than 0', THREADS_MAX);
  state.settings.threadCount = threads;
  if (threads > THREADS_WARN_ABOVE) {
    state.warnings.push(formatMessage(`-t ${threads}: more worker threads than cores is not recommended`));
  }
}

function setDelimiter(state: ParseState, text: string): void {
  if (text === '') throw new UsageError('No delimiter specified');
  if (text.charCodeAt(0) > 0x7f) throw new UsageError(`-D takes one ASCII character, got "${text}"`);
  if (text.length > 1) {
    state.warnings.push(formatMessage(`-D "${text}": only the first character, "${text[0]}", is used`));
  }
  state.settings.prefixDelimiter = text[0];
  state.settings.detailEnabled = true;
}

function setSocketPath(state: ParseState, text: string): void {
  requireNonEmpty(text, '-s');
  if (Buffer.byteLength(text) > SOCKET_PATH_BYTES_MAX) {
    throw new UsageError(`-s: unix socket path is longer than ${SOCKET_PATH_BYTES_MAX} bytes`, EX_USAGE);
  }
  state.settings.socketPath = text;
}

/** A count that memcached requires to be above 0, with `message` when it is not. */
function parseCount(text: string, what: string, message: string, max = INT32_MAX): number {
  const value = parseInteger(text, what);
  if (value < 1) throw new UsageError(message);
  return requireRange(value, 1, max, `${what} ${value} is above the limit of ${max}`);
}

const OPTION_HANDLERS: Record<string, OptionHandler> = {
  a: (s, v) => void (s.settings.socketAccessMask = parseAccessMask(v)),
  A: (s) => void (s.settings.shutdownEnabled = true),
  Z: (s) => void (s.settings.tlsEnabled = true),
  p: (s, v) => {
    s.settings.tcpPort = parsePort(v, '-p', true);
    s.tcpSpecified = true;
  },
  s: setSocketPath,
  U: (s, v) => {
    s.settings.udpPort = parsePort(v, '-U', true);
    s.udpSpecified = true;
  },
  m: (s, v) => void (s.settings.memoryLimitBytes = parseMemoryLimit(v)),
  M: (s) => void (s.settings.evictToFree = false),
  c: (s, v) => {
    s.settings.connectionsMax = parseCount(v, '-c', 'Maximum connections must be greater than 0', CONNECTIONS_MAX);
  },
  // mlockall needs the native addon: checked at startup (src/platform/startup.ts).
  k: (s) => void (s.settings.lockMemory = true),
  h: () => stdoutExit(helpText()),
  i: () => stdoutExit(licenseText()),
  V: () => stdoutExit(versionText()),
  r: (s) => void (s.settings.maximizeCoreFile = true),
  v: (s) => void s.settings.verbose++,
  d: (s) => void (s.settings.daemonize = true),
  l: addListeners,
  u: (s, v) => void (s.settings.username = requireNonEmpty(v, '-u')),
  P: (s, v) => void (s.settings.pidFile = requireNonEmpty(v, '-P')),
  f: (s, v) => {
    const factor = parseDecimal(v, '-f');
    if (!(factor > 1)) throw new UsageError('Factor must be greater than 1');
    s.settings.growthFactor = factor;
  },
  n: (s, v) => void (s.settings.chunkSizeBytes = parseCount(v, '-n', 'Chunk size must be greater than 0')),
  t: setThreads,
  D: setDelimiter,
  L: (s) => void (s.settings.largePages = true),
  R: (s, v) => {
    s.settings.requestsPerEvent = parseCount(v, '-R', 'Number of requests per event must be greater than 0');
  },
  C: (s) => void (s.settings.casEnabled = false),
  b: (s, v) => {
    const backlog = parseInteger(v, '-b');
    const message = `-b takes a backlog from 0 to ${INT32_MAX}, got ${backlog}`;
    s.settings.backlog = requireRange(backlog, 0, INT32_MAX, message);
  },
  B: (s, v) => {
    s.settings.bindProtocol = parseBindProtocol(v);
    s.protocolSpecified = true;
  },
  I: (s, v) => void (s.settings.itemSizeMaxBytes = parseItemSize(v)),
  S: (s) => void (s.settings.saslEnabled = true),
  F: (s) => void (s.settings.flushEnabled = false),
  X: (s) => void (s.settings.dumpEnabled = false),
  W: (s) => void (s.settings.watchEnabled = false),
  Y: (s, v) => void (s.settings.authFile = requireNonEmpty(v, '-Y')),
  e: (state, value) => {
    state.settings.memoryFile = value;
  },
  o: applySubOptions,
  N: () => notImplemented('-N (NAPI ids)'),
};

// --- -o: memcached's getsubopt() list "name[=value],..."

type SubOptionHandler = (state: ParseState, value: string) => void;
type FlagHandler = (state: ParseState) => void;

type SubOption =
  | { takes: 'value'; apply: SubOptionHandler }
  | { takes: 'nothing'; apply: FlagHandler }
  /** slab_automove: a bare name means 1. */
  | { takes: 'optional'; apply: SubOptionHandler; bare: string };

const UINT32_MAX = 2 ** 32 - 1;
/** memcached's bounds for hashpower: below 12 is pointless, above 32 does not fit its tables. */
const HASHPOWER_MIN = 12;
const HASHPOWER_MAX = 32;
const LRU_CRAWLER_SLEEP_MICROS_MAX = 1_000_000;
const TAIL_REPAIR_TIME_SECONDS_MIN = 10;
const SLAB_CHUNK_MAX_KIB_MAX = 1024;
/** memcached parses log buffer sizes as 32-bit kilobytes; 1 GiB is already absurd for one. */
const LOGBUF_KIB_MAX = 1024 * 1024;

/** -o names memcached 1.6 has and memcached-ts rejects, with the feature they belong to. */
const UNIMPLEMENTED_SUB_OPTIONS = new Map<string, string>([
  ['drop_privileges', 'syscall filtering'],
  ['slab_sizes', 'explicit slab class sizes'],
  ['sock_cookie_id', 'socket cookies'],
  ['slab_automove_freeratio', 'extstore'],
  ['ssl_kernel_tls', 'kernel TLS offload: node:tls encrypts in user space'],
]);
const UNIMPLEMENTED_SUB_OPTION_PREFIXES: ReadonlyArray<[string, string]> = [
  ['ext_', 'extstore'],
  ['proxy_', 'the proxy'],
];

/** One -o argument; memcached applies the items left to right, so later ones win. */
export function applySubOptions(state: ParseState, text: string): void {
  for (const item of text.split(',').map((part) => part.trim())) {
    if (item === '') continue;
    const equals = item.indexOf('=');
    const name = equals < 0 ? item : item.slice(0, equals);
    const value = equals < 0 ? null : item.slice(equals + 1).trim();
    applySubOption(state, name, value, item);
  }
}

function applySubOption(state: ParseState, name: string, value: string | null, item: string): void {
  rejectUnimplemented(name);
  const sub = SUB_OPTIONS.get(name);
  if (sub === undefined) throw new UsageError(`Illegal suboption "${item}"`);
  if (sub.takes === 'nothing') {
    if (value !== null) state.warnings.push(formatMessage(`-o ${name} takes no value; "=${value}" is ignored`));
    sub.apply(state);
  } else if (value !== null) {
    sub.apply(state, value);
  } else if (sub.takes === 'optional') {
    sub.apply(state, sub.bare);
  } else {
    throw new UsageError(`-o ${name} needs a value (${name}=<value>)`);
  }
}

function rejectUnimplemented(name: string): void {
  if (SUB_OPTIONS.has(name)) return;
  const byPrefix = UNIMPLEMENTED_SUB_OPTION_PREFIXES.find(([prefix]) => name.startsWith(prefix));
  const feature = UNIMPLEMENTED_SUB_OPTIONS.get(name) ?? byPrefix?.[1];
  if (feature !== undefined) throw new UsageError(`-o ${name} is not implemented yet (${feature})`, EX_USAGE);
}

function flag(apply: FlagHandler): SubOption {
  return { takes: 'nothing', apply };
}

function setLoopYield(state: ParseState, value: string): void {
  const v = LOOP_YIELD_VALUES.find((x) => x === value);
  if (v === undefined) throw new UsageError(`-o loop_yield takes ${LOOP_YIELD_VALUES.join(', ')}`);
  state.settings.loopYield = v;
}

function setTcpAccept(state: ParseState, value: string): void {
  const v = TCP_ACCEPT_VALUES.find((x) => x === value);
  if (v === undefined) throw new UsageError(`-o tcp_accept takes ${TCP_ACCEPT_VALUES.join(', ')}`);
  state.settings.tcpAccept = v;
}

function valued(apply: SubOptionHandler): SubOption {
  return { takes: 'value', apply };
}

function integerIn(value: string, name: string, min: number, max: number, message: string): number {
  return requireRange(parseInteger(value, `-o ${name}`), min, max, message);
}

function setHashpower(state: ParseState, value: string): void {
  const power = parseInteger(value, '-o hashpower');
  if (power < HASHPOWER_MIN) throw new UsageError(`Initial hashtable multiplier of ${power} is too low`);
  if (power > HASHPOWER_MAX) {
    const advice = 'choose it from "STAT hash_power_level" of a running instance';
    throw new UsageError(`Initial hashtable multiplier of ${power} is too high; ${advice}`);
  }
  if (power > HASH_POWER_LIMIT) {
    // memcached takes up to 32; 2^30 buckets already index more items than the arena can hold.
    throw new UsageError(`Initial hashtable multiplier of ${power} is above ${HASH_POWER_LIMIT}, the most this server supports`, EX_USAGE);
  }
  state.settings.hashPowerInit = power;
}

function setHashAlgorithm(state: ParseState, value: string): void {
  if (value !== 'jenkins' && value !== 'murmur3' && value !== 'xxh3') {
    throw new UsageError('Unknown hash_algorithm option (jenkins, murmur3, xxh3)');
  }
  // Keys are always hashed with murmur3 here; say so rather than pretend to switch.
  if (value !== 'murmur3') notImplemented(`-o hash_algorithm=${value} (memcached-ts hashes with murmur3)`);
  state.settings.hashAlgorithm = value;
}

function setSlabChunkMax(state: ParseState, value: string): void {
  const kib = parseInteger(value, '-o slab_chunk_max');
  if (kib <= 0) throw new UsageError('slab_chunk_max must be > 0');
  if (kib > SLAB_CHUNK_MAX_KIB_MAX) {
    throw new UsageError(`slab_chunk_max must be specified in kilobytes (at most ${SLAB_CHUNK_MAX_KIB_MAX}).`);
  }
  state.settings.slabChunkMaxBytes = kib * KIB;
  state.slabChunkMaxChanged = true;
}

function positiveFactor(value: string, name: string): number {
  const factor = parseDecimal(value, `-o ${name}`);
  if (!(factor > 0)) throw new UsageError(`${name} must be > 0`);
  return factor;
}

function setAutomoveRatio(state: ParseState, value: string): void {
  const ratio = parseDecimal(value, '-o slab_automove_ratio');
  if (!(ratio > 0 && ratio <= 1)) throw new UsageError('slab_automove_ratio must be > 0 and <= 1');
  state.settings.slabAutomoveRatio = ratio;
}

/** memcached's no_modern: the 1.4 defaults. */
function noModern(state: ParseState): void {
  const s = state.settings;
  if (!state.slabChunkMaxChanged) s.slabChunkMaxBytes = s.slabPageBytes;
  s.slabReassign = false;
  s.slabAutomove = 0;
  s.maxconnsFast = false;
  s.lruSegmented = false;
  s.lruMaintainerThread = false;
  s.lruCrawler = false;
}

/** A sub-option taking a whole number in [min, max]; `message` (memcached's, where it has one) when not. */
function integerSub(
  name: string,
  [min, max]: [number, number],
  set: (s: Settings, n: number) => void,
  message: string = `${name} must be from ${min} to ${max}`,
): SubOption {
  return valued((state, value) => set(state.settings, integerIn(value, name, min, max, message)));
}

function flagSub(set: (s: Settings) => void): SubOption {
  return flag((state) => set(state.settings));
}

// --- -o ssl_*: memcached's TLS options (applied by src/net/tls.ts)

/** memcached takes ssl_wbuf_size in kilobytes and sets no bound; 16 MiB is already absurd. */
const TLS_WBUF_KIB_MAX = 16 * 1024;
/** memcached's ssl_min_version numbers; the names it prints are accepted too. */
const TLS_VERSIONS: readonly TlsVersionName[] = ['tlsv1.0', 'tlsv1.1', 'tlsv1.2', 'tlsv1.3'];

function tlsPath(name: string, apply: (s: Settings, path: string) => void): SubOption {
  return valued((state, value) => {
    if (value === '') throw new UsageError(`Missing ${name} argument`);
    apply(state.settings, value);
  });
}

function setTlsVerifyMode(state: ParseState, value: string): void {
  if (!/^[+-]?\d{1,10}$/.test(value)) throw new UsageError('could not parse argument to ssl_verify_mode');
  const mode = Number(value);
  if (mode !== 0 && mode !== 1 && mode !== 2 && mode !== 3) {
    throw new UsageError('Invalid ssl_verify_mode. Use help to see valid options.');
  }
  state.settings.tlsVerifyMode = mode as TlsVerifyMode;
}

function setTlsKeyFormat(state: ParseState, value: string): void {
  if (!/^[+-]?\d{1,10}$/.test(value)) throw new UsageError('could not parse argument to ssl_keyformat');
  const format = Number(value);
  // OpenSSL's SSL_FILETYPE_PEM and SSL_FILETYPE_ASN1; memcached passes anything else to
  // OpenSSL, which then fails to load the key.
  if (format !== 1 && format !== 2) throw new UsageError(`Invalid ssl_keyformat ${format}: 1 (PEM) or 2 (DER)`);
  state.settings.tlsKeyFormat = format;
}

function setTlsMinVersion(state: ParseState, value: string): void {
  const byName = TLS_VERSIONS.indexOf(value.toLowerCase() as TlsVersionName);
  const index = /^\d$/.test(value) ? Number(value) : byName;
  if (index < 0 || index >= TLS_VERSIONS.length) {
    throw new UsageError('Invalid ssl_min_version. Use help to see valid options.');
  }
  state.settings.tlsMinVersion = TLS_VERSIONS[index];
}

function setTlsWbufSize(state: ParseState, value: string): void {
  if (!/^\d{1,10}$/.test(value)) throw new UsageError('could not parse argument to ssl_wbuf_size');
  const kib = requireRange(Number(value), 1, TLS_WBUF_KIB_MAX, `ssl_wbuf_size must be from 1 to ${TLS_WBUF_KIB_MAX} kilobytes`);
  state.settings.tlsWriteBufferBytes = kib * KIB;
}

/** memcached's ext_page_size/ext_wbuf_size are 32-bit megabyte counts; a page must fit a file offset. */
const EXT_SIZE_MIB_MAX = 64 * 1024;
/** libuv caps its thread pool at 1024 threads. */
const EXT_THREADS_MAX = 1024;
const EXT_IO_DEPTH_MAX = 1024;
/** memcached: page ids are 16-bit (page_count must total to < 65536). */
const EXT_PAGES_MAX = 65535;
const EXT_SIZE_UNITS: Record<string, number> = { m: MIB, g: 1024 * MIB, t: 1024 * 1024 * MIB, p: 1024 * 1024 * 1024 * MIB };

/** A fraction such as ext_max_frag=0.8: a number from 0 to 1. */
function fraction(value: string, name: string): number {
  const v = parseDecimal(value, `-o ${name}`);
  if (!(v >= 0 && v <= 1)) throw new UsageError(`${name} must be from 0 to 1`);
  return v;
}

/**
 * -o ext_path=<file>:<size>[:<bucket>], size with memcached's units M, G, T or P (any case);
 * the bucket (memcached 1.6.45's names: default, compact, chunked, lowttl, coldcompact, old)
 * says which writes the file's free pages serve first.
 */
function addExtPath(state: ParseState, value: string): void {
  const parts = value.split(':');
  if (parts[0] === '') throw new UsageError('missing argument to ext_path, ie: ext_path=/d/file:5G');
  const size = parts.length > 1 ? /^(\d{1,10})([mMgGtTpP])$/.exec(parts[1]) : null;
  if (size === null) {
    throw new UsageError('must supply size to ext_path, ie: ext_path=/f/e:64m (M|G|T|P supported)');
  }
  if (parts.length > 3) throw new UsageError(`ext_path=${value}: expected <file>:<size>[:<bucket>]`);
  const bucket = parts.length === 3 ? BUCKET_NAMES.indexOf(parts[2]) : 0;
  if (bucket < 0) throw new UsageError(`Unknown extstore bucket: ${parts[2]}`);
  const bytes = Number(size[1]) * EXT_SIZE_UNITS[size[2].toLowerCase()];
  state.settings.extPaths.push({ path: parts[0], sizeBytes: bytes, bucket });
}

/** Fast Open requests pending per listener; the kernel caps it at net.core.somaxconn. */
const TCP_FASTOPEN_QUEUE_MAX = 65535;

/** -o metrics_listen=[<host>:]<port>: `9150`, `:9150`, `127.0.0.1:9150`, `[::1]:9150`, `*:9150`. */
function setMetricsListen(state: ParseState, value: string): void {
  const what = `-o metrics_listen=${value}`;
  const usage = `${what}: expected [<host>:]<port>, an IPv6 host in brackets`;
  let host: string | null = null;
  let portText = value;
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close < 0 || value[close + 1] !== ':' || !isIPv6(value.slice(1, close))) throw new UsageError(usage, EX_USAGE);
    host = value.slice(1, close);
    portText = value.slice(close + 2);
  } else if (value.includes(':')) {
    const colon = value.indexOf(':');
    if (colon !== value.lastIndexOf(':')) throw new UsageError(usage, EX_USAGE);
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
    if (host === '' || host === '*') host = null;
    else if (/[\s[\]]/.test(host) || Buffer.byteLength(host) > HOST_BYTES_MAX) throw new UsageError(usage, EX_USAGE);
  }
  if (!/^\d{1,5}$/.test(portText)) throw new UsageError(usage, EX_USAGE);
  const port = parsePort(portText, '-o metrics_listen');
  if (port === 0) throw new UsageError(`${what}: the metrics endpoint needs a port (1-${PORT_MAX})`, EX_USAGE);
  const listen: MetricsListen = { host, port };
  state.settings.metricsListen = listen;
}

const SUB_OPTIONS = new Map<string, SubOption>([
  [
    'tcp_fastopen',
    integerSub('tcp_fastopen', [0, TCP_FASTOPEN_QUEUE_MAX], (s, n) => void (s.tcpFastOpenQueue = n),
      `tcp_fastopen takes a queue length from 0 (off) to ${TCP_FASTOPEN_QUEUE_MAX}`),
  ],
  ['metrics_listen', valued(setMetricsListen)],
  ['ssl_chain_cert', tlsPath('ssl_chain_cert', (s, v) => void (s.tlsChainCertPath = v))],
  ['ssl_key', tlsPath('ssl_key', (s, v) => void (s.tlsKeyPath = v))],
  ['ssl_ca_cert', tlsPath('ssl_ca_cert', (s, v) => void (s.tlsCaCertPath = v))],
  ['ssl_ciphers', tlsPath('ssl_ciphers', (s, v) => void (s.tlsCiphers = v))],
  ['ssl_verify_mode', valued(setTlsVerifyMode)],
  ['ssl_keyformat', valued(setTlsKeyFormat)],
  ['ssl_min_version', valued(setTlsMinVersion)],
  ['ssl_wbuf_size', valued(setTlsWbufSize)],
  ['ssl_session_cache', flagSub((s) => void (s.tlsSessionCache = true))],
  ['maxconns_fast', flagSub((s) => void (s.maxconnsFast = true))],
  ['no_maxconns_fast', flagSub((s) => void (s.maxconnsFast = false))],
  ['hashpower', valued(setHashpower)],
  ['no_hashexpand', flagSub((s) => void (s.hashExpand = false))],
  ['hash_algorithm', valued(setHashAlgorithm)],
  ['slab_reassign', flagSub((s) => void (s.slabReassign = true))],
  ['no_slab_reassign', flagSub((s) => void (s.slabReassign = false))],
  [
    'slab_automove',
    {
      takes: 'optional',
      bare: '1',
      apply: (state, value) => {
        const message = 'slab_automove must be between 0 and 2';
        state.settings.slabAutomove = integerIn(value, 'slab_automove', 0, 2, message);
      },
    },
  ],
  ['no_slab_automove', flagSub((s) => void (s.slabAutomove = 0))],
  ['slab_automove_ratio', valued(setAutomoveRatio)],
  ['slab_automove_window', integerSub('slab_automove_window', [3, 1800], (s, n) => void (s.slabAutomoveWindowSamples = n))],
  [
    'tail_repair_time',
    integerSub(
      'tail_repair_time',
      [TAIL_REPAIR_TIME_SECONDS_MIN, INT32_MAX],
      (s, n) => void (s.tailRepairTimeSeconds = n),
      `Cannot set tail_repair_time to less than ${TAIL_REPAIR_TIME_SECONDS_MIN} seconds`,
    ),
  ],
  ['lru_crawler', flagSub((s) => void (s.lruCrawler = true))],
  ['no_lru_crawler', flagSub((s) => void (s.lruCrawler = false))],
  [
    'lru_crawler_sleep',
    integerSub(
      'lru_crawler_sleep',
      [0, LRU_CRAWLER_SLEEP_MICROS_MAX],
      (s, n) => void (s.lruCrawlerSleepMicros = n),
      'LRU crawler sleep must be between 0 and 1 second (0-1000000 microseconds)',
    ),
  ],
  [
    'lru_crawler_tocrawl',
    integerSub(
      'lru_crawler_tocrawl',
      [0, UINT32_MAX],
      (s, n) => void (s.lruCrawlerToCrawl = n),
      'lru_crawler_tocrawl takes a numeric 32bit value',
    ),
  ],
  ['lru_maintainer', flagSub((s) => void (s.lruSegmented = s.lruMaintainerThread = true))],
  ['no_lru_maintainer', flagSub((s) => void (s.lruSegmented = s.lruMaintainerThread = false))],
  ['hot_lru_pct', integerSub('hot_lru_pct', [1, 79], (s, n) => void (s.hotLruPct = n))],
  ['warm_lru_pct', integerSub('warm_lru_pct', [1, 79], (s, n) => void (s.warmLruPct = n))],
  ['hot_max_factor', valued((state, v) => void (state.settings.hotMaxFactor = positiveFactor(v, 'hot_max_factor')))],
  ['warm_max_factor', valued((state, v) => void (state.settings.warmMaxFactor = positiveFactor(v, 'warm_max_factor')))],
  [
    'temporary_ttl',
    integerSub('temporary_ttl', [0, INT32_MAX], (s, n) => {
      s.temporaryTtlSeconds = n;
      s.tempLru = true;
    }),
  ],
  ['warmup_ms', integerSub('warmup_ms', [0, WARMUP_MS_MAX], (s, n) => void (s.warmupMs = n))],
  ['loop_yield', valued(setLoopYield)],
  ['tcp_accept', valued(setTcpAccept)],
  [
    'prefetch_keys',
    integerSub('prefetch_keys', [0, PREFETCH_KEYS_MAX], (s, n) => void (s.prefetchKeys = n),
      `prefetch_keys takes 0 (off) to ${PREFETCH_KEYS_MAX}`),
  ],
  ['idle_timeout', integerSub('idle_timeout', [0, INT32_MAX], (s, n) => void (s.idleTimeoutSeconds = n))],
  ['watcher_logbuf_size', integerSub('watcher_logbuf_size', [1, LOGBUF_KIB_MAX], (s, n) => void (s.watcherLogbufBytes = n * KIB))],
  ['worker_logbuf_size', integerSub('worker_logbuf_size', [1, LOGBUF_KIB_MAX], (s, n) => void (s.workerLogbufBytes = n * KIB))],
  ['slab_chunk_max', valued(setSlabChunkMax)],
  ['no_chunked_items', flagSub((s) => void (s.slabChunkMaxBytes = s.slabPageBytes))],
  ['track_sizes', flagSub((s) => void (s.trackSizes = true))],
  // Both are no-ops in memcached since 1.5.15; recorded for `stats settings`.
  ['inline_ascii_resp', flagSub((s) => void (s.inlineAsciiResponse = true))],
  ['no_inline_ascii_resp', flagSub((s) => void (s.inlineAsciiResponse = false))],
  // memcached 1.6 puts no new defaults behind "modern"; accepted so that units keep working.
  ['modern', flag(() => {})],
  ['no_modern', flag(noModern)],
  // Syscall filtering is off by default in memcached and absent here: nothing to turn off.
  ['no_drop_privileges', flag(() => {})],
  ['relaxed_privileges', flagSub((s) => void (s.relaxedPrivileges = true))],
  [
    'read_buf_mem_limit',
    integerSub('read_buf_mem_limit', [0, 4095], (s, n) => void (s.readBufMemLimitBytes = n * MIB),
      'read_buf_mem_limit takes megabytes, from 0 (no limit) to 4095'),
  ],
  // memcached-debug's test commands (debugtime); memcached's own test suite needs them.
  ['debug_commands', flagSub((s) => void (s.debugCommands = true))],
  // extstore: memcached's names and defaults (storage.c); relations are checked in validateExtstore
  ['ext_path', valued(addExtPath)],
  ['ext_page_size', integerSub('ext_page_size', [1, EXT_SIZE_MIB_MAX], (s, n) => void (s.extPageBytes = n * MIB))],
  ['ext_wbuf_size', integerSub('ext_wbuf_size', [1, EXT_SIZE_MIB_MAX], (s, n) => void (s.extWbufBytes = n * MIB))],
  [
    'ext_threads',
    integerSub('ext_threads', [1, EXT_THREADS_MAX], (s, n) => {
      s.extThreads = n;
      s.extThreadsSet = true;
    }),
  ],
  ['ext_io_depth', integerSub('ext_io_depth', [1, EXT_IO_DEPTH_MAX], (s, n) => void (s.extIoDepth = n))],
  ['ext_item_size', integerSub('ext_item_size', [0, UINT32_MAX], (s, n) => void (s.extItemSizeBytes = n))],
  ['ext_item_age', integerSub('ext_item_age', [0, UINT32_MAX], (s, n) => void (s.extItemAgeSeconds = n))],
  ['ext_low_ttl', integerSub('ext_low_ttl', [0, UINT32_MAX], (s, n) => void (s.extLowTtlSeconds = n))],
  ['ext_recache_rate', integerSub('ext_recache_rate', [0, UINT32_MAX], (s, n) => void (s.extRecacheRate = n))],
  ['ext_compact_under', integerSub('ext_compact_under', [0, UINT32_MAX], (s, n) => void (s.extCompactUnderPages = n))],
  ['ext_drop_under', integerSub('ext_drop_under', [0, UINT32_MAX], (s, n) => void (s.extDropUnderPages = n))],
  ['ext_max_sleep', integerSub('ext_max_sleep', [0, UINT32_MAX], (s, n) => void (s.extMaxSleepMicros = n))],
  ['ext_max_frag', valued((state, v) => void (state.settings.extMaxFrag = fraction(v, 'ext_max_frag')))],
  ['ext_drop_unread', flagSub((s) => void (s.extDropUnread = true))],
  [
    'slab_automove_freeratio',
    // It tunes memcached's extstore automover, not implemented here (extstore's header pages
    // grow by moving pages instead); taking it silently would mislead.
    valued(() => notImplemented('-o slab_automove_freeratio (the extstore automover; see doc/extstore.md)')),
  ],
  [
    'resp_obj_mem_limit',
    {
      takes: 'optional',
      bare: '',
      apply: (state) => {
        state.warnings.push(formatMessage('-o resp_obj_mem_limit is deprecated and ignored, as in memcached'));
      },
    },
  ],
]);

// --- relations, checked after all options as memcached does

function validateRelations(state: ParseState): void {
  validateItemSize(state);
  validateSlabChunkMax(state.settings);
  validateLru(state.settings);
  validateAuthentication(state);
  validateTls(state);
  resolvePorts(state);
  validateExtstore(state.settings);
}

/** memcached's storage_check_config and extstore_init checks, with its messages where it has them. */
function validateExtstore(s: Settings): void {
  if (s.extPaths.length === 0) return;
  if (s.itemSizeMaxBytes > s.extWbufBytes) {
    throw new UsageError(`-I (item_size_max: ${s.itemSizeMaxBytes}) cannot be larger than ext_wbuf_size: ${s.extWbufBytes}`, EX_USAGE);
  }
  if (s.udpPort !== 0) throw new UsageError('Cannot use UDP with extstore enabled (-U 0 to disable)', EX_USAGE);
  if (s.extPageBytes % s.extWbufBytes !== 0) {
    throw new UsageError('Failed to initialize external storage: page_size must be divisible by wbuf_size', EX_USAGE);
  }
  let pages = 0;
  for (const f of s.extPaths) {
    const filePages = Math.floor(f.sizeBytes / s.extPageBytes);
    if (filePages === 0) {
      throw new UsageError(`ext_path=${f.path}: ${f.sizeBytes} bytes hold no page of ext_page_size ${s.extPageBytes / MIB}m`, EX_USAGE);
    }
    pages += filePages;
  }
  if (pages > EXT_PAGES_MAX) {
    throw new UsageError('Failed to initialize external storage: page_count must total to < 65536. Increase page_size or lower path sizes', EX_USAGE);
  }
  if (new Set(s.extPaths.map((f) => f.path)).size !== s.extPaths.length) {
    throw new UsageError('ext_path: the same file is given twice', EX_USAGE);
  }
}

/** memcached's checks around -Z, before -s takes the network listeners away. */
function validateTls(state: ParseState): void {
  const s = state.settings;
  if (!s.tlsEnabled) {
    const prefixed = s.listeners.find((l) => l.tls !== undefined);
    if (prefixed !== undefined) {
      throw new UsageError(`'${prefixed.tls}' option is valid only when SSL is enabled`, EX_USAGE);
    }
    return;
  }
  if (s.tcpPort === 0) throw new UsageError('ERROR: You cannot enable SSL without a TCP port.', EX_USAGE);
  if (s.tlsChainCertPath === null) {
    throw new UsageError('Error loading the certificate chain: (null) : -Z needs -o ssl_chain_cert=<PEM file>', EX_USAGE);
  }
  if (s.socketPath !== null) state.warnings.push(formatMessage('-Z: the unix socket (-s) is served without TLS, as in memcached'));
  if (s.udpPort !== 0) state.warnings.push(formatMessage('-Z: UDP (-U) is not encrypted, as in memcached'));
  if (s.tlsCaCertPath === null) {
    const why = 'no client certificate can be verified, as in memcached';
    if (s.tlsVerifyMode !== 0) state.warnings.push(formatMessage(`-o ssl_verify_mode=${s.tlsVerifyMode} without ssl_ca_cert: ${why}`));
    const mtls = s.listenAddresses.filter((_, i) => s.listeners[i].tls === 'mtls');
    if (mtls.length > 0) state.warnings.push(formatMessage(`-l ${mtls.join(',')} without -o ssl_ca_cert: ${why}`));
  }
}

function validateItemSize(state: ParseState): void {
  const s = state.settings;
  if (s.itemSizeMaxBytes < ITEM_SIZE_MIN_BYTES) {
    throw new UsageError(`Item max size cannot be less than ${ITEM_SIZE_MIN_BYTES} bytes.`, EX_USAGE);
  }
  if (s.itemSizeMaxBytes > s.memoryLimitBytes / 2) {
    throw new UsageError('Cannot set item size limit higher than 1/2 of memory max.', EX_USAGE);
  }
  if (s.itemSizeMaxBytes > ITEM_SIZE_MAX_BYTES) {
    throw new UsageError('Cannot set item size limit higher than a gigabyte.', EX_USAGE);
  }
  // memcached: big items are chained from half-page chunks unless slab_chunk_max was given.
  if (s.itemSizeMaxBytes > MIB && !state.slabChunkMaxChanged) s.slabChunkMaxBytes = s.slabPageBytes / 2;
}

function validateSlabChunkMax(s: Settings): void {
  const chunk = `slab_chunk_max (bytes: ${s.slabChunkMaxBytes})`;
  const item = `-I (item_size_max: ${s.itemSizeMaxBytes})`;
  const hint = ' (set -o slab_chunk_max=<kilobytes> to fit)';
  if (s.slabChunkMaxBytes > s.itemSizeMaxBytes) {
    throw new UsageError(`${chunk} cannot be larger than ${item}${hint}`, EX_USAGE);
  }
  if (s.itemSizeMaxBytes % s.slabChunkMaxBytes !== 0) {
    throw new UsageError(`${item} must be evenly divisible by ${chunk}${hint}`, EX_USAGE);
  }
  if (s.slabPageBytes % s.slabChunkMaxBytes !== 0) {
    throw new UsageError(`${chunk} must divide evenly into ${s.slabPageBytes} (slab_page_size)`, EX_USAGE);
  }
  // memcached lets -n exceed the largest chunk (its first class then is the largest);
  // that is never what was meant, so say so instead of building one slab class.
  if (s.chunkSizeBytes > s.slabChunkMaxBytes) {
    throw new UsageError(`-n (bytes: ${s.chunkSizeBytes}) cannot be larger than ${chunk}`, EX_USAGE);
  }
}

function validateLru(s: Settings): void {
  if (s.hotLruPct + s.warmLruPct > 80) {
    throw new UsageError('hot_lru_pct + warm_lru_pct cannot be more than 80% combined', EX_USAGE);
  }
  if (s.tempLru && !s.lruMaintainerThread) {
    throw new UsageError('temporary_ttl requires lru_maintainer to be enabled', EX_USAGE);
  }
}

/**
 * memcached: -S means the binary protocol and -Y the text protocol (each chosen when -B is
 * absent, required when it is given); neither works over UDP. With both and no -B, -Y's
 * text protocol wins, as in memcached. A listener's own proto[...] must not open the other
 * protocol either: under -Y memcached 1.6.45 refuses proto[binary] and turns proto[negotiating]
 * into ascii; under -S (which memcached does not check) any other protocol is refused.
 */
function validateAuthentication(state: ParseState): void {
  const s = state.settings;
  if (s.saslEnabled) {
    if (!state.protocolSpecified) s.bindProtocol = 'binary';
    else if (s.bindProtocol !== 'binary') {
      throw new UsageError('ERROR: You cannot allow the ASCII protocol while using SASL.', EX_USAGE);
    }
    if (s.udpPort !== 0) throw new UsageError('ERROR: Cannot enable UDP while using binary SASL authentication.', EX_USAGE);
  }
  if (s.authFile !== null) {
    if (!state.protocolSpecified) s.bindProtocol = 'ascii';
    else if (s.bindProtocol !== 'ascii') {
      throw new UsageError('ERROR: You cannot allow the BINARY protocol while using ascii authentication tokens.', EX_USAGE);
    }
    if (s.udpPort !== 0) throw new UsageError('Cannot use UDP with ascii authentication enabled (-U 0 to disable)', EX_USAGE);
  }
  const only = s.bindProtocol;
  if (!s.saslEnabled && s.authFile === null) return;
  for (let i = 0; i < s.listeners.length; i++) {
    const listener = s.listeners[i];
    const p = listener.protocol;
    if (p === null || p === only) continue;
    if (only === 'ascii') {
      // memcached 1.6.45: under -Y a binary listener is refused, and a negotiating one only
      // speaks ascii, so every listener asks for the token.
      if (p === 'binary') throw new UsageError('Cannot use binary protocol when ascii authentication enabled', EX_USAGE);
      state.warnings.push(formatMessage('WARNING: negotiating ports are ascii only when ascii authentication enabled'));
      listener.protocol = 'ascii';
      continue;
    }
    const why = 'SASL (-S) needs the binary protocol';
    throw new UsageError(`-l ${s.listenAddresses[i]}: proto[${p === 'auto' ? 'negotiating' : p}] cannot be used: ${why}`, EX_USAGE);
  }
}

function resolvePorts(state: ParseState): void {
  const s = state.settings;
  // memcached: -U alone moves TCP to the same port.
  if (state.udpSpecified && s.udpPort !== 0 && !state.tcpSpecified) s.tcpPort = s.udpPort;
  // memcached: a unix socket replaces the network listeners.
  if (s.socketPath !== null) {
    s.tcpPort = 0;
    s.udpPort = 0;
  }
}
