/**
 * CPU accounting for a measured phase, from /proc: how much CPU the server used (so a run
 * can report server CPU per operation, the number the design's hot-path decisions were made
 * on), and how much CPU other processes on the machine used meanwhile (noise: anything else
 * running moves the numbers, and the report should say so).
 *
 * Not for: anything outside Linux (every reader returns null there).
 */
import * as fs from 'node:fs';
import { captureSync } from './procs';

let ticksPerSecond: number | null = null;

function clockTicks(): number {
  if (ticksPerSecond === null) {
    const out = captureSync('getconf', ['CLK_TCK']);
    const n = out === null ? NaN : Number.parseInt(out, 10);
    ticksPerSecond = Number.isFinite(n) && n > 0 ? n : 100;
  }
  return ticksPerSecond;
}

/** utime+stime of a process, plus cutime+cstime (its waited-for children) when `withChildren`. */
function processCpuSeconds(pid: number | 'self', withChildren: boolean): number | null {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    const f = (field: number): number => Number(rest[field - 3]);
    const ticks = f(14) + f(15) + (withChildren ? f(16) + f(17) : 0);
    return Number.isFinite(ticks) ? ticks / clockTicks() : null;
  } catch {
    return null;
  }
}

/** Busy CPU seconds of the whole machine (all cores), from the first line of /proc/stat. */
function machineBusySeconds(): number | null {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = v[3] + v[4];
    return (total - idle) / clockTicks();
  } catch {
    return null;
  }
}

export interface CpuMark {
  atMs: number;
  server: number | null;
  harness: number | null;
  machine: number | null;
}

export function markCpu(serverPid: number): CpuMark {
  return { atMs: Date.now(), server: processCpuSeconds(serverPid, false), harness: processCpuSeconds('self', true), machine: machineBusySeconds() };
}

export interface CpuUse {
  wallSeconds: number;
  /** CPU seconds the server used. */
  serverSeconds: number | null;
  /** CPU seconds of everything else: machine busy time minus server, harness and load generator. */
  otherSeconds: number | null;
}

/**
 * CPU use between two marks. The load generator's time is counted once it has exited (it is
 * a waited-for child of the harness), so take the second mark after it ends.
 */
export function cpuBetween(a: CpuMark, b: CpuMark): CpuUse {
  const d = (x: number | null, y: number | null): number | null => (x === null || y === null ? null : y - x);
  const server = d(a.server, b.server);
  const harness = d(a.harness, b.harness);
  const machine = d(a.machine, b.machine);
  const other = server === null || harness === null || machine === null ? null : Math.max(0, machine - server - harness);
  return { wallSeconds: (b.atMs - a.atMs) / 1000, serverSeconds: server, otherSeconds: other };
}
