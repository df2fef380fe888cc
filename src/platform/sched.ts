/**
 * The process's CPU scheduling policy and priority, for `stats settings` and the startup log
 * (why it is read, never set: doc/platform.md, "Real-time scheduling").
 *
 * memcached-ts does not change its own policy: `sched_setscheduler` from inside Node would
 * change only the calling thread, while `chrt -f 50 node ...` (or systemd's
 * CPUSchedulingPolicy=) puts every thread, V8's and libuv's included, under the policy. So it
 * only reports what it was launched with, read per thread: from the native addon
 * (sched_getscheduler + sched_getparam), or without it from /proc/<pid>/task/<tid>/stat
 * (fields 40 rt_priority and 41 policy), which gives the same numbers.
 *
 * Not for: setting policies (scripts/memcached-ts-rt and scripts/memcached-ts.service do).
 */
import * as fs from 'node:fs';
import { nativeAddon } from './native';

/** Linux's policy numbers (sched.h), without SCHED_RESET_ON_FORK. */
const POLICY_NAMES: Record<number, string> = {
  0: 'SCHED_OTHER',
  1: 'SCHED_FIFO',
  2: 'SCHED_RR',
  3: 'SCHED_BATCH',
  5: 'SCHED_IDLE',
  6: 'SCHED_DEADLINE',
};
const SCHED_RESET_ON_FORK = 0x40000000;
/** /proc/<tid>/stat: fields counted from 1; the ones after the comm start at field 3. */
const STAT_FIELD_FIRST_AFTER_COMM = 3;
const STAT_FIELD_RT_PRIORITY = 40;
const STAT_FIELD_POLICY = 41;

export interface Scheduling {
  /** "SCHED_FIFO", "SCHED_OTHER", ... ("SCHED_<n>" for a number Linux adds later). */
  readonly policy: string;
  /** The real-time priority (1-99 under SCHED_FIFO/SCHED_RR, 0 otherwise). */
  readonly priority: number;
}

export interface ThreadScheduling extends Scheduling {
  readonly tid: number;
  /** The thread's name (/proc/.../comm), e.g. "node", "V8Worker", "libuv-worker". */
  readonly name: string;
}

/** Where the numbers came from. */
export type SchedulingSource = 'addon' | 'proc';

export function policyName(policy: number): string {
  const p = policy & ~SCHED_RESET_ON_FORK;
  return POLICY_NAMES[p] ?? `SCHED_${p}`;
}

/** True for the real-time policies, whose priority means something. */
export function isRealTime(s: Scheduling): boolean {
  return s.policy === 'SCHED_FIFO' || s.policy === 'SCHED_RR';
}

/** /proc/<pid>/task/<tid>/stat, fields 40 and 41. Throws when the file is not there. */
export function readProcScheduling(tid: number, pid = process.pid): Scheduling {
  const text = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1');
  // The comm (field 2) is in parentheses and may hold spaces and ')': split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).trim().split(' ');
  const field = (n: number): number => Number(rest[n - STAT_FIELD_FIRST_AFTER_COMM]);
  const policy = field(STAT_FIELD_POLICY);
  const priority = field(STAT_FIELD_RT_PRIORITY);
  if (!Number.isInteger(policy) || !Number.isInteger(priority)) throw new Error(`/proc/${pid}/task/${tid}/stat: unexpected format`);
  return { policy: policyName(policy), priority };
}

/** One thread of this process (tid = process.pid: the main thread). */
export function threadScheduling(tid: number, source: SchedulingSource = defaultSource()): Scheduling {
  const addon = source === 'addon' ? nativeAddon() : null;
  if (addon !== null) {
    const [policy, priority] = addon.getScheduler(tid);
    return { policy: policyName(policy), priority };
  }
  return readProcScheduling(tid);
}

/** The main thread's policy: what `stats settings` reports. */
export function processScheduling(): Scheduling & { source: SchedulingSource } {
  const source = defaultSource();
  return { ...threadScheduling(process.pid, source), source };
}

/** Every thread of this process, main thread first (threads may come and go meanwhile). */
export function threadsScheduling(source: SchedulingSource = defaultSource()): ThreadScheduling[] {
  const out: ThreadScheduling[] = [];
  const tids = fs.readdirSync(`/proc/${process.pid}/task`).map(Number).filter(Number.isInteger).sort((a, b) => a - b);
  for (const tid of tids) {
    try {
      const name = fs.readFileSync(`/proc/${process.pid}/task/${tid}/comm`, 'utf8').trim();
      out.push({ tid, name, ...threadScheduling(tid, source) });
    } catch {
      // The thread ended between readdir and read.
    }
  }
  out.sort((a, b) => (a.tid === process.pid ? -1 : b.tid === process.pid ? 1 : a.tid - b.tid));
  return out;
}

function defaultSource(): SchedulingSource {
  return nativeAddon() !== null ? 'addon' : 'proc';
}

/** "SCHED_FIFO priority 50", "SCHED_OTHER". */
export function describeScheduling(s: Scheduling): string {
  return isRealTime(s) ? `${s.policy} priority ${s.priority}` : s.policy;
}

/**
 * Startup log lines about scheduling: the policy, and a warning when threads differ (someone
 * ran `chrt -p` on one thread only: then part of the server is not real-time).
 */
export function schedulingLogLines(): string[] {
  let threads: ThreadScheduling[];
  try {
    threads = threadsScheduling();
  } catch (error) {
    return [`scheduling policy unknown: ${error instanceof Error ? error.message : String(error)}`];
  }
  if (threads.length === 0) return ['scheduling policy unknown: no threads in /proc'];
  const main = threads[0];
  const lines = [`scheduling: ${describeScheduling(main)} (${threads.length} threads)`];
  const other = threads.filter((t) => t.policy !== main.policy || t.priority !== main.priority);
  if (other.length > 0) {
    const list = other.map((t) => `${t.tid} ${t.name}: ${describeScheduling(t)}`).join(', ');
    lines.push(`warning: threads with another scheduling policy than the main thread: ${list}; launch the whole process under chrt (scripts/memcached-ts-rt)`);
  }
  return lines;
}
