import { JetStreamApiCodes, JetStreamApiError, StorageType, type JetStreamClient, type JetStreamManager, type StreamInfo } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { StorageError } from "../../errors.js";
import { NatsLayoutError } from "./errors.js";
import type { NatsLayout } from "./layout.js";
import { DEFAULT_HISTORY, type ResolvedNatsOptions } from "./options.js";

/**
 * Marks an index written with this key encoding (one token per character, a final `=`; see
 * docs/nats.md). Keys written by an earlier encoding do not decode under this one, so a bucket
 * that holds entries without the mark is refused rather than shown as empty.
 */
export const LAYOUT_MARK = "stowage index, key layout 2";

/**
 * Opens the bucket's index stream, creating the KV bucket when it is missing (unless
 * `create: false`: then nothing is created and the missing bucket is `not_found`); refuses a
 * stream of another kind under the bucket's name, and explicit options the bucket contradicts.
 */
export async function ensureBucket(js: JetStreamClient, jsm: JetStreamManager, layout: NatsLayout, options: ResolvedNatsOptions): Promise<StreamInfo> {
  let info = await jsm.streams.info(layout.indexStream).catch((err: unknown) => {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return undefined;
    throw err;
  });
  if (!info) {
    if (options.create === false) {
      throw new StorageError("not_found", `the NATS bucket ${layout.bucket} does not exist (no stream ${layout.indexStream}); nothing was created`, { op: "open" });
    }
    await new Kvm(js).create(layout.bucket, {
      history: options.history ?? DEFAULT_HISTORY,
      replicas: options.replicas ?? 1,
      storage: options.storage === "memory" ? StorageType.Memory : StorageType.File,
      ...(options.maxBytes ? { max_bytes: options.maxBytes } : {}),
      ...(options.ttl ? { ttl: options.ttl } : {}),
      description: LAYOUT_MARK,
    });
    info = await jsm.streams.info(layout.indexStream);
  }
  const config = info.config;
  if (!(config.subjects ?? []).includes(layout.indexSubjects)) {
    throw new NatsLayoutError(`stream ${layout.indexStream} exists but is not the KV bucket ${layout.bucket} (its subjects are ${JSON.stringify(config.subjects ?? [])}): choose another bucket name or delete that stream`);
  }
  if (!(config.description ?? "").includes(LAYOUT_MARK)) {
    if (info.state.messages > 0) {
      throw new NatsLayoutError(`bucket ${layout.bucket} holds entries that stowage did not write with its current key layout (stream ${layout.indexStream} has no "${LAYOUT_MARK}" description): its keys would not be found. Read them with the stowage that wrote them and copy them to a new bucket (stowage cp), or delete the bucket`);
    }
    // An empty bucket made elsewhere (nats kv add) takes the mark on its first open.
    if (options.create !== false) info = await jsm.streams.update(layout.indexStream, { ...config, description: LAYOUT_MARK });
  }
  const mismatches: string[] = [];
  const check = (name: string, asked: unknown, actual: unknown) => {
    if (asked !== undefined && asked !== actual) mismatches.push(`${name}=${String(actual)} (asked ${String(asked)})`);
  };
  if (options.explicit.has("history")) check("history", options.history, config.max_msgs_per_subject);
  if (options.explicit.has("replicas")) check("replicas", options.replicas, config.num_replicas);
  if (options.explicit.has("storage")) check("storage", options.storage, config.storage);
  if (options.explicit.has("maxBytes")) check("maxBytes", options.maxBytes, config.max_bytes);
  if (options.explicit.has("ttl")) check("ttl", options.ttl, Math.round(config.max_age / 1_000_000));
  if (mismatches.length > 0) {
    throw new NatsLayoutError(`bucket ${layout.bucket} exists with ${mismatches.join(", ")}: open it without those options, or change the bucket (nats kv edit / nats stream edit ${layout.indexStream})`);
  }
  return info;
}
