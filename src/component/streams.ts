/**
 * Streamed get and put on the api port: values larger than one NATS message move in chunks,
 * with flow control, so neither side buffers more than a window of chunks. A plain NATS client
 * in any language can speak it; the wire format is in docs/component.md ("Streamed get and
 * put"), with an example.
 *
 * Get: the requester publishes `{"action":"get","key":…,"stream":true}` with a reply inbox. The
 * component sends the value there as chunk messages (`Stowage-Stream-Seq: 1, 2, …`), each with a
 * reply subject on which the requester acknowledges it by answering its sequence number; at
 * most `window` chunks are unacknowledged. After the last chunk comes an end message
 * (`Stowage-Stream-End`, `Stowage-Size`, `Stowage-Sha256`). A requester that stops
 * acknowledging for the get timeout ends the stream: the component never holds more than the
 * window, however slow the reader.
 *
 * Put: `{"action":"put","key":…|"claim":true,"stream":true}` answers with an upload subject. The
 * uploader sends chunks there as requests (`Stowage-Stream-Seq`), each answered once the store
 * has taken it, at most `window` unanswered, then a request with `Stowage-Stream-End`
 * (optionally `Stowage-Size` and `Stowage-Sha256` to check). The store's streamed put writes the
 * value, which becomes visible only when it ends well: an upload that stops (no message for the
 * put timeout, `Stowage-Stream-Abort`, a chunk out of order, a component that dies) stores nothing.
 */
import { createHash, randomBytes } from "node:crypto";
import { createInbox, headers as natsHeaders, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { StorageError, isAbortError } from "../errors.js";
import { Channel } from "../internal/channel.js";
import { keyProblem } from "../keys.js";
import type { Metadata, Store } from "../types.js";
import { claimKey } from "../claims/keys.js";
import { INSTANCE_NAME, type ClaimReference } from "../claims/reference.js";
import { errorResponse } from "./api.js";
import { withDeadline, type Lease, type WorkBudget } from "./budget.js";
import { plainBytes, STREAM_HEADERS, type ApiRequest } from "./codec.js";
import type { ComponentConfig } from "./config.js";
import type { EventPublisher } from "./events.js";
import type { Logger, Telemetry } from "./telemetry.js";

export interface StreamDeps {
  nc: NatsConnection;
  store: Store;
  config: ComponentConfig;
  events: EventPublisher;
  telemetry: Telemetry;
  budget: WorkBudget;
  logger: Logger;
  abandon: AbortSignal;
  /** The NATS server's max_payload, bytes. */
  maxPayload(): number;
}

const DEFAULT_CHUNK = 256 * 1024;
const MIN_CHUNK = 1024;
const DEFAULT_WINDOW = 16;
const MAX_WINDOW = 64;
// Room for a chunk message's protocol line and headers within max_payload.
const HEADER_ALLOWANCE = 4096;
const CONTROL_CHAR = /[\u0000-\u001f\u007f]/;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Serves the streamed gets and puts of one component. */
export class StreamHandler {
  readonly #deps: StreamDeps;

  constructor(deps: StreamDeps) {
    this.#deps = deps;
  }

  /**
   * Starts a streamed get or put. Rejects (for the caller to answer) only before anything was
   * sent; a get resolves when its stream has ended, a put once the upload subject is answered.
   */
  start(msg: Msg, request: ApiRequest): Promise<void> {
    if (request.action === "get") return this.#get(msg, request);
    if (request.action === "put") return this.#put(msg, request);
    return Promise.reject(new StorageError("invalid", `stream applies to get and put, not ${request.action}`, { op: request.action, key: request.key }));
  }

  async #get(msg: Msg, request: ApiRequest): Promise<void> {
    const deps = this.#deps;
    const started = performance.now();
    const key = requireKey(request);
    const reply = msg.reply;
    if (!reply) throw new StorageError("invalid", "a streamed get needs a reply subject: subscribe to an inbox and publish the request with it as the reply", { op: "get", key });
    const { chunk, window } = this.#sizes(request, "get");
    const lease = this.#lease(chunk * window, "get");
    try {
      let timedOut = false;
      const opening = deps.store.getStream(key, { signal: deps.abandon, version: request.version });
      // A body that opens after the deadline answered is closed, not left holding a file or cursor.
      opening.then((body) => timedOut && void body[Symbol.asyncIterator]().return?.(), () => undefined);
      const body = await withDeadline(opening, deps.config.timeoutsMs.get, { op: "get", key, setting: "timeouts.get" }).catch((err: unknown) => {
        timedOut = true;
        throw err;
      });
      await this.#send(reply, key, body, chunk, window, msg.data.byteLength, started);
    } finally {
      lease.release();
    }
  }

  /** Sends `body` to `reply` in chunks, `window` unacknowledged at most, then the end message. */
  async #send(reply: string, key: string, body: AsyncIterable<Uint8Array>, chunk: number, window: number, requestBytes: number, started: number): Promise<void> {
    const { nc, abandon, config, telemetry, events } = this.#deps;
    const credit = new Credit();
    const ackSubject = createInbox();
    const sub = nc.subscribe(ackSubject, { callback: (_err, m) => credit.ack(m.data) });
    const sha = createHash("sha256");
    let seq = 0;
    let size = 0;
    try {
      for await (const piece of rechunk(body, chunk)) {
        // Chunk seq + 1 may go once chunk seq + 1 - window has been acknowledged.
        await credit.until(seq + 1 - window, config.timeoutsMs.get, abandon, key);
        seq++;
        size += piece.byteLength;
        sha.update(piece);
        const h = natsHeaders();
        h.set(STREAM_HEADERS.seq, String(seq));
        nc.publish(reply, piece, { reply: ackSubject, headers: h });
        credit.sent = seq;
      }
      const digest = sha.digest("hex");
      const h = natsHeaders();
      h.set(STREAM_HEADERS.seq, String(seq + 1));
      h.set(STREAM_HEADERS.end, "true");
      h.set(STREAM_HEADERS.size, String(size));
      h.set(STREAM_HEADERS.sha256, digest);
      nc.publish(reply, encoder.encode(JSON.stringify({ success: true, key, size, sha256: digest, chunks: seq })), { headers: h });
      events.publish("retrieved", key);
      telemetry.record("get", requestBytes, size, (performance.now() - started) / 1000);
    } catch (err) {
      const error = classify(err, "get", key);
      this.#sendError(reply, error, key);
      telemetry.record("get", requestBytes, size, (performance.now() - started) / 1000, { kind: error.kind, message: error.message });
    } finally {
      sub.unsubscribe();
    }
  }

  async #put(msg: Msg, request: ApiRequest): Promise<void> {
    const deps = this.#deps;
    if (!msg.reply) throw new StorageError("invalid", "a streamed put starts with a request: its answer names the upload subject", { op: "put", key: request.key });
    let key = request.key;
    let claim: { contentType: string } | undefined;
    if (request.claim) {
      if (key !== undefined) throw new StorageError("invalid", "give key or claim: true, not both (a claim gets a key of its own)", { op: "put", key });
      if (!INSTANCE_NAME.test(deps.config.name)) throw new StorageError("invalid", "claims need a component name of 1-64 characters of A-Z a-z 0-9 _ -", { op: "put" });
      const contentType = request.contentType ?? "application/octet-stream";
      if (contentType === "" || contentType.length > 255 || CONTROL_CHAR.test(contentType)) {
        throw new StorageError("invalid", "content_type must be 1-255 characters without control characters", { op: "put" });
      }
      claim = { contentType };
      key = claimKey(deps.config.claims.prefix, new Date());
    } else if (key === undefined) {
      throw new StorageError("invalid", "key is required for put (or claim: true for a claim key)", { op: "put" });
    }
    const problem = keyProblem(key);
    if (problem) throw new StorageError("invalid", problem, { op: "put", key });
    if (request.ifNoneMatch !== undefined && request.ifNoneMatch !== "*") throw new StorageError("invalid", `if_none_match must be "*"`, { op: "put", key });
    const { chunk, window } = this.#sizes(request, "put");
    const lease = this.#lease(chunk * window, "put");
    let upload: Upload;
    try {
      const id = randomBytes(12).toString("hex");
      upload = new Upload(deps, { id, key, chunk, window, claim, metadata: request.metadata, ifMatch: request.ifMatch, ifNoneMatch: request.ifNoneMatch as "*" | undefined, requestBytes: msg.data.byteLength });
      // The server must know the upload subject before the uploader hears of it.
      await deps.nc.flush();
    } catch (err) {
      lease.release();
      throw err;
    }
    // The upload holds its share until it has ended, whichever way.
    void upload.done.finally(() => lease.release());
    msg.respond(encoder.encode(JSON.stringify({ success: true, key, upload: upload.id, subject: upload.subject, chunk_size: chunk, window })));
  }

  /** The chunk size and window for a stream: what the requester asked for, within limits. */
  #sizes(request: ApiRequest, op: "get" | "put"): { chunk: number; window: number } {
    const largest = this.#deps.maxPayload() - HEADER_ALLOWANCE;
    const chunk = request.chunkSize ?? Math.min(DEFAULT_CHUNK, largest);
    if (chunk < MIN_CHUNK || chunk > largest) throw new StorageError("invalid", `chunk_size must be from ${MIN_CHUNK} to ${largest} bytes (the server's max_payload less headers)`, { op, key: request.key });
    const window = request.window ?? DEFAULT_WINDOW;
    if (window > MAX_WINDOW) throw new StorageError("invalid", `window must be from 1 to ${MAX_WINDOW} chunks`, { op, key: request.key });
    return { chunk, window };
  }

  #lease(bytes: number, op: string): Lease {
    const lease = this.#deps.budget.tryEnter(bytes);
    if (!lease) throw this.#deps.budget.busy(op);
    return lease;
  }

  #sendError(subject: string, error: StorageError, key: string | undefined): void {
    const { body, headers } = errorResponse(error, key, false, this.#deps.maxPayload());
    headers.set(STREAM_HEADERS.end, "true");
    try {
      this.#deps.nc.publish(subject, body, { headers });
    } catch (err) {
      this.#deps.logger.warn("could not send a stream's error", { error: String(err) });
    }
  }
}

/**
 * One streamed put: chunks arrive as requests on the upload subject and are handed, in order,
 * to the store's `putStream` through a channel; each is answered once the store has pulled it,
 * so an uploader keeping `window` requests in flight is paced by the store.
 */
class Upload {
  readonly id: string;
  readonly subject: string;
  readonly done: Promise<void>;
  readonly #deps: StreamDeps;
  readonly #key: string;
  readonly #chunk: number;
  readonly #window: number;
  readonly #claim: { contentType: string } | undefined;
  readonly #channel = new Channel<Chunk | End>();
  readonly #abort = new AbortController();
  readonly #sha = createHash("sha256");
  readonly #sub: Subscription;
  readonly #started = performance.now();
  readonly #requestBytes: number;
  #expected = 1;
  #queued = 0;
  #size = 0;
  #end: End | undefined;
  #failure: StorageError | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Chunk requests not answered yet: they hear the error when the upload fails. */
  readonly #unanswered = new Set<Msg>();

  constructor(deps: StreamDeps, o: { id: string; key: string; chunk: number; window: number; claim?: { contentType: string }; metadata?: Metadata; ifMatch?: string; ifNoneMatch?: "*"; requestBytes: number }) {
    this.#deps = deps;
    this.id = o.id;
    this.subject = `${deps.config.api.subject}.upload.${o.id}`;
    this.#key = o.key;
    this.#chunk = o.chunk;
    this.#window = o.window;
    this.#claim = o.claim;
    this.#requestBytes = o.requestBytes;
    this.#sub = deps.nc.subscribe(this.subject, { callback: (_err, m) => this.#receive(m) });
    this.#idle();
    const onAbandon = () => this.#fail(new StorageError("transient", "the component is stopping; upload again", { op: "put", key: o.key }));
    deps.abandon.addEventListener("abort", onAbandon, { once: true });
    const metadata = o.claim ? { ...o.metadata, "content-type": o.claim.contentType } : o.metadata;
    this.done = this.#run({ metadata, ifMatch: o.ifMatch, ifNoneMatch: o.ifNoneMatch }).finally(() => {
      deps.abandon.removeEventListener("abort", onAbandon);
      clearTimeout(this.#timer);
      this.#sub.unsubscribe();
    });
  }

  async #run(options: { metadata?: Metadata; ifMatch?: string; ifNoneMatch?: "*" }): Promise<void> {
    const { store, events, telemetry } = this.#deps;
    try {
      await store.putStream(this.#key, this.#source(), { ...options, signal: this.#abort.signal });
    } catch (err) {
      const error = this.#failure ?? classify(err, "put", this.#key);
      this.#failure ??= error;
      // Whoever waits hears it: the commit, and the chunks the store never took.
      if (this.#end) this.#reply(this.#end.msg, error);
      for (const m of this.#unanswered) this.#reply(m, error);
      this.#unanswered.clear();
      telemetry.record("put", this.#requestBytes + this.#size, 0, (performance.now() - this.#started) / 1000, { kind: error.kind, message: error.message });
      return;
    }
    const sha256 = this.#sha.digest("hex");
    const answer: Record<string, unknown> = { success: true, key: this.#key, size: this.#size, sha256 };
    if (this.#claim) {
      const reference: ClaimReference = { storage_instance: this.#deps.config.name, key: this.#key, content_type: this.#claim.contentType, size: this.#size, sha256 };
      answer.claim = reference;
    }
    this.#end!.msg.respond(encoder.encode(JSON.stringify(answer)));
    events.publish("stored", this.#key, options.metadata);
    telemetry.record("put", this.#requestBytes + this.#size, 0, (performance.now() - this.#started) / 1000);
  }

  /** What the store reads: the chunks in order; the end checks what the uploader said it sent. */
  async *#source(): AsyncGenerator<Uint8Array> {
    const items = this.#channel[Symbol.asyncIterator]();
    for (;;) {
      // Nothing queued: the upload waits for the uploader, who may take up to the put timeout.
      if (this.#queued === 0) this.#idle();
      const next = await items.next();
      if (next.done) throw this.#fail(new StorageError("transient", "the upload ended without its end message; nothing was stored", { op: "put", key: this.#key }));
      const item = next.value;
      if (item.kind === "end") {
        const problem = this.#mismatch(item);
        if (problem) throw this.#fail(new StorageError("invalid", `the upload does not match its end message: ${problem}; nothing was stored`, { op: "put", key: this.#key }));
        return;
      }
      this.#queued--;
      yield item.data;
      // The store asked for more: it has taken this chunk.
      this.#unanswered.delete(item.msg);
      item.msg.respond(encoder.encode(`{"success":true,"seq":${item.seq}}`));
    }
  }

  #receive(m: Msg): void {
    if (this.#failure) return this.#reply(m, this.#failure);
    if (this.#end) return this.#reply(m, new StorageError("invalid", "the upload has already ended", { op: "put", key: this.#key }));
    // The uploader is there; the timer starts again when the store has taken everything.
    clearTimeout(this.#timer);
    const h = m.headers;
    if (h?.get(STREAM_HEADERS.abort) === "true") {
      this.#fail(new StorageError("invalid", "the uploader abandoned the upload; nothing was stored", { op: "put", key: this.#key }));
      m.respond(encoder.encode(`{"success":true,"aborted":true}`));
      return;
    }
    if (h?.get(STREAM_HEADERS.end) === "true") {
      this.#end = { kind: "end", msg: m, size: h.get(STREAM_HEADERS.size) || undefined, sha256: h.get(STREAM_HEADERS.sha256) || undefined };
      this.#channel.push(this.#end);
      return;
    }
    const seq = h?.get(STREAM_HEADERS.seq) ?? "";
    const fail = (problem: string) => this.#reply(m, this.#fail(new StorageError("invalid", `${problem}; the upload is abandoned and nothing was stored`, { op: "put", key: this.#key })));
    if (seq !== String(this.#expected)) return fail(`chunk ${JSON.stringify(seq)} arrived where ${this.#expected} was expected (${STREAM_HEADERS.seq})`);
    if (m.data.byteLength > this.#chunk) return fail(`chunk ${seq} is ${m.data.byteLength} bytes, over the upload's chunk_size of ${this.#chunk}`);
    if (this.#queued >= this.#window) return fail(`more than ${this.#window} chunks were sent before the earlier ones were answered (window)`);
    const limit = this.#deps.config.maxValueBytes;
    if (limit !== undefined && this.#size + m.data.byteLength > limit) return fail(`the value is over this component's max_value_size of ${limit} bytes`);
    this.#expected++;
    this.#queued++;
    this.#size += m.data.byteLength;
    this.#sha.update(m.data);
    this.#unanswered.add(m);
    this.#channel.push({ kind: "chunk", data: plainBytes(m.data), msg: m, seq: Number(seq) });
  }

  #mismatch(end: End): string | undefined {
    if (end.size !== undefined && end.size !== String(this.#size)) return `${this.#size} bytes arrived, ${STREAM_HEADERS.size} says ${end.size}`;
    if (end.sha256 !== undefined) {
      const digest = this.#sha.copy().digest("hex");
      if (end.sha256.toLowerCase() !== digest) return `SHA-256 of what arrived is ${digest}, ${STREAM_HEADERS.sha256} says ${end.sha256}`;
    }
    return undefined;
  }

  /** Ends the upload with `error`: the store's put fails, so nothing is stored. */
  #fail(error: StorageError): StorageError {
    this.#failure ??= error;
    clearTimeout(this.#timer);
    this.#channel.end(error);
    this.#abort.abort(error);
    return error;
  }

  /** Starts the idle timer: an uploader silent for the put timeout has gone. */
  #idle(): void {
    clearTimeout(this.#timer);
    if (this.#end || this.#failure) return; // from the end on, the store's put decides how long it takes
    const ms = this.#deps.config.timeoutsMs.put;
    this.#timer = setTimeout(() => this.#fail(new StorageError("transient", `no upload message for ${ms} ms (timeouts.put); nothing was stored`, { op: "put", key: this.#key })), ms);
  }

  #reply(m: Msg, error: StorageError): void {
    if (!m.reply) return;
    const { body, headers } = errorResponse(error, this.#key, false, this.#deps.maxPayload());
    try {
      m.respond(body, { headers });
    } catch {
      // The connection is closing: the uploader times out.
    }
  }
}

interface Chunk {
  kind: "chunk";
  data: Uint8Array;
  msg: Msg;
  seq: number;
}

interface End {
  kind: "end";
  msg: Msg;
  size?: string;
  sha256?: string;
}

/** The acknowledgements of a streamed get: the highest chunk the requester has answered. */
class Credit {
  /** Chunks sent so far (an acknowledgement cannot be ahead of them). */
  sent = 0;
  #acked = 0;
  #cancelled = false;
  #wake: (() => void) | undefined;

  ack(data: Uint8Array): void {
    const text = decoder.decode(data).trim();
    if (text === "cancel") this.#cancelled = true;
    else {
      const n = Number(text);
      if (Number.isSafeInteger(n)) this.#acked = Math.max(this.#acked, Math.min(n, this.sent));
    }
    this.#wake?.();
  }

  /** Waits until chunk `needed` has been acknowledged (at once when needed <= 0). */
  async until(needed: number, idleMs: number, signal: AbortSignal, key: string): Promise<void> {
    while (this.#acked < needed || this.#cancelled) {
      if (this.#cancelled) throw new StorageError("invalid", "the requester cancelled the stream", { op: "get", key });
      signal.throwIfAborted();
      await new Promise<void>((resolve, reject) => {
        const settle = (error?: StorageError) => {
          clearTimeout(timer);
          signal.removeEventListener("abort", wake);
          this.#wake = undefined;
          if (error) reject(error);
          else resolve();
        };
        const wake = () => settle();
        const timer = setTimeout(() => settle(new StorageError("transient", `the requester acknowledged nothing for ${idleMs} ms (timeouts.get); the stream is abandoned`, { op: "get", key })), idleMs);
        signal.addEventListener("abort", wake, { once: true });
        this.#wake = wake;
      });
    }
  }
}

/** The body in pieces of exactly `size` bytes (the last may be shorter). */
async function* rechunk(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  let parts: Uint8Array[] = [];
  let held = 0;
  for await (const chunk of source) {
    let rest = chunk;
    while (rest.byteLength > 0) {
      if (held === 0 && rest.byteLength >= size) {
        yield rest.subarray(0, size);
        rest = rest.subarray(size);
        continue;
      }
      const take = Math.min(size - held, rest.byteLength);
      parts.push(rest.subarray(0, take));
      held += take;
      rest = rest.subarray(take);
      if (held === size) {
        yield Buffer.concat(parts, held);
        parts = [];
        held = 0;
      }
    }
  }
  if (held > 0) yield Buffer.concat(parts, held);
}

function requireKey(request: ApiRequest): string {
  if (request.key === undefined) throw new StorageError("invalid", `key is required for ${request.action}`, { op: request.action });
  return request.key;
}

function classify(err: unknown, op: string, key: string): StorageError {
  if (err instanceof StorageError) return err;
  if (isAbortError(err)) return new StorageError("transient", "the stream was stopped (the component is stopping)", { op, key, cause: err });
  return new StorageError("fatal", `unexpected error in a stream: ${err instanceof Error ? err.message : String(err)}`, { op, key, cause: err });
}
