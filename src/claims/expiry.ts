/**
 * Expiry of claims: deletes the claims made before a cutoff, oldest first, and stops at the
 * first younger one, so a run costs what it deletes rather than what the store holds.
 *
 * It reads one hour folder at a time (see keys.ts). A store that pages its listings natively
 * (file, PostgreSQL, S3, memory) would be as cheap with one listing of the prefix; a NATS store
 * lists every key under a prefix for every page, and an hour folder bounds that to one hour.
 * The walk starts where the previous run ended (the first run of a process asks the store for
 * its oldest claim) and jumps over long gaps without claims instead of stepping through them.
 */
import type { Store } from "../types.js";
import { afterHour, claimTime, hourFolder, hourOf, HOUR_MS } from "./keys.js";

/** Keys listed per request. */
const PAGE = 1000;
/** After this many empty hour folders in a row the walk asks for the next claim instead. */
const MAX_EMPTY_HOURS = 24;

/** What one folder gave: claims deleted, keys seen, and whether a young claim ended the run. */
interface FolderResult {
  deleted: number;
  seen: number;
  stopped: boolean;
}

export class Expiry {
  readonly #store: Store;
  readonly #prefix: string;
  /** The hour folder the next run starts at; undefined until a run has finished. */
  #cursor: number | undefined;

  constructor(store: Store, prefix: string) {
    this.#store = store;
    this.#prefix = prefix;
  }

  /** Deletes every claim made at or before `cutoff` (epoch ms); resolves with how many. */
  async run(cutoff: number, signal?: AbortSignal): Promise<number> {
    const lastHour = hourOf(cutoff);
    let hour = this.#cursor ?? (await this.#firstClaimHour(undefined, signal));
    let deleted = 0;
    let empty = 0;
    while (hour !== undefined && hour <= lastHour) {
      const folder = await this.#expireFolder(hour, cutoff, signal);
      deleted += folder.deleted;
      if (folder.stopped) break;
      empty = folder.seen === 0 ? empty + 1 : 0;
      if (empty >= MAX_EMPTY_HOURS) {
        hour = await this.#firstClaimHour(hour, signal);
        empty = 0;
      } else {
        hour += HOUR_MS;
      }
    }
    // The next run starts one hour back: a claim whose checkIn began in that hour but whose
    // value landed after this run listed it is still found.
    this.#cursor = lastHour - HOUR_MS;
    return deleted;
  }

  /** Deletes the expired claims of one hour folder, page by page, until a younger claim. */
  async #expireFolder(hour: number, cutoff: number, signal: AbortSignal | undefined): Promise<FolderResult> {
    const folder = hourFolder(this.#prefix, hour);
    const result: FolderResult = { deleted: 0, seen: 0, stopped: false };
    let after: string | undefined;
    for (;;) {
      const page = await this.#store.listPage(folder, { limit: PAGE, after, signal });
      result.seen += page.keys.length;
      const expired: string[] = [];
      for (const key of page.keys) {
        const time = claimTime(this.#prefix, key);
        if (time === undefined) continue; // not a claim: never ours to delete
        if (time > cutoff) {
          result.stopped = true;
          break;
        }
        expired.push(key);
      }
      if (expired.length > 0) {
        await this.#store.deleteMany(expired, { signal });
        result.deleted += expired.length;
      }
      if (result.stopped || page.next === undefined) return result;
      after = page.next;
    }
  }

  /** The hour of the oldest claim (after the folder of `afterHourMs`), or undefined when none. */
  async #firstClaimHour(afterHourMs: number | undefined, signal: AbortSignal | undefined): Promise<number | undefined> {
    let after = afterHourMs === undefined ? undefined : afterHour(this.#prefix, afterHourMs);
    for (;;) {
      const page = await this.#store.listPage(this.#prefix, { limit: 100, after, signal });
      for (const key of page.keys) {
        const time = claimTime(this.#prefix, key);
        if (time !== undefined) return hourOf(time);
      }
      if (page.next === undefined) return undefined;
      after = page.next;
    }
  }
}
