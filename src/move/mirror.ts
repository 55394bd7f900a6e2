/**
 * `mirror(source, destination, options)`: keeps the destination in step with the source under a
 * prefix, until the signal aborts. See docs/move.md ("Mirror") for the whole design; in short:
 *
 * 1. The change feed is opened first (the source's `watch`, or a first listing to compare later
 *    ones with), so every change from then on is seen.
 * 2. A catch-up `copy` brings the destination up to date: everything on a first start, the keys
 *    modified since the checkpoint (minus a safety margin) on a restart. With `deletes`, a
 *    reconcile pass then deletes destination keys the source no longer has.
 * 3. Each change seen is applied with `transferKey` (which reads the source's current value, so
 *    the last change of a key wins and applying twice is harmless); a key gone from the source
 *    is deleted from the destination when `deletes` is on.
 * 4. A checkpoint records the time before which every change is applied; it is written only
 *    after those changes were applied, so a restart resumes from a position never ahead of the
 *    destination. Nothing is lost; a change may be applied twice.
 *
 * A failing destination or source is retried with backoff, the change kept; too many changes
 * waiting (an outage under load) are forgotten and replaced by a rescan from the oldest of them.
 */
import { setMaxListeners } from "node:events";
import type { Registry } from "prom-client";
import { StorageError, isAbortError, isStorageError } from "../errors.js";
import { assertPrefix } from "../keys.js";
import { sleep } from "../internal/signal.js";
import type { Store } from "../types.js";
import { Backoff } from "./backoff.js";
import { CHECKPOINT_FOLDER, defaultCheckpointKey, openCheckpoint, type Checkpoint, type CheckpointLocation, type CheckpointState } from "./checkpoint.js";
import { copy, type CopySummary } from "./copy.js";
import type { ChangeFeed, FeedHooks } from "./feed.js";
import { registerMirrorMetrics } from "./mirror-metrics.js";
import { PendingChanges } from "./pending.js";
import { startPollFeed } from "./poll-feed.js";
import { reconcileDeletes } from "./reconcile.js";
import { transferKey } from "./transfer.js";
import { startWatchFeed } from "./watch-feed.js";

export interface MirrorOptions {
  /** Source keys mirrored: those starting with this (default `""`, all). */
  prefix?: string;
  /** Where they go in the destination: the prefix replaced by this (default: the same prefix). */
  destinationPrefix?: string;
  /** Delete from the destination what is deleted from the source (default false: keep it). */
  deletes?: boolean;
  /**
   * Where progress is kept: `{ key }` in the destination, `{ file }` locally (default
   * `{ key: ".stowage/mirror/<name>" }`).
   */
  checkpoint?: CheckpointLocation;
  /** Names the mirror in its default checkpoint key, its metrics and its events (default `default`). */
  name?: string;
  /** For a source without a change feed: how often it is listed, ms (default 5000). */
  interval?: number;
  /** Keys applied at once (default 16). */
  concurrency?: number;
  /**
   * How far before the checkpoint a restart looks again, ms (default 60 000): covers clock skew
   * between this process and the source, and changes still on their way through the feed.
   */
  safetyMarginMs?: number;
  /** Most keys waiting to be applied before the mirror switches to a rescan (default 100 000). */
  maxPending?: number;
  /** How often the checkpoint is written while changes flow, ms (default 1000). */
  checkpointIntervalMs?: number;
  /** Stops the mirror: `mirror()` then resolves (after writing the checkpoint). */
  signal?: AbortSignal;
  /** Told what happens (copies, rescans, retries, failures); must not throw. */
  onEvent?: (event: MirrorEvent) => void;
  /** Export `stowage_mirror_lag_seconds` and `stowage_mirror_changes_total` here (true: prom-client's global registry). */
  metrics?: boolean | { registry?: Registry };
}

export type MirrorEvent =
  | { type: "copied"; reason: "start" | "resume" | "rescan"; summary: CopySummary }
  | { type: "reconciled"; deleted: number; examined: number }
  | { type: "following"; mode: "watch" | "poll" }
  | { type: "applied"; key: string; outcome: "copied" | "skipped" | "deleted" | "kept" }
  | { type: "rescan"; reason: "overflow" | "feed-lost"; since: Date }
  | { type: "retrying"; during: string; key?: string; error: unknown; delayMs: number }
  | { type: "failed"; key: string; error: unknown }
  | { type: "checkpoint"; appliedUntil: Date };

export type MirrorPhase = "starting" | "copying" | "following" | "stopped";

export interface MirrorStatus {
  name: string;
  phase: MirrorPhase;
  /** `watch` or `poll`, once following. */
  mode: "watch" | "poll" | undefined;
  /** Now minus the source time of the oldest change not applied (0 when caught up). */
  lagSeconds: number;
  /** Keys waiting to be applied. */
  pending: number;
  /** Keys handled by the last (or running) catch-up copy. */
  copyProgress: number;
  copied: number;
  skipped: number;
  deleted: number;
  failed: number;
  /** What the last checkpoint written says. */
  appliedUntil: Date | undefined;
  lastError: { message: string; at: string } | undefined;
}

export interface MirrorSummary {
  name: string;
  copied: number;
  skipped: number;
  deleted: number;
  failed: number;
  appliedUntil: Date | undefined;
}

/** Kinds of failure that no retry can fix: the change is reported and passed over. */
const PERMANENT = new Set(["invalid", "unsupported"]);

/**
 * Mirrors `source` into `destination` until `options.signal` aborts; resolves then with what
 * it did. Rejects only for a mistake in the options or an unreadable checkpoint.
 */
export function mirror(source: Store, destination: Store, options: MirrorOptions = {}): Promise<MirrorSummary> {
  return new Mirror(source, destination, options).run();
}

/** A running mirror; {@link mirror} runs one to the end. Use the class to read its status meanwhile. */
export class Mirror {
  readonly name: string;
  readonly #source: Store;
  readonly #destination: Store;
  readonly #prefix: string;
  readonly #destinationPrefix: string;
  readonly #deletes: boolean;
  readonly #checkpoint: Checkpoint;
  readonly #intervalMs: number;
  readonly #concurrency: number;
  readonly #marginMs: number;
  readonly #checkpointIntervalMs: number;
  readonly #signal: AbortSignal;
  readonly #onEvent: (event: MirrorEvent) => void;
  readonly #pending: PendingChanges;
  readonly #metrics: { count(outcome: string): void; remove(): void } | undefined;
  #phase: MirrorPhase = "starting";
  #feed: ChangeFeed | undefined;
  /** When set, a rescan from this time (epoch ms; 0: everything) is due. */
  #rescanDue: number | undefined;
  /** While a rescan runs, the time it started from. */
  #rescanning: number | undefined;
  #rescanReason: "start" | "resume" | "rescan" = "start";
  #paused = true;
  #appliedUntil: number | undefined;
  #reconciledAt: number | undefined;
  #counts = { copied: 0, skipped: 0, deleted: 0, failed: 0 };
  /** Keys the running catch-up copy has handled so far. */
  #copyProgress = 0;
  #lastError: MirrorStatus["lastError"];
  #poke: (() => void) | undefined;

  constructor(source: Store, destination: Store, options: MirrorOptions = {}) {
    const fail = (message: string) => new StorageError("invalid", message, { op: "mirror" });
    this.#prefix = options.prefix ?? "";
    assertPrefix(this.#prefix, "mirror");
    this.#destinationPrefix = options.destinationPrefix ?? this.#prefix;
    assertPrefix(this.#destinationPrefix, "mirror");
    this.name = options.name ?? "default";
    if (!/^[A-Za-z0-9_.-]{1,128}$/.test(this.name) || this.name === "." || this.name === "..") throw fail("name must be 1-128 characters of A-Z a-z 0-9 _ . -");
    this.#intervalMs = positive(options.interval ?? 5000, "interval", fail);
    this.#concurrency = Math.floor(positive(options.concurrency ?? 16, "concurrency", fail));
    this.#marginMs = options.safetyMarginMs ?? 60_000;
    if (!Number.isFinite(this.#marginMs) || this.#marginMs < 0) throw fail("safetyMarginMs must be a number of milliseconds >= 0");
    this.#checkpointIntervalMs = positive(options.checkpointIntervalMs ?? 1000, "checkpointIntervalMs", fail);
    this.#pending = new PendingChanges(Math.floor(positive(options.maxPending ?? 100_000, "maxPending", fail)));
    this.#source = source;
    this.#destination = destination;
    this.#deletes = options.deletes === true;
    this.#checkpoint = openCheckpoint(destination, options.checkpoint ?? { key: defaultCheckpointKey(this.name) });
    // Every store call in flight listens to this signal: many at once are expected, not a leak.
    const stop = new AbortController();
    setMaxListeners(0, stop.signal);
    const given = options.signal;
    if (given?.aborted) stop.abort(given.reason);
    else given?.addEventListener("abort", () => stop.abort(given.reason), { once: true });
    this.#signal = stop.signal;
    const onEvent = options.onEvent;
    this.#onEvent = (event) => {
      try {
        onEvent?.(event);
      } catch {
        // A listener's failure is not the mirror's.
      }
    };
    if (options.metrics) {
      const registry = options.metrics === true ? undefined : options.metrics.registry;
      this.#metrics = registerMirrorMetrics(this, registry);
    }
  }

  /** Now minus the source time of the oldest change not yet applied, seconds; 0 when caught up. */
  lagSeconds(): number {
    // A first full copy has no "oldest change": it is behind by as long as it has been running.
    const rescan = (from: number | undefined) => (from === 0 ? this.#startedAt : (from ?? Infinity));
    const oldest = Math.min(this.#pending.oldest() ?? Infinity, rescan(this.#rescanDue), rescan(this.#rescanning));
    if (oldest === Infinity) return this.#phase === "starting" ? this.#sinceStart() : 0;
    return Math.max(0, (Date.now() - oldest) / 1000);
  }

  status(): MirrorStatus {
    return {
      name: this.name,
      phase: this.#phase,
      mode: this.#feed?.mode,
      lagSeconds: this.lagSeconds(),
      pending: this.#pending.size,
      copyProgress: this.#copyProgress,
      ...this.#counts,
      appliedUntil: this.#appliedUntil === undefined ? undefined : new Date(this.#appliedUntil),
      lastError: this.#lastError,
    };
  }

  #startedAt = Date.now();
  #sinceStart(): number {
    return (Date.now() - this.#startedAt) / 1000;
  }

  /** Runs until the signal aborts. */
  async run(): Promise<MirrorSummary> {
    this.#startedAt = Date.now();
    const workers: Promise<void>[] = [];
    try {
      const state = await this.#retrying("checkpoint", () => this.#checkpoint.read(this.#signal));
      if (state && state.prefix === this.#prefix && state.destinationPrefix === this.#destinationPrefix) {
        this.#appliedUntil = state.appliedUntil;
        this.#reconciledAt = state.reconciledAt;
        this.#rescanDue = Math.max(1, state.appliedUntil - this.#marginMs);
        this.#rescanReason = "resume";
      } else {
        this.#rescanDue = 0;
        this.#rescanReason = "start";
      }
      this.#feed = await this.#retrying("follow", () => this.#openFeed());
      for (let i = 0; i < this.#concurrency; i++) workers.push(this.#work());
      await this.#loop();
    } catch (err) {
      if (!(this.#signal.aborted && isAbortError(err, this.#signal))) throw err;
    } finally {
      this.#pending.wakeAll();
      await this.#feed?.stop();
      await Promise.allSettled(workers);
      await this.#saveCheckpoint(AbortSignal.timeout(5000)).catch(() => undefined);
      this.#phase = "stopped";
      this.#metrics?.remove();
    }
    return { name: this.name, ...this.#counts, appliedUntil: this.#appliedUntil === undefined ? undefined : new Date(this.#appliedUntil) };
  }

  #openFeed(): Promise<ChangeFeed> {
    const hooks: FeedHooks = {
      onChange: (key, time) => {
        if (!this.#mirrored(key)) return;
        const overflowed = this.#pending.overflowSince;
        this.#pending.add(key, time);
        const overflow = this.#pending.overflowSince;
        if (overflow !== undefined && overflow !== overflowed) this.#askRescan(overflow, "overflow");
      },
      onLost: (since) => this.#askRescan(since, "feed-lost"),
      onError: (error, delayMs, during) => this.#report(error, during, delayMs),
    };
    if (this.#source.capabilities.watch) return startWatchFeed(this.#source, this.#prefix, hooks, this.#signal);
    return startPollFeed(this.#source, this.#prefix, { intervalMs: this.#intervalMs, include: (key) => this.#mirrored(key) }, hooks, this.#signal);
  }

  /** The main loop: rescans when due, writes the checkpoint at its interval. */
  async #loop(): Promise<void> {
    while (!this.#signal.aborted) {
      if (this.#rescanDue !== undefined) {
        await this.#rescan();
        this.#onEvent({ type: "following", mode: this.#feed!.mode });
      }
      await this.#saveCheckpoint(this.#signal).catch((err: unknown) => {
        if (!this.#signal.aborted) this.#report(err, "checkpoint", this.#checkpointIntervalMs);
      });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, this.#checkpointIntervalMs);
        const onAbort = () => done();
        this.#signal.addEventListener("abort", onAbort, { once: true });
        const signal = this.#signal;
        this.#poke = done;
        function done() {
          clearTimeout(timer);
          signal.removeEventListener("abort", onAbort);
          resolve();
        }
      });
      this.#poke = undefined;
    }
  }

  #askRescan(since: number, reason: "overflow" | "feed-lost"): void {
    const from = Math.max(1, since - this.#marginMs);
    this.#rescanDue = Math.min(this.#rescanDue ?? Infinity, from);
    this.#rescanReason = "rescan";
    this.#onEvent({ type: "rescan", reason, since: new Date(from) });
    this.#poke?.();
  }

  /**
   * Catch-up copy and reconcile, with the appliers paused: an applier writing a key the
   * reconcile's listing of the source missed would have it deleted again, its change spent.
   */
  async #rescan(): Promise<void> {
    this.#paused = true;
    while (this.#pending.activeCount > 0) await sleep(20, this.#signal);
    const from = this.#rescanDue!;
    this.#copyProgress = 0;
    this.#rescanning = from;
    this.#rescanDue = undefined;
    this.#pending.clearOverflow();
    this.#phase = "copying";
    const summary = await this.#retrying("copy", async () => {
      const result = await copy(this.#source, this.#destination, {
        prefix: this.#prefix,
        destinationPrefix: this.#destinationPrefix,
        since: from > 1 ? new Date(from) : undefined,
        concurrency: this.#concurrency,
        signal: this.#signal,
        onProgress: (progress) => (this.#copyProgress = progress.keys),
      });
      // Keys the copy could not write are applied one by one, like any change: one the
      // destination can never take is then reported and passed over, the others retried.
      if (result.failed > result.failures.length) throw new StorageError("transient", `the copy failed for ${result.failed} keys, more than it names`, { op: "mirror" });
      for (const failure of result.failures) this.#pending.add(failure.key, from === 0 ? this.#startedAt : from);
      return result;
    });
    this.#counts.copied += summary.copied;
    this.#counts.skipped += summary.skipped;
    this.#onEvent({ type: "copied", reason: this.#rescanReason, summary });
    if (this.#deletes) {
      const result = await this.#retrying("reconcile", () =>
        reconcileDeletes(this.#source, this.#destination, {
          prefix: this.#prefix,
          destinationPrefix: this.#destinationPrefix,
          keep: (key) => key === this.#checkpoint.key || key.startsWith(CHECKPOINT_FOLDER),
          signal: this.#signal,
        }),
      );
      this.#counts.deleted += result.deleted;
      this.#reconciledAt = Date.now();
      this.#onEvent({ type: "reconciled", ...result });
    }
    // A rescan asked for while this one ran (overflow, feed lost) is due next: this one may have
    // listed the source before the changes it stands for.
    this.#rescanning = undefined;
    this.#phase = "following";
    this.#paused = false;
    this.#pending.wakeAll();
  }

  /** One applier: takes waiting keys and applies them until the mirror stops. */
  async #work(): Promise<void> {
    while (!this.#signal.aborted) {
      const key = this.#paused ? undefined : this.#pending.take();
      if (key === undefined) {
        await this.#pending.changed();
        if (this.#paused) await sleep(20, this.#signal).catch(() => undefined);
        continue;
      }
      try {
        await this.#apply(key);
      } catch (err) {
        if (this.#signal.aborted) return; // the key stays unapplied: the final checkpoint says so
        throw err;
      } finally {
        if (!this.#signal.aborted) this.#pending.done(key);
      }
    }
  }

  /** Makes the destination's copy of `key` what the source holds now, retrying until it can. */
  async #apply(key: string): Promise<void> {
    const target = this.#destinationPrefix + key.slice(this.#prefix.length);
    const backoff = new Backoff();
    for (;;) {
      try {
        const { outcome } = await transferKey(this.#source, this.#destination, key, target, { signal: this.#signal });
        if (outcome !== "missing") return this.#applied(key, outcome);
        if (!this.#deletes) return this.#applied(key, "kept");
        await this.#destination.delete(target, { signal: this.#signal });
        return this.#applied(key, "deleted");
      } catch (err) {
        if (this.#signal.aborted) throw err;
        if (isStorageError(err) && PERMANENT.has(err.kind)) {
          this.#counts.failed++;
          this.#metrics?.count("failed");
          this.#lastError = { message: err.message, at: new Date().toISOString() };
          this.#onEvent({ type: "failed", key, error: err });
          return;
        }
        const delay = backoff.next();
        this.#report(err, "apply", delay, key);
        await sleep(delay, this.#signal);
      }
    }
  }

  #applied(key: string, outcome: "copied" | "skipped" | "deleted" | "kept"): void {
    if (outcome !== "kept") this.#counts[outcome]++;
    this.#metrics?.count(outcome);
    this.#onEvent({ type: "applied", key, outcome });
  }

  /** The time before which every change is applied, as far as this process knows. */
  #appliedPosition(): number | undefined {
    if (this.#rescanDue !== undefined || this.#rescanning !== undefined) return this.#appliedUntil;
    const covered = this.#feed?.coveredUntil();
    if (covered === undefined) return this.#appliedUntil;
    const oldest = this.#pending.oldest();
    const position = oldest === undefined ? covered : Math.min(covered, oldest - 1);
    return Math.max(position, this.#appliedUntil ?? -Infinity);
  }

  async #saveCheckpoint(signal: AbortSignal): Promise<void> {
    const position = this.#appliedPosition();
    if (position === undefined || position === this.#lastSaved) return;
    const state: CheckpointState = { format: 1, appliedUntil: position, prefix: this.#prefix, destinationPrefix: this.#destinationPrefix };
    if (this.#reconciledAt !== undefined) state.reconciledAt = this.#reconciledAt;
    await this.#checkpoint.write(state, signal);
    this.#appliedUntil = position;
    this.#lastSaved = position;
    this.#onEvent({ type: "checkpoint", appliedUntil: new Date(position) });
  }

  #lastSaved: number | undefined;

  /** Keys of the source this mirror carries: under the prefix, and never its own checkpoint. */
  #mirrored(key: string): boolean {
    if (!key.startsWith(this.#prefix)) return false;
    const target = this.#destinationPrefix + key.slice(this.#prefix.length);
    return target !== this.#checkpoint.key;
  }

  /** Runs `work` until it succeeds, backing off after failures; only an abort or a permanent error ends it. */
  async #retrying<T>(during: string, work: () => Promise<T>): Promise<T> {
    const backoff = new Backoff();
    for (;;) {
      try {
        return await work();
      } catch (err) {
        if (this.#signal.aborted) throw this.#signal.reason;
        if (isStorageError(err) && err.kind === "invalid") throw err;
        const delay = backoff.next();
        this.#report(err, during, delay);
        await sleep(delay, this.#signal);
      }
    }
  }

  #report(error: unknown, during: string, delayMs: number, key?: string): void {
    this.#lastError = { message: error instanceof Error ? error.message : String(error), at: new Date().toISOString() };
    this.#onEvent({ type: "retrying", during, key, error, delayMs });
  }
}

function positive(value: number, name: string, fail: (message: string) => Error): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) throw fail(`${name} must be a positive number`);
  return value;
}
