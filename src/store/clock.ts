/**
 * Server clock, as memcached keeps it: `now` is whole seconds since the process started
 * (plus a small offset so that 0 never means "now"), read from a monotonic clock and
 * refreshed once a second and on demand. Expiry times are stored in these units.
 */
import { performance } from 'node:perf_hooks';

/** memcached: exptimes above 30 days are absolute unix times. */
export const REALTIME_MAXDELTA_SECONDS = 60 * 60 * 24 * 30;
/** How often a clock that follows another thread's reads it. */
const FOLLOWER_TICK_MS = 20;
/** memcached starts its clock this far in the past (ITEM_UPDATE_INTERVAL + 2). */
const START_OFFSET_SECONDS = 62;

/**
 * What another thread follows a clock with (structured-cloneable): the shared word the leading
 * clock publishes `now` in, and the unix time of rel time 0.
 */
export interface SharedClock {
  readonly word: Int32Array;
  readonly processStartedUnix: number;
}

export class Clock {
  /** Seconds since start (server-relative, "rel_time"). */
  now = START_OFFSET_SECONDS;
  /** Unix time (seconds) that corresponds to rel time 0. */
  readonly processStartedUnix: number;
  private readonly startMs: number;
  private timer: NodeJS.Timeout | null = null;
  /** Where `now` is published for other threads (leader) or read from (follower). */
  private readonly word: Int32Array;
  private readonly follower: boolean;

  /**
   * A clock of its own, or (`follow`) one that reads another thread's clock. `resumeFrom`
   * (-e warm restart): the saved store's rel time 0, so the saved times keep their meaning and
   * the time the server was down counts against every TTL, as memcached's restart does.
   */
  constructor(follow: SharedClock | null = null, resumeFrom: number | null = null) {
    this.follower = follow !== null;
    this.word = follow?.word ?? new Int32Array(new SharedArrayBuffer(4));
    const unix = Math.floor(Date.now() / 1000);
    this.processStartedUnix = follow?.processStartedUnix ?? resumeFrom ?? unix - START_OFFSET_SECONDS;
    // Resumed, startMs lies as far back as the saved rel time 0 (less the start offset).
    this.startMs = performance.now() - (follow === null && resumeFrom !== null ? (unix - resumeFrom - START_OFFSET_SECONDS) * 1000 : 0);
    if (this.follower) this.now = Atomics.load(this.word, 0);
    else {
      this.now = this.elapsed();
      this.publish();
    }
  }

  /** `now` from the monotonic clock: START_OFFSET_SECONDS plus the whole seconds since startMs. */
  private elapsed(): number {
    return START_OFFSET_SECONDS + Math.floor((performance.now() - this.startMs) / 1000);
  }

  /** What a serving thread follows this clock with. */
  shared(): SharedClock {
    return { word: this.word, processStartedUnix: this.processStartedUnix };
  }

  /** Refresh `now`; cheap enough to call once per read event. */
  tick(): number {
    if (this.follower) {
      // A plain load (an aligned int32 never tears): once per read event, any recent second
      // will do, and Atomics.load is a builtin call in optimized code.
      this.now = this.word[0];
      return this.now;
    }
    this.now = this.elapsed();
    this.publish();
    return this.now;
  }

  /** The leader writes `now` for the threads that follow it. */
  protected publish(): void {
    if (!this.follower) Atomics.store(this.word, 0, this.now);
  }

  start(): void {
    if (this.timer) return;
    // A follower looks often: the leader's second may have begun just after its last look, and
    // `debugtime` moves the leader's clock at any moment.
    this.timer = setInterval(() => this.tick(), this.follower ? FOLLOWER_TICK_MS : 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Current unix time as memcached reports it in `stats` (`time`). */
  unixNow(): number {
    return this.processStartedUnix + this.now;
  }

  /**
   * memcached's realtime(): a client exptime to server-relative time.
   * 0 → never; negative → already expired; ≤ 30 days → relative; else absolute unix time.
   */
  realtime(exptime: number): number {
    if (exptime === 0) return 0;
    if (exptime < 0) return 1;
    if (exptime > REALTIME_MAXDELTA_SECONDS) {
      if (exptime <= this.processStartedUnix) return 1;
      return Math.min(exptime - this.processStartedUnix, 0xffffffff);
    }
    return Math.min(exptime + this.now, 0xffffffff);
  }
}
