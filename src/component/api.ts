/**
 * The api port's request handling: parse (JSON or raw mode), run the action against the store,
 * answer within the action's deadline. Every request with a reply subject gets exactly one
 * answer that fits the server's max_payload, and nothing a request carries can throw out of
 * {@link ApiHandler.handle}: bad input becomes an `invalid` response, a deadline a `transient`
 * one, anything unexpected a `fatal` one (and a log line).
 *
 * A request holds its share of the {@link WorkBudget} until its store call has settled, even
 * when the deadline answered first: the store is not told to give up (a backend may keep
 * working on an abandoned call), so the budget is what bounds the work a hung store piles up.
 */
import { Match, headers as natsHeaders, type Msg, type MsgHdrs } from "@nats-io/transport-node";
import { StorageError, isAbortError, isStorageError } from "../errors.js";
import { formatSize } from "../internal/units.js";
import type { Metadata, Store } from "../types.js";
import { withDeadline, type Lease, type WorkBudget } from "./budget.js";
import { ERROR_CODES, RAW_HEADERS, errorJson, parseJsonRequest, parseRawRequest, rawMetadata, successJson, type ApiRequest, type ApiResult } from "./codec.js";
import type { Action, ComponentConfig } from "./config.js";
import type { EventPublisher } from "./events.js";
import type { StreamHandler } from "./streams.js";
import type { Logger, Telemetry } from "./telemetry.js";

/** Stores a `store` request's value through the archiver and returns the key it chose. */
export type ArchiveFn = (value: { bytes: Uint8Array; json: boolean }, options: { key?: string; metadata?: Metadata; signal?: AbortSignal }) => Promise<string>;

export interface ApiDeps {
  store: Store;
  archive: ArchiveFn;
  config: ComponentConfig;
  events: EventPublisher;
  telemetry: Telemetry;
  budget: WorkBudget;
  logger: Logger;
  /** The NATS server's max_payload, bytes: nothing larger fits in one message. */
  maxPayload(): number;
  /** True once the component has stopped (a late request is refused, not run on a closed store). */
  stopping(): boolean;
  /** Aborts when a stop gives up waiting for work in flight: store calls then settle before the store closes. */
  abandon: AbortSignal;
  /** Streamed gets and puts (`"stream": true`). */
  streams: StreamHandler;
}

const KEYED: ReadonlySet<Action> = new Set(["get", "put", "delete", "stat", "versions"]);
const encoder = new TextEncoder();
// Room for the reply's protocol line and headers within max_payload.
const HEADER_ALLOWANCE = 4096;
// What an error answer echoes of the request's key (body and header), UTF-16 code units.
const ECHOED_KEY_MAX = 1024;

export class ApiHandler {
  readonly #deps: ApiDeps;

  constructor(deps: ApiDeps) {
    this.#deps = deps;
  }

  /** Handles one request message; never rejects. `endpointAction` comes from a per-action subject. */
  async handle(msg: Msg, endpointAction?: Action): Promise<void> {
    const deps = this.#deps;
    const started = performance.now();
    const raw = msg.headers?.has(RAW_HEADERS.action, Match.IgnoreCase) === true;
    let request: ApiRequest | undefined;
    let lease: Lease | undefined;
    let work: Promise<ApiResult> | undefined;
    try {
      const op = endpointAction ?? "request";
      if (deps.stopping()) throw new StorageError("transient", "the component has stopped; retry (another instance may answer)", { op });
      lease = deps.budget.tryEnter(msg.data.byteLength);
      if (!lease) throw deps.budget.busy(op);
      request = raw ? parseRaw(msg, endpointAction) : parseJsonRequest(msg.data, endpointAction);
      if (request.stream) {
        // A stream takes a share of its own (its window of chunks) and answers as it goes.
        lease.release();
        lease = undefined;
        await deps.streams.start(msg, request);
        return;
      }
      const { action, key } = request;
      work = this.#run(request);
      const result = await withDeadline(work, deps.config.timeoutsMs[action], { op: action, key, setting: `timeouts.${action}` });
      if (action === "get") deps.events.publish("retrieved", key!);
      const sent = this.#respondSuccess(msg, request, result);
      deps.telemetry.record(action, msg.data.byteLength, sent, (performance.now() - started) / 1000);
    } catch (err) {
      const error = this.#classify(err, request);
      const sent = this.#respondError(msg, error, raw, request?.key);
      deps.telemetry.record(request?.action ?? "invalid", msg.data.byteLength, sent, (performance.now() - started) / 1000, { kind: error.kind, message: error.message });
    } finally {
      // The share goes back when the store has finished, which may be after the answer.
      const release = lease?.release;
      if (release) {
        if (work) work.then(release, release);
        else release();
      }
    }
  }

  /** Runs the action against the store; resolves when the store has finished with it. */
  async #run(request: ApiRequest): Promise<ApiResult> {
    const { store, events, abandon: signal } = this.#deps;
    const { action, key } = request;
    if (KEYED.has(action) && key === undefined) throw new StorageError("invalid", `key is required for ${action}`, { op: action });
    if ((request.ifMatch !== undefined || request.ifNoneMatch !== undefined) && action !== "put" && action !== "delete") {
      throw new StorageError("invalid", `conditions (if_match, if_none_match) apply to put and delete, not ${action}`, { op: action, key });
    }
    switch (action) {
      case "get":
        return { key, value: await store.get(key!, { signal, version: request.version }) };
      case "put": {
        const value = this.#value(request);
        const { ifMatch, ifNoneMatch } = request;
        // A put answered "timed out" must not land later where the backend can refuse it then.
        const deadline = Date.now() + this.#deps.config.timeoutsMs.put;
        await store.put(key!, value.bytes, { signal, deadline, metadata: request.metadata, ifMatch, ifNoneMatch: ifNoneMatch as "*" | undefined });
        events.publish("stored", key!, request.metadata);
        return { key };
      }
      case "store": {
        const value = this.#value(request);
        const stored = await this.#deps.archive(value, { key, metadata: request.metadata, signal });
        events.publish("stored", stored, request.metadata);
        return { key: stored };
      }
      case "list": {
        const prefix = request.prefix ?? "";
        if (request.limit === undefined && request.after === undefined) return { keys: await store.list(prefix, { signal }) };
        const page = await store.listPage(prefix, { signal, limit: request.limit, after: request.after });
        return { keys: page.keys, next: page.next };
      }
      case "delete": {
        if (request.ifNoneMatch !== undefined) throw new StorageError("invalid", "if_none_match applies to put only (delete takes if_match)", { op: action, key });
        const deadline = Date.now() + this.#deps.config.timeoutsMs.delete;
        if (await deleteExisting(store, key!, { signal, deadline, ifMatch: request.ifMatch })) events.publish("deleted", key!);
        return { key };
      }
      case "stat": {
        const info = await store.stat(key!, { signal });
        return { key, info: { key: info.key, size: info.size, modified: info.modified.toISOString(), metadata: info.metadata, version: info.version, etag: info.etag } };
      }
      case "versions": {
        const versions = await store.versions(key!, { signal });
        return { key, versions: versions.map((v) => ({ version: v.version, size: v.size, modified: v.modified.toISOString(), deleted: v.deleted })) };
      }
    }
  }

  #value(request: ApiRequest): { bytes: Uint8Array; json: boolean } {
    const value = request.value;
    if (value === undefined) {
      throw new StorageError("invalid", request.raw ? `${request.action} needs the value as the message body` : `${request.action} needs data (a JSON value) or data_base64`, { op: request.action, key: request.key });
    }
    const limit = this.#deps.config.maxValueBytes;
    if (limit !== undefined && value.bytes.byteLength > limit) {
      throw new StorageError("invalid", `value is ${value.bytes.byteLength} bytes, over this component's max_value_size of ${formatSize(limit)}`, { op: request.action, key: request.key });
    }
    return value;
  }

  /** Sends the success answer; returns the bytes sent. */
  #respondSuccess(msg: Msg, request: ApiRequest, result: ApiResult): number {
    const limit = this.#deps.maxPayload() - HEADER_ALLOWANCE;
    if (request.raw && request.action === "get" && result.value !== undefined) {
      const value = result.value;
      if (value.byteLength > limit) throw tooLarge(request, `the value is ${value.byteLength} bytes`, limit);
      const h = natsHeaders();
      h.set(RAW_HEADERS.key, encodeURIComponent(request.key!));
      h.set(RAW_HEADERS.size, String(value.byteLength));
      msg.respond(value, { headers: h });
      return value.byteLength;
    }
    const body = encoder.encode(successJson(result, request.base64));
    if (body.byteLength > limit) {
      throw tooLarge(request, `the response would be ${body.byteLength} bytes`, limit);
    }
    if (request.raw && result.key !== undefined) {
      const h = natsHeaders();
      h.set(RAW_HEADERS.key, encodeURIComponent(result.key));
      msg.respond(body, { headers: h });
    } else {
      msg.respond(body);
    }
    return body.byteLength;
  }

  /**
   * Sends an error answer (JSON body plus the NATS micro-service error headers); returns the
   * bytes sent. What it echoes of the request (the key) is cut short so the answer always fits.
   */
  #respondError(msg: Msg, error: StorageError, raw: boolean, key: string | undefined): number {
    const { body, headers: h } = errorResponse(error, key, raw, this.#deps.maxPayload());
    try {
      msg.respond(body, { headers: h });
    } catch (err) {
      // Nothing more can be said to this requester (connection closing); it will time out.
      this.#deps.logger.warn("could not send an error response", { error: String(err) });
    }
    return body.byteLength;
  }

  #classify(err: unknown, request: ApiRequest | undefined): StorageError {
    if (err instanceof StorageError) return err;
    const op = request?.action ?? "request";
    if (isAbortError(err)) return new StorageError("transient", "the operation was aborted (the component is stopping)", { op, key: request?.key, cause: err });
    this.#deps.logger.error("unexpected error handling a request", { op, error: err instanceof Error ? err.message : String(err) });
    return new StorageError("fatal", "unexpected error in the component (see its log)", { op, key: request?.key, cause: err });
  }
}

/**
 * An error answer: the JSON body and the NATS micro-service error headers. What it echoes of
 * the request (the key) is cut short so the answer always fits `maxPayload`.
 */
export function errorResponse(error: StorageError, key: string | undefined, raw: boolean, maxPayload: number): { body: Uint8Array; headers: MsgHdrs } {
  const echoed = key === undefined ? undefined : truncate(key, ECHOED_KEY_MAX);
  let body = encoder.encode(errorJson(error, echoed));
  const h = natsHeaders();
  h.set("Nats-Service-Error-Code", String(ERROR_CODES[error.kind]));
  // Header values are one line; messages are by construction, but make sure.
  h.set("Nats-Service-Error", error.message.replace(/[\r\n]+/g, " ").slice(0, 1000));
  h.set(RAW_HEADERS.errorKind, error.kind);
  if (raw && echoed !== undefined) h.set(RAW_HEADERS.key, encodeURIComponent(echoed));
  // A message can be long only through what it quotes; the body then says less.
  if (body.byteLength > maxPayload - HEADER_ALLOWANCE) body = encoder.encode(errorJson(error, undefined, 1000));
  return { body, headers: h };
}

/**
 * Deletes `key` if it exists; true when it did (a `deleted` event is due). The store's delete
 * succeeds either way, so existence comes from a `stat` first. When `stat` says the key is
 * missing the delete is not sent at all: the request takes effect at that moment, and a value
 * written after it is not touched (so no real deletion goes unannounced). A store with
 * conditional writes deletes exactly what it found (`ifMatch` its etag), and looks again when
 * someone wrote in between, so a concurrent delete is not announced twice either. With the
 * caller's own `ifMatch`, the store's answer says it all: success means it existed.
 */
async function deleteExisting(store: Store, key: string, options: { signal: AbortSignal; deadline: number; ifMatch?: string }): Promise<boolean> {
  if (options.ifMatch !== undefined) {
    await store.delete(key, options);
    return true;
  }
  for (let attempt = 0; ; attempt++) {
    let etag: string;
    try {
      etag = (await store.stat(key, { signal: options.signal })).etag;
    } catch (err) {
      if (isStorageError(err, "not_found")) return false;
      throw err;
    }
    // Past a few rounds of a key rewritten under us, delete whatever is there.
    if (!store.capabilities.conditionalWrites || attempt === 3) {
      await store.delete(key, options);
      return true;
    }
    try {
      await store.delete(key, { ...options, ifMatch: etag });
      return true;
    } catch (err) {
      if (!isStorageError(err, "conflict")) throw err;
    }
  }
}

function parseRaw(msg: Msg, endpointAction: Action | undefined): ApiRequest {
  const h = msg.headers as MsgHdrs;
  const request = parseRawRequest((name) => h.get(name, Match.IgnoreCase), msg.data, endpointAction);
  if (request.action === "put" || request.action === "store") request.metadata = rawMetadata(h);
  return request;
}

/** At most `max` UTF-16 code units, never ending in half a surrogate pair, "…" marking a cut. */
function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${text.slice(0, end)}…`;
}

function tooLarge(request: ApiRequest, what: string, limit: number): StorageError {
  const hint = request.raw ? 'NATS cannot carry it in one message: ask for a streamed get (a JSON request with "stream": true)' : 'ask for a streamed get ("stream": true) or fetch it in raw mode (no base64 growth)';
  return new StorageError("invalid", `${what}, over the ${formatSize(limit)} a reply can carry (the NATS server's max_payload less headers): ${hint}`, { op: request.action, key: request.key });
}
