/**
 * The api port's request handling: parse (JSON or raw mode), run the action against the store
 * under a per-action deadline, answer. Every request gets exactly one answer and nothing a
 * request carries can throw out of {@link ApiHandler.handle}: bad input becomes an `invalid`
 * response, a deadline a `transient` one, anything unexpected a `fatal` one (and a log line).
 */
import { Match, headers as natsHeaders, type Msg, type MsgHdrs } from "@nats-io/transport-node";
import { StorageError, isAbortError } from "../errors.js";
import type { Metadata, Store } from "../types.js";
import { type Action, type ComponentConfig } from "./config.js";
import { ERROR_CODES, RAW_HEADERS, errorJson, parseJsonRequest, parseRawRequest, rawMetadata, successJson, type ApiRequest, type ApiResult } from "./codec.js";
import { Deadlines } from "./deadline.js";
import type { EventPublisher } from "./events.js";
import type { InFlight } from "./in-flight.js";
import type { Telemetry } from "./telemetry.js";
import { formatSize } from "../internal/units.js";

/** Stores a `store` request's value through the archiver and returns the key it chose. */
export type ArchiveFn = (value: { bytes: Uint8Array; json: boolean }, options: { key?: string; metadata?: Metadata; signal: AbortSignal }) => Promise<string>;

/** A place to report what cannot be answered to anyone (unexpected errors). */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export interface ApiDeps {
  store: Store;
  archive: ArchiveFn;
  config: ComponentConfig;
  events: EventPublisher;
  telemetry: Telemetry;
  inFlight: InFlight;
  logger: Logger;
  /** The NATS server's max_payload, bytes: nothing larger fits in one message. */
  maxPayload(): number;
  /** True once the component has stopped (a late request is refused, not run on a closed store). */
  stopping(): boolean;
}

const KEYED: ReadonlySet<Action> = new Set(["get", "put", "delete", "stat", "versions"]);
const encoder = new TextEncoder();
// Room for the reply's protocol line and headers within max_payload.
const HEADER_ALLOWANCE = 4096;

export class ApiHandler {
  readonly #deps: ApiDeps;
  readonly #deadlines = new Deadlines();

  constructor(deps: ApiDeps) {
    this.#deps = deps;
  }

  /** Handles one request message; never rejects. `endpointAction` comes from a per-action subject. */
  async handle(msg: Msg, endpointAction?: Action): Promise<void> {
    const deps = this.#deps;
    const started = performance.now();
    const raw = msg.headers?.has(RAW_HEADERS.action, Match.IgnoreCase) === true;
    let request: ApiRequest | undefined;
    deps.inFlight.enter();
    try {
      if (deps.stopping()) throw new StorageError("transient", "the component has stopped; retry (another instance may answer)", { op: endpointAction ?? "request" });
      if (deps.inFlight.count > deps.config.maxInFlight) {
        throw new StorageError("transient", `busy: ${deps.config.maxInFlight} requests in flight (max_in_flight); retry later`, { op: endpointAction ?? "request" });
      }
      request = raw ? parseRaw(msg, endpointAction) : parseJsonRequest(msg.data, endpointAction);
      const result = await this.#execute(request);
      const sent = this.#respondSuccess(msg, request, result);
      deps.telemetry.record(request.action, msg.data.byteLength, sent, (performance.now() - started) / 1000);
    } catch (err) {
      const error = this.#classify(err, request);
      const sent = this.#respondError(msg, error, raw, request?.key);
      deps.telemetry.record(request?.action ?? "invalid", msg.data.byteLength, sent, (performance.now() - started) / 1000, { kind: error.kind, message: error.message });
    } finally {
      deps.inFlight.leave();
    }
  }

  async #execute(request: ApiRequest): Promise<ApiResult> {
    const { store, config, events } = this.#deps;
    const { action, key } = request;
    if (KEYED.has(action) && key === undefined) throw new StorageError("invalid", `key is required for ${action}`, { op: action });
    const timeoutMs = config.timeoutsMs[action];
    const signal = this.#deadlines.signal(timeoutMs);
    try {
      switch (action) {
        case "get": {
          const value = await store.get(key!, { signal, version: request.version });
          events.publish("retrieved", key!);
          return { key, value };
        }
        case "put": {
          const value = this.#value(request);
          await store.put(key!, value.bytes, { signal, metadata: request.metadata });
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
        case "delete":
          await store.delete(key!, { signal });
          events.publish("deleted", key!);
          return { key };
        case "stat": {
          const info = await store.stat(key!, { signal });
          return { key, info: { key: info.key, size: info.size, modified: info.modified.toISOString(), metadata: info.metadata, version: info.version } };
        }
        case "versions": {
          const versions = await store.versions(key!, { signal });
          return { key, versions: versions.map((v) => ({ version: v.version, size: v.size, modified: v.modified.toISOString(), deleted: v.deleted })) };
        }
      }
    } catch (err) {
      if (signal.aborted && (err === signal.reason || isAbortError(err))) {
        throw new StorageError("transient", `timed out after ${timeoutMs} ms (timeouts.${action} in the component config)`, { op: action, key, cause: err });
      }
      throw err;
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

  /** Sends an error answer (JSON body plus the NATS micro-service error headers); returns the bytes sent. */
  #respondError(msg: Msg, error: StorageError, raw: boolean, key: string | undefined): number {
    const body = encoder.encode(errorJson(error, key));
    const h = natsHeaders();
    h.set("Nats-Service-Error-Code", String(ERROR_CODES[error.kind]));
    // Header values are one line; messages are by construction, but make sure.
    h.set("Nats-Service-Error", error.message.replace(/[\r\n]+/g, " ").slice(0, 1000));
    h.set(RAW_HEADERS.errorKind, error.kind);
    if (raw && key !== undefined) h.set(RAW_HEADERS.key, encodeURIComponent(key));
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
    if (isAbortError(err)) return new StorageError("transient", "the operation was aborted", { op, key: request?.key, cause: err });
    this.#deps.logger.error("unexpected error handling a request", { op, error: err instanceof Error ? err.message : String(err) });
    return new StorageError("fatal", "unexpected error in the component (see its log)", { op, key: request?.key, cause: err });
  }
}

function parseRaw(msg: Msg, endpointAction: Action | undefined): ApiRequest {
  const h = msg.headers as MsgHdrs;
  const request = parseRawRequest((name) => h.get(name, Match.IgnoreCase), msg.data, endpointAction);
  if (request.action === "put" || request.action === "store") request.metadata = rawMetadata(h);
  return request;
}

function tooLarge(request: ApiRequest, what: string, limit: number): StorageError {
  const hint = request.raw ? "NATS cannot carry it in one message" : "fetch it in raw mode (no base64 growth) or raise max_payload";
  return new StorageError("invalid", `${what}, over the ${formatSize(limit)} a reply can carry (the NATS server's max_payload less headers): ${hint}`, { op: request.action, key: request.key });
}
