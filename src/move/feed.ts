/** What a mirror follows the source with: its change feed (watch) or listing at an interval (poll). */
export interface ChangeFeed {
  readonly mode: "watch" | "poll";
  /**
   * The time (epoch ms) before which every change of the source has been handed to
   * `onChange`. Frozen while the feed is broken or a poll fails.
   */
  coveredUntil(): number;
  /** Stops following and waits for the feed's loop to end. */
  stop(): Promise<void>;
}

export interface FeedHooks {
  /** `key` changed at `time` (source clock, epoch ms). */
  onChange(key: string, time: number): void;
  /** The feed broke and was opened again: changes since `since` may have been missed. */
  onLost(since: number): void;
  /** Something failed; it is tried again after `delayMs`. */
  onError(error: unknown, delayMs: number, during: string): void;
}
