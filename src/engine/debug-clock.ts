/**
 * The server clock of memcached's debug build, for `-o debug_commands`: `debugtime` moves it
 * by whole seconds or pauses it, so memcached's own tests can expire items without waiting.
 *
 * As memcached-debug's clock_handler: every tick computes now from the monotonic clock plus
 * the accumulated shift, unless paused; the `debugtime <n>` command adds n to the shift and,
 * until the next tick, moves now by the whole shift again (memcached does `current_time +=
 * delta`), which the next tick corrects.
 */
import { Clock } from '../store/clock';

export class DebugClock extends Clock {
  private offsetSeconds = 0;
  private paused = false;

  override tick(): number {
    if (this.paused) return this.now;
    super.tick();
    this.now += this.offsetSeconds;
    this.publish();
    return this.now;
  }

  /** `debugtime <seconds>` (negative moves back). */
  shift(seconds: number): void {
    this.offsetSeconds += seconds;
    this.now += this.offsetSeconds;
    this.publish();
  }

  /** `debugtime p`: the clock stops until `debugtime r`. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }
}
