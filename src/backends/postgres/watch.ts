/**
 * `watch` on PostgreSQL: one connection per store LISTENs on the table's channel while feeds
 * are open, and hands each notification (sent by the table's triggers, see schema.ts) to the
 * feeds whose prefix it matches.
 *
 * NOTIFY is not durable: what is sent while no connection listens is never delivered. So when
 * the listening connection drops, every open feed ends with a `transient` error (a consumer
 * that must not miss a change re-reads what it follows, then watches again); the next `watch`
 * opens a new listening connection.
 */
import type { Notification, Pool, PoolClient } from "pg";
import { StorageError } from "../../errors.js";
import { Channel } from "../../internal/channel.js";
import type { ChangeEvent } from "../../types.js";
import { quoteIdent } from "./schema.js";

interface Feed {
  prefix: string;
  channel: Channel<ChangeEvent>;
}

/** Parses a payload `op version time-ms key` (see notifyFunction in schema.ts). */
export function parseNotification(payload: string): ChangeEvent | undefined {
  const match = /^([pd]) (-|\d+) (-?\d+) ([\s\S]+)$/.exec(payload);
  if (!match) return undefined;
  const event: ChangeEvent = { key: match[4]!, op: match[1] === "d" ? "delete" : "put", time: new Date(Number(match[3])) };
  if (match[2] !== "-") event.version = match[2]!;
  return event;
}

/** The listening connection and how to let go of it. */
interface Listening {
  client: PoolClient;
  /** Removes the handlers this module added to the client. */
  detach(): void;
}

export class Listener {
  readonly #pool: Pool;
  readonly #channel: string;
  readonly #feeds = new Set<Feed>();
  /** The listening connection, while feeds are open. */
  #listening: Promise<Listening> | undefined;
  /** Its client, once it listens. */
  #active: PoolClient | undefined;

  constructor(pool: Pool, channel: string) {
    this.#pool = pool;
    this.#channel = channel;
  }

  /** A feed of the changes under `prefix` from now on; resolves once the server listens. */
  async subscribe(prefix: string, signal: AbortSignal | undefined): Promise<AsyncIterable<ChangeEvent>> {
    const listening = this.#listening ?? (this.#listening = this.#listen());
    try {
      await listening;
    } catch (err) {
      if (this.#listening === listening) this.#listening = undefined;
      throw err;
    }
    // The connection was lost while this call waited for it: nothing would reach this feed.
    if (this.#listening !== listening) throw lostError(undefined);
    const feed: Feed = {
      prefix,
      channel: new Channel<ChangeEvent>({
        signal,
        onReturn: () => {
          this.#feeds.delete(feed);
          if (this.#feeds.size === 0) this.#stop(listening);
        },
      }),
    };
    this.#feeds.add(feed);
    return feed.channel;
  }

  /** Ends every feed (the store closes). */
  close(): void {
    for (const feed of [...this.#feeds]) feed.channel.end();
  }

  async #listen(): Promise<Listening> {
    const client = await this.#pool.connect();
    let released = false;
    const release = (err: Error | true) => {
      if (released) return;
      released = true;
      client.release(err);
    };
    const onNotification = (message: Notification) => {
      if (message.channel !== this.#channel || message.payload === undefined) return;
      const event = parseNotification(message.payload);
      if (!event) return;
      for (const feed of this.#feeds) if (event.key.startsWith(feed.prefix)) feed.channel.push(event);
    };
    const onLost = (err?: Error) => {
      detach();
      release(err ?? new Error("the listening connection ended"));
      if (this.#active !== client) return;
      this.#active = undefined;
      this.#listening = undefined;
      const error = lostError(err);
      for (const feed of [...this.#feeds]) {
        this.#feeds.delete(feed);
        feed.channel.end(error);
      }
    };
    const onEnd = () => onLost();
    const detach = () => {
      client.off("notification", onNotification);
      client.off("error", onLost);
      client.off("end", onEnd);
    };
    client.on("notification", onNotification);
    client.on("error", onLost);
    client.on("end", onEnd);
    try {
      await client.query(`LISTEN ${quoteIdent(this.#channel)}`);
    } catch (err) {
      detach();
      release(err instanceof Error ? err : true);
      throw err;
    }
    this.#active = client;
    return { client, detach };
  }

  /** The last feed ended: stop listening and give the connection back. */
  #stop(listening: Promise<Listening>): void {
    if (this.#listening !== listening) return;
    this.#listening = undefined;
    this.#active = undefined;
    void listening
      .then(async ({ client, detach }) => {
        detach();
        // Unheard, an error on a checked-out client would crash the process.
        const ignore = () => undefined;
        client.on("error", ignore);
        try {
          await client.query(`UNLISTEN ${quoteIdent(this.#channel)}`);
          client.off("error", ignore);
          client.release();
        } catch (err) {
          client.off("error", ignore);
          client.release(err instanceof Error ? err : true);
        }
      })
      .catch(() => undefined);
  }
}

function lostError(cause: Error | undefined): StorageError {
  return new StorageError("transient", "the change feed's connection to PostgreSQL was lost; changes made meanwhile were not seen: read again and watch again", { op: "watch", cause });
}
