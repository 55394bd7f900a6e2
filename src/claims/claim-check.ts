import { createHash, type Hash } from "node:crypto";
import type { MsgHdrs, NatsConnection, PublishOptions, headers as headersOf } from "@nats-io/nats-core";
import type { JetStreamClient, JetStreamPublishOptions, PubAck } from "@nats-io/jetstream";
import { StorageError, isStorageError, type StorageOp } from "../errors.js";
import { isByteSource, validatedChunks } from "../internal/bytes.js";
import { formatSize, parseDuration, parseSize } from "../internal/units.js";
import { keyProblem } from "../keys.js";
import type { ByteSource, Store } from "../types.js";
import { StoreBody } from "../internal/body.js";
import { Expiry } from "./expiry.js";
import { claimKey } from "./keys.js";
import { CLAIM_HEADER, CLAIM_KEY_HEADER, decodeReference, encodeReference, INSTANCE_NAME, type ClaimReference } from "./reference.js";

/** Threshold without a connection to ask: half the default `max_payload`. */
export const DEFAULT_CLAIM_THRESHOLD = 512 * 1024;
/** Room left under the server's `max_payload` for the message's headers. */
export const CLAIM_HEADER_ROOM = 16 * 1024;
const DEFAULT_TTL = "7d";
const DEFAULT_PREFIX = "claims/";
const DEFAULT_CONTENT_TYPE = "application/octet-stream";
const CONTROL_CHAR = /[\u0000-\u001f\u007f]/;

export interface ClaimCheckOptions {
  /** Where claimed payloads go. Every consumer that checks them out needs the same store. */
  store: Store;
  /**
   * The storage instance the store is known by: the name of the storage component that serves
   * it (`storage.<instance>.api`), so a consumer in another language can resolve a claim.
   * 1-64 characters of `A-Z a-z 0-9 _ -`.
   */
  instance: string;
  /**
   * Claims are stored below this prefix (default `"claims/"`; must end with `/`). Keep it for
   * claims only: `expire()` deletes the claim keys under it.
   */
  prefix?: string;
  /**
   * Payloads larger than this many bytes (or a size like `"256KiB"`) are claimed; smaller ones
   * travel in the message. Default: the connected server's `max_payload` minus 16 KiB for
   * headers (the `connection` option's, or the one given to `publish`), else 512 KiB.
   */
  threshold?: number | string;
  /**
   * How long a claim is kept, in milliseconds or a duration like `"7d"` (default 7 days):
   * `expire()` deletes claims older than this. Longer than any consumer may lag.
   */
  ttl?: number | string;
  /** The connection whose `max_payload` sets the default threshold for `checkIn`. */
  connection?: Pick<NatsConnection, "info">;
  /** The clock claim keys and expiry read (default: the system clock); for tests. */
  now?: () => Date;
}

export interface CheckInOptions {
  /** The message's headers: kept on the returned message (copied when the payload is claimed). */
  headers?: MsgHdrs;
  /** The payload's media type, recorded in the reference (default `application/octet-stream`). */
  contentType?: string;
  signal?: AbortSignal;
}

/** What to publish: the payload itself, or the reference to its claim. */
export interface CheckedIn {
  data: Uint8Array;
  /** The caller's headers, plus `Stowage-Claim` and `Stowage-Claim-Key` when claimed. */
  headers: MsgHdrs | undefined;
  /** The reference in `data`, when the payload was claimed. */
  claim?: ClaimReference;
}

/** A received message: core NATS `Msg`, JetStream `JsMsg` or anything with a body and headers. */
export interface ClaimMessage {
  readonly data: Uint8Array;
  readonly headers?: MsgHdrs | undefined;
}

/** A message from {@link ClaimCheck.consume}: the original, with the claimed body in `data`. */
export type ResolvedMessage<M extends ClaimMessage> = M & {
  /** The reference the body was resolved from; undefined for a message that was not claimed. */
  readonly claim?: ClaimReference;
};

export interface CheckOutOptions {
  signal?: AbortSignal;
}

export interface ConsumeOptions extends CheckOutOptions {
  /**
   * Called with a message whose claim cannot be resolved (missing, tampered), which is then
   * skipped; without it, the error ends the iteration. Ack, nak or term a JetStream message here.
   */
  onError?: (error: StorageError, message: ClaimMessage) => void | Promise<void>;
}

export interface PublishClaimOptions extends CheckInOptions, Partial<Omit<PublishOptions, "headers">> {}
export interface PublishJetStreamClaimOptions extends CheckInOptions, Partial<Omit<JetStreamPublishOptions, "headers">> {}

export interface ExpireOptions {
  signal?: AbortSignal;
}

// MsgHdrs are made by @nats-io/nats-core's `headers()`, loaded the first time a payload is
// claimed: `stowage/core` loads no NATS client, and a caller that claims has one loaded anyway.
let natsCore: Promise<{ headers: typeof headersOf }> | undefined;
const loadNatsCore = () => (natsCore ??= import("@nats-io/nats-core"));

/**
 * The claim check pattern over a {@link Store}: a payload too large for a NATS message is stored
 * once, and the message carries a small reference to it instead (its key, size and SHA-256);
 * consumers resolve the reference and get the original bytes, verified. Smaller payloads pass
 * through untouched. The reference format is in docs/claims.md.
 *
 * @example
 * const claims = new ClaimCheck({ store, instance: "media", prefix: "claims/", ttl: "7d" });
 * await claims.publish(nc, "camera.front", frame, { contentType: "image/jpeg" });
 * // … in a consumer
 * for await (const msg of claims.consume(nc.subscribe("camera.front"))) show(msg.data);
 * // … on a schedule
 * await claims.expire();
 */
export class ClaimCheck {
  readonly store: Store;
  readonly instance: string;
  readonly prefix: string;
  /** Claims live this long, in milliseconds. */
  readonly ttl: number;
  /** The threshold given to the constructor, in bytes (undefined: from the connection). */
  readonly #threshold: number | undefined;
  readonly #connection: Pick<NatsConnection, "info"> | undefined;
  readonly #now: () => Date;
  readonly #ttlText: string;
  readonly #expiry: Expiry;
  #expiring: Promise<unknown> = Promise.resolve();

  constructor(options: ClaimCheckOptions) {
    const fail = (message: string) => new StorageError("invalid", message, { op: "open" });
    if (options === null || typeof options !== "object") throw fail("ClaimCheck needs options { store, instance }");
    const { store, instance, prefix = DEFAULT_PREFIX, threshold, ttl = DEFAULT_TTL } = options;
    if (!store || typeof store.putStream !== "function" || typeof store.getStream !== "function") throw fail("ClaimCheck needs a store");
    if (typeof instance !== "string" || !INSTANCE_NAME.test(instance)) throw fail(`instance must be 1-64 characters of A-Z a-z 0-9 _ -, got ${JSON.stringify(instance)}`);
    if (typeof prefix !== "string" || !prefix.endsWith("/") || keyProblem(`${prefix}x`) !== undefined) {
      throw fail(`prefix must be a key prefix ending with "/" (like "claims/"), got ${JSON.stringify(prefix)}`);
    }
    if (threshold !== undefined) {
      const bytes = parseSize(threshold);
      if (bytes === undefined) throw fail(`threshold must be a size in bytes (a number, or like "512KiB"), got ${JSON.stringify(threshold)}`);
      this.#threshold = bytes;
    }
    const ttlMs = parseDuration(ttl);
    if (ttlMs === undefined) throw fail(`ttl must be milliseconds or a duration like "7d", "12h", "30m", got ${JSON.stringify(ttl)}`);
    this.store = store;
    this.instance = instance;
    this.prefix = prefix;
    this.ttl = ttlMs;
    this.#ttlText = typeof ttl === "string" ? ttl.trim() : `${ttl} ms`;
    this.#connection = options.connection;
    this.#now = options.now ?? (() => new Date());
    this.#expiry = new Expiry(store, prefix);
  }

  /**
   * The threshold in bytes for messages published on `nc` (default: this claim check's
   * connection): payloads larger than this are claimed.
   */
  threshold(nc?: Pick<NatsConnection, "info">): number {
    if (this.#threshold !== undefined) return this.#threshold;
    const maxPayload = (nc ?? this.#connection)?.info?.max_payload;
    return maxPayload ? Math.max(0, maxPayload - CLAIM_HEADER_ROOM) : DEFAULT_CLAIM_THRESHOLD;
  }

  /**
   * Prepares a payload for publishing: one over the threshold is stored under a new claim key
   * and replaced by its reference (the message then carries `Stowage-Claim` headers); one at or
   * under it is returned as it is. A `ByteSource` is read in chunks: memory stays bounded by
   * the threshold and a chunk, whatever the payload's size.
   *
   * A claim stored here and never published (the publish failed) is deleted by `expire()`
   * once `ttl` has passed.
   */
  checkIn(payload: Uint8Array | ByteSource, options: CheckInOptions = {}): Promise<CheckedIn> {
    return this.#checkIn(payload, options, this.threshold());
  }

  #checkIn(payload: Uint8Array | ByteSource, options: CheckInOptions, threshold: number): Promise<CheckedIn> {
    // The common case, a small message, costs two checks and no allocation beyond the result.
    if (payload instanceof Uint8Array) {
      if (payload.byteLength <= threshold) return Promise.resolve({ data: payload, headers: options.headers });
      return this.#claimBytes(payload, options);
    }
    if (!isByteSource(payload)) {
      return Promise.reject(new StorageError("invalid", "payload must be a Uint8Array or an (async) iterable of Uint8Array chunks", { op: "checkIn" }));
    }
    return this.#checkInSource(payload, options, threshold);
  }

  async #claimBytes(payload: Uint8Array, options: CheckInOptions): Promise<CheckedIn> {
    const contentType = checkContentType(options.contentType);
    const key = claimKey(this.prefix, this.#now());
    const sha256 = createHash("sha256").update(payload).digest("hex");
    await this.store.put(key, payload, { signal: options.signal, metadata: this.#metadata(contentType) });
    return this.#claimed({ storage_instance: this.instance, key, content_type: contentType, size: payload.byteLength, sha256 }, options.headers);
  }

  async #checkInSource(source: ByteSource, options: CheckInOptions, threshold: number): Promise<CheckedIn> {
    const contentType = checkContentType(options.contentType);
    const iterator = validatedChunks(source, "checkIn", undefined, options.signal)[Symbol.asyncIterator]();
    // Read up to just past the threshold: a payload that ends before travels in the message.
    const head: Uint8Array[] = [];
    let headBytes = 0;
    while (headBytes <= threshold) {
      const next = await iterator.next();
      if (next.done) return { data: concat(head, headBytes), headers: options.headers };
      head.push(next.value);
      headBytes += next.value.byteLength;
    }
    const key = claimKey(this.prefix, this.#now());
    const sha = createHash("sha256");
    let size = 0;
    const body = (async function* () {
      for (const chunk of head.splice(0)) {
        sha.update(chunk);
        size += chunk.byteLength;
        yield chunk;
      }
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
        sha.update(next.value);
        size += next.value.byteLength;
        yield next.value;
      }
    })();
    try {
      await this.store.putStream(key, body, { signal: options.signal, metadata: this.#metadata(contentType) });
    } finally {
      // Close the caller's source when the store stopped reading early (a failed put). Not
      // awaited: after an abort a read may still be pending on a source that never answers.
      void body.return(undefined).catch(() => undefined);
    }
    return this.#claimed({ storage_instance: this.instance, key, content_type: contentType, size, sha256: sha.digest("hex") }, options.headers);
  }

  async #claimed(claim: ClaimReference, callerHeaders: MsgHdrs | undefined): Promise<CheckedIn> {
    const { headers } = await loadNatsCore();
    const h = headers();
    if (callerHeaders) {
      for (const name of callerHeaders.keys()) {
        if (name === CLAIM_HEADER || name === CLAIM_KEY_HEADER) continue;
        for (const value of callerHeaders.values(name)) h.append(name, value);
      }
    }
    h.set(CLAIM_HEADER, claim.storage_instance);
    h.set(CLAIM_KEY_HEADER, claim.key);
    return { data: encodeReference(claim), headers: h, claim };
  }

  #metadata(contentType: string): Record<string, string> | undefined {
    return this.store.capabilities.metadata ? { "content-type": contentType } : undefined;
  }

  /**
   * The reference a message carries, or undefined when it carries its payload itself. Throws
   * `invalid` for a claim this claim check cannot resolve (another instance, a key outside its
   * prefix, a damaged reference).
   */
  claimOf(msg: ClaimMessage, op: StorageOp = "checkOut"): ClaimReference | undefined {
    const instance = msg.headers?.get(CLAIM_HEADER);
    if (!instance) return undefined;
    const claim = decodeReference(msg.data, op);
    const fail = (message: string) => new StorageError("invalid", message, { op, key: claim.key });
    if (instance !== claim.storage_instance) throw fail(`the ${CLAIM_HEADER} header says ${JSON.stringify(instance)} but the reference says ${JSON.stringify(claim.storage_instance)}`);
    const headerKey = msg.headers?.get(CLAIM_KEY_HEADER);
    if (headerKey && headerKey !== claim.key) throw fail(`the ${CLAIM_KEY_HEADER} header names another key (${JSON.stringify(headerKey)})`);
    if (claim.storage_instance !== this.instance) {
      throw fail(`the claim is in storage instance ${JSON.stringify(claim.storage_instance)}; this claim check reads ${JSON.stringify(this.instance)} (resolve it through that instance's component)`);
    }
    if (!claim.key.startsWith(this.prefix)) throw fail(`the claim's key is not under this claim check's prefix ${JSON.stringify(this.prefix)}; refused`);
    return claim;
  }

  /**
   * The payload of a received message: the claimed bytes, fetched and verified against the
   * reference's size and SHA-256, or the message's own body when it carries no claim. A claim
   * that is gone is `not_found` (it may have expired); bytes that do not match are `fatal`.
   */
  async checkOut(msg: ClaimMessage, options: CheckOutOptions = {}): Promise<Uint8Array> {
    const claim = this.claimOf(msg, "checkOut");
    if (!claim) return msg.data;
    const body = await this.#open(claim, "checkOut", options.signal);
    const chunks: Uint8Array[] = [];
    const check = new Verifier(claim, "checkOut");
    for await (const chunk of body) {
      check.update(chunk);
      chunks.push(chunk);
    }
    check.end();
    return concat(chunks, claim.size);
  }

  /**
   * The payload of a received message as chunks, in bounded memory whatever its size. The
   * bytes are verified as they pass: more bytes than the reference says fail at once, a short
   * or altered payload fails at the end, after its chunks were yielded, so treat them as
   * unverified until the iteration finished without error. A missing claim rejects here.
   */
  async checkOutStream(msg: ClaimMessage, options: CheckOutOptions = {}): Promise<AsyncIterable<Uint8Array>> {
    const claim = this.claimOf(msg, "checkOutStream");
    if (!claim) {
      const data = msg.data;
      return (async function* () {
        yield data;
      })();
    }
    const body = await this.#open(claim, "checkOutStream", options.signal);
    const verified = (async function* () {
      const check = new Verifier(claim, "checkOutStream");
      for await (const chunk of body) {
        check.update(chunk);
        yield chunk;
      }
      check.end();
    })();
    // Released by return() even unread, like the store's body it reads.
    return new StoreBody(verified);
  }

  async #open(claim: ClaimReference, op: StorageOp, signal: AbortSignal | undefined): Promise<AsyncIterable<Uint8Array>> {
    try {
      return await this.store.getStream(claim.key, { signal });
    } catch (err) {
      if (isStorageError(err, "not_found")) {
        throw new StorageError("not_found", `the claim is not in storage instance ${JSON.stringify(this.instance)}: it may have expired (claims are kept ${this.#ttlText}) or never been stored`, { op, key: claim.key, cause: err });
      }
      throw err;
    }
  }

  /**
   * Checks a payload in and publishes it on core NATS. When `nc.publish` refuses the message,
   * the claim it would have carried is deleted (nobody can have seen it).
   */
  async publish(nc: NatsConnection, subject: string, payload: Uint8Array | ByteSource, options: PublishClaimOptions = {}): Promise<void> {
    const { headers, contentType, signal, ...publishOptions } = options;
    const out = await this.#checkIn(payload, { headers, contentType, signal }, this.threshold(nc));
    try {
      nc.publish(subject, out.data, { ...publishOptions, headers: out.headers });
    } catch (err) {
      if (out.claim) await this.store.delete(out.claim.key).catch(() => undefined);
      throw await publishError(err, nc, out, subject);
    }
  }

  /**
   * Checks a payload in and publishes it to JetStream; resolves with the stream's `PubAck`.
   * When the publish fails the claim stays: the message may have been stored all the same
   * (a lost acknowledgement), and `expire()` deletes the claim after `ttl`.
   */
  async publishJetStream(js: JetStreamClient, subject: string, payload: Uint8Array | ByteSource, options: PublishJetStreamClaimOptions = {}): Promise<PubAck> {
    const { headers, contentType, signal, ...publishOptions } = options;
    // The client's connection is not on JetStreamClient's type; nats.js's implementation has it.
    const nc = (js as { nc?: NatsConnection }).nc;
    const out = await this.#checkIn(payload, { headers, contentType, signal }, this.threshold(nc));
    try {
      return await js.publish(subject, out.data, { ...publishOptions, headers: out.headers });
    } catch (err) {
      throw await publishError(err, nc, out, subject);
    }
  }

  /**
   * Yields the messages of `source` (a subscription, a JetStream consumer's messages…) with
   * their claims resolved: `data` (and `string()`/`json()`) give the payload, `claim` the
   * reference; every other property and method (`ack()`, `respond()`…) is the original
   * message's. Messages are resolved one at a time, in order.
   */
  async *consume<M extends ClaimMessage>(source: AsyncIterable<M>, options: ConsumeOptions = {}): AsyncGenerator<ResolvedMessage<M>> {
    for await (const msg of source) {
      let claim: ClaimReference | undefined;
      let data: Uint8Array;
      try {
        claim = this.claimOf(msg, "consume");
        if (!claim) {
          yield msg;
          continue;
        }
        data = await this.checkOut(msg, options);
      } catch (err) {
        if (!options.onError || !isStorageError(err)) throw err;
        await options.onError(err, msg);
        continue;
      }
      yield withBody(msg, data, claim);
    }
  }

  /**
   * Deletes the claims older than `ttl`, oldest first, stopping at the first younger one: the
   * cost is proportional to what expired. A claim younger than `ttl` is never deleted. Runs
   * one at a time (a call while one runs waits for it). Resolves with the number deleted.
   */
  expire(options: ExpireOptions = {}): Promise<{ deleted: number }> {
    const run = this.#expiring.then(async () => ({ deleted: await this.#expiry.run(this.#now().getTime() - this.ttl, options.signal) }));
    this.#expiring = run.catch(() => undefined);
    return run;
  }
}

/** Counts and hashes a claimed payload as it is read, and compares it with its reference. */
class Verifier {
  readonly #claim: ClaimReference;
  readonly #op: StorageOp;
  readonly #sha: Hash = createHash("sha256");
  #size = 0;

  constructor(claim: ClaimReference, op: StorageOp) {
    this.#claim = claim;
    this.#op = op;
  }

  update(chunk: Uint8Array): void {
    this.#size += chunk.byteLength;
    // Stop before holding more than the reference promised (a tampered size must not make a
    // consumer buffer a huge value).
    if (this.#size > this.#claim.size) throw this.#mismatch(`more than the ${this.#claim.size} bytes its reference says`);
    this.#sha.update(chunk);
  }

  end(): void {
    if (this.#size !== this.#claim.size) throw this.#mismatch(`${this.#size} bytes, its reference says ${this.#claim.size}`);
    const digest = this.#sha.digest("hex");
    if (digest !== this.#claim.sha256) throw this.#mismatch(`SHA-256 ${digest}, its reference says ${this.#claim.sha256}`);
  }

  #mismatch(what: string): StorageError {
    return new StorageError("fatal", `the claimed payload does not match its reference: the store holds ${what} (the value or the message was altered)`, { op: this.#op, key: this.#claim.key });
  }
}

/** The chunks as one plain Uint8Array (not a Buffer: callers get the type they would from NATS). */
function concat(chunks: Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1 && chunks[0]!.constructor === Uint8Array) return chunks[0]!;
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new Uint8Array(out.buffer, out.byteOffset, size);
}

function checkContentType(contentType: unknown): string {
  if (contentType === undefined) return DEFAULT_CONTENT_TYPE;
  if (typeof contentType !== "string" || contentType === "" || contentType.length > 255 || CONTROL_CHAR.test(contentType) || !contentType.isWellFormed()) {
    throw new StorageError("invalid", `contentType must be a media type of 1-255 characters without control characters, got ${JSON.stringify(contentType)}`, { op: "checkIn" });
  }
  return contentType;
}

/** The message with `data` (and its decoders) replaced; everything else read from the original. */
function withBody<M extends ClaimMessage>(msg: M, data: Uint8Array, claim: ClaimReference): ResolvedMessage<M> {
  return Object.create(msg, {
    data: { value: data, enumerable: true },
    claim: { value: claim, enumerable: true },
    string: { value: () => new TextDecoder().decode(data) },
    json: { value: (reviver?: (key: string, value: unknown) => unknown) => JSON.parse(new TextDecoder().decode(data), reviver) as unknown },
  }) as ResolvedMessage<M>;
}

/** A failed publish as a StorageError (nats.js's errors classified by class, never by text). */
async function publishError(err: unknown, nc: Pick<NatsConnection, "info"> | undefined, out: CheckedIn, subject: string): Promise<StorageError> {
  const maxPayload = nc?.info?.max_payload;
  if (maxPayload !== undefined && out.data.byteLength > maxPayload) {
    return new StorageError("invalid", `the message for ${subject} is ${formatSize(out.data.byteLength)}, over the server's max_payload of ${formatSize(maxPayload)}: lower the claim threshold`, { op: "publish", key: out.claim?.key, cause: err });
  }
  const { classifyNatsError } = await import("../backends/nats/errors.js");
  return classifyNatsError(err, "publish", out.claim?.key);
}
