import { NoRespondersError, RequestError, type MsgHdrs } from "@nats-io/nats-core";
import { JetStreamApiCodes, JetStreamApiError, type JetStreamClient, type PubAck, type StoredMsg } from "@nats-io/jetstream";
import type { WriteConditions } from "../../types.js";
import { isDeleteMarker } from "./entry.js";
import { ConditionFailedError } from "./errors.js";

/** The header JetStream's duplicate window reads. */
export const MSG_ID_HEADER = "Nats-Msg-Id";

export interface EntryPublish extends WriteConditions {
  subject: string;
  payload: Uint8Array;
  headers?: MsgHdrs;
  /** JetStream message id: a second publish with the same id within the duplicate window is dropped. */
  msgID?: string;
  /** The key's latest index message (null when it has none), read as the store reads. */
  latest: () => Promise<StoredMsg | null>;
}

/** How often a create retries over delete markers that keep arriving before it gives up as a conflict. */
const CREATE_ATTEMPTS = 8;

/**
 * Publishes an index entry under its write conditions, with JetStream's own compare-and-set:
 * `Nats-Expected-Last-Subject-Sequence` (the key's revision is its etag). `ifMatch` expects
 * that revision; `ifNoneMatch: "*"` expects none (0), and when the key's last message is a
 * delete marker, that marker's revision, as a KV create does. A failed expectation is a
 * {@link ConditionFailedError}; the server checks it atomically with the write.
 */
export async function publishEntry(js: JetStreamClient, entry: EntryPublish): Promise<PubAck> {
  const { subject, payload, headers, msgID } = entry;
  const publish = (lastSubjectSequence?: number) =>
    js.publish(subject, payload, { ...(headers ? { headers } : {}), ...(msgID ? { msgID } : {}), ...(lastSubjectSequence === undefined ? {} : { expect: { lastSubjectSequence } }) });
  if (entry.ifMatch !== undefined) {
    const revision = /^[1-9]\d{0,15}$/.test(entry.ifMatch) ? Number(entry.ifMatch) : undefined;
    if (revision === undefined) throw new ConditionFailedError(`the etag ${JSON.stringify(entry.ifMatch)} is not one of this store's (a revision number)`);
    return publish(revision).catch((err: unknown) => {
      throw isWrongLastSequence(err) ? new ConditionFailedError("the key changed (or was deleted) since the etag the write names", { cause: err }) : err;
    });
  }
  if (entry.ifNoneMatch !== "*") return publish();
  let expected = 0;
  for (let attempt = 0; attempt < CREATE_ATTEMPTS; attempt++) {
    try {
      return await publish(expected);
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err;
      const latest = await entry.latest();
      const next = latest === null ? 0 : isDeleteMarker(latest.header) ? latest.seq : undefined;
      if (next === undefined) throw new ConditionFailedError("the key exists (ifNoneMatch: \"*\")", { cause: err });
      if (next === expected) throw err; // the server refused for another reason: let it surface
      expected = next;
    }
  }
  throw new ConditionFailedError("the key was deleted and written again repeatedly while this create ran");
}

function isWrongLastSequence(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence;
}

/**
 * True when a failed JetStream publish was certainly not stored: the server answered with an
 * error (a failed expectation, a full stream…), or nothing listens on the subject (no stream
 * took it). A timeout or a lost connection is not definite: the message may have been stored
 * and only its acknowledgement lost.
 */
export function definitelyNotStored(err: unknown): boolean {
  if (err instanceof JetStreamApiError) return true;
  if (err instanceof NoRespondersError) return true;
  if (err instanceof RequestError && err.isNoResponders()) return true;
  // nats.js reports a publish nobody answered as JetStreamNotEnabled, its cause the no-responders error.
  if (err instanceof Error && err.name === "JetStreamNotEnabled") return definitelyNotStored(err.cause);
  return false;
}

/** A sequence no subject ever reaches: a publish expecting it can only be refused, or be a duplicate. */
const NEVER = Number.MAX_SAFE_INTEGER;

/**
 * Whether a publish with message id `msgID` was stored, asked without storing anything: the same
 * id again, expecting a last subject sequence that no subject has. The server checks the
 * duplicate window before expectations, so it answers "duplicate" when the earlier publish was
 * stored and refuses the probe (wrong last sequence) when it was not. Sent on the connection
 * that sent the publish, the probe reaches the server after it (TCP keeps the order), so a
 * publish whose acknowledgement was lost is resolved, not merely guessed; over a reconnection
 * that no longer holds and the caller must not conclude anything. Throws when the probe itself
 * gets no answer.
 */
export async function wasStored(js: JetStreamClient, subject: string, msgID: string): Promise<boolean> {
  let ack: PubAck;
  try {
    ack = await js.publish(subject, new Uint8Array(0), { msgID, expect: { lastSubjectSequence: NEVER } });
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence) return false;
    throw err;
  }
  return ack.duplicate;
}
