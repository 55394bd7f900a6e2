/**
 * The api port's wire shapes, kept apart from request handling so clients in any language can
 * read exactly what travels.
 *
 * JSON mode (the Go component's): request `{ action, key?, data?, data_base64?, prefix?, ... }`,
 * response `{ success, key?, data?, keys?, error? }`.
 * - `data` in a request is any JSON value; the store receives its JSON text byte for byte (the
 *   exact span of the request, so `1.0` stays `1.0` and big integers keep every digit).
 * - `data_base64` carries arbitrary bytes (standard alphabet, padded).
 * - A `get` response holds `data` (the stored JSON text, embedded verbatim) with
 *   `encoding: "json"` when the stored bytes are UTF-8 JSON, else `data_base64` with
 *   `encoding: "base64"`; `encoding: "base64"` in the request forces the latter.
 * - Errors: `{ success: false, key?, error, kind, op }`: `error` is the message (a string, as
 *   the Go package this component replaces sends it), `kind` one of the StorageError kinds,
 *   `op` the operation. The kind also travels in the `Stowage-Error-Kind` header, with the
 *   NATS micro-service headers `Nats-Service-Error-Code` / `Nats-Service-Error`.
 *
 * Raw mode (a `Stowage-Action` header): the value travels as the message body, arguments in
 * headers; see {@link RAW_HEADERS}.
 */
import { StorageError, type StorageErrorKind } from "../errors.js";
import type { Metadata } from "../types.js";
import { ACTIONS, type Action } from "./config.js";

/** Header names of raw mode. Values holding keys, prefixes or metadata are percent-encoded. */
export const RAW_HEADERS = {
  action: "Stowage-Action",
  key: "Stowage-Key",
  prefix: "Stowage-Prefix",
  version: "Stowage-Version",
  limit: "Stowage-Limit",
  after: "Stowage-After",
  /** put/delete: write only if the key's current etag is this one (else `conflict`). */
  ifMatch: "Stowage-If-Match",
  /** put: `*` to create only (else `conflict`). */
  ifNoneMatch: "Stowage-If-None-Match",
  /** `Stowage-Meta-<name>: <value>` for each metadata entry (put requests). */
  metaPrefix: "Stowage-Meta-",
  errorKind: "Stowage-Error-Kind",
  size: "Stowage-Size",
} as const;

/**
 * Header names of streamed get and put (started with `"stream": true`, see streams.ts). Size
 * and digest travel on the message that ends a stream.
 */
export const STREAM_HEADERS = {
  /** The position of a chunk in its stream: 1, 2, 3… (the end message has the next number). */
  seq: "Stowage-Stream-Seq",
  /** `true` on the message that ends a stream (get: sent by the component; put: the commit). */
  end: "Stowage-Stream-End",
  /** `true` on a message that abandons an upload: nothing is stored. */
  abort: "Stowage-Stream-Abort",
  /** The value's length in bytes. */
  size: "Stowage-Size",
  /** SHA-256 of the value, 64 lower-case hex digits. */
  sha256: "Stowage-Sha256",
} as const;

/** A request after parsing, whatever mode it came in. */
export interface ApiRequest {
  action: Action;
  key?: string;
  prefix?: string;
  /** The value for put/store: bytes, and whether they came as JSON text. */
  value?: { bytes: Uint8Array; json: boolean };
  metadata?: Metadata;
  version?: string;
  /** For get: force base64 in the response. */
  base64?: boolean;
  limit?: number;
  after?: string;
  /** put/delete: the etag the key must have. */
  ifMatch?: string;
  /** put: `"*"`, the key must not exist. */
  ifNoneMatch?: string;
  /** Raw mode: the response body is the bare value (get) and errors travel in headers. */
  raw: boolean;
  /** get/put: move the value in chunks with flow control (JSON mode only). */
  stream?: boolean;
  /** Streamed put: store under a new claim key (no `key`) and answer with the claim reference. */
  claim?: boolean;
  /** Streamed put with `claim`: the payload's media type, for the reference. */
  contentType?: string;
  /** Streams: bytes per chunk and chunks unacknowledged at once the requester asks for. */
  chunkSize?: number;
  window?: number;
}

/**
 * Deepest nesting a JSON request may have. Go's encoding/json (which the Go component used)
 * stops at 10000; we stop earlier because most JSON tools recurse and a value this deep would
 * crash whoever reads it back (JSON.stringify overflows the stack around 10 000 levels).
 */
export const MAX_JSON_DEPTH = 1000;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function invalid(message: string, key?: string): StorageError {
  return new StorageError("invalid", message, { op: "request", key });
}

/** Parses a JSON-mode request body. `defaultAction` comes from a per-action endpoint's subject. */
export function parseJsonRequest(body: Uint8Array, defaultAction?: Action): ApiRequest {
  if (body.byteLength === 0) throw invalid(`empty body: send a JSON object such as {"action":"get","key":"a/b"}`);
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw invalid("body is not valid UTF-8 (send bytes as data_base64, or use raw mode)");
  }
  if (nestingDepth(text) > MAX_JSON_DEPTH) {
    throw invalid(`body nests deeper than ${MAX_JSON_DEPTH} levels (arrays and objects); store such values as data_base64`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    const detail = err instanceof Error ? err.message.slice(0, 120) : "";
    throw invalid(`body is not valid JSON: ${detail}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw invalid(`body must be a JSON object, got ${parsed === null ? "null" : Array.isArray(parsed) ? "an array" : typeof parsed}`);
  }
  const o = parsed as Record<string, unknown>;
  const action = parseAction(o.action, defaultAction);
  const key = optionalString(o, "key");
  const request: ApiRequest = { action, key, raw: false };
  request.prefix = optionalString(o, "prefix", key);
  request.version = optionalString(o, "version", key);
  request.after = optionalString(o, "after", key);
  request.ifMatch = optionalString(o, "if_match", key);
  request.ifNoneMatch = optionalString(o, "if_none_match", key);
  if (o.limit !== undefined && (typeof o.limit !== "number" || !Number.isInteger(o.limit))) throw invalid("limit must be an integer", key);
  request.limit = o.limit as number | undefined;
  for (const flag of ["stream", "claim"] as const) {
    if (o[flag] !== undefined && typeof o[flag] !== "boolean") throw invalid(`${flag} must be true or false`, key);
  }
  request.stream = o.stream === true;
  request.claim = o.claim === true;
  request.contentType = optionalString(o, "content_type", key);
  for (const [field, name] of [["chunk_size", "chunkSize"], ["window", "window"]] as const) {
    const value = o[field];
    if (value !== undefined && (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1)) throw invalid(`${field} must be a positive integer`, key);
    request[name] = value as number | undefined;
  }
  if (o.metadata !== undefined && (o.metadata === null || typeof o.metadata !== "object" || Array.isArray(o.metadata))) {
    throw invalid("metadata must be an object of string values", key);
  }
  request.metadata = o.metadata as Metadata | undefined;
  if (o.encoding !== undefined && o.encoding !== "json" && o.encoding !== "base64") throw invalid(`encoding must be "json" or "base64"`, key);
  request.base64 = o.encoding === "base64";
  const hasData = Object.hasOwn(o, "data");
  if (hasData && o.data_base64 !== undefined) throw invalid("give either data or data_base64, not both", key);
  if (o.data_base64 !== undefined) {
    if (typeof o.data_base64 !== "string") throw invalid("data_base64 must be a string", key);
    request.value = { bytes: decodeBase64(o.data_base64, key), json: false };
  } else if (hasData) {
    const span = memberSpan(text, "data");
    // JSON.parse accepted the text, so the member is there; the span is its exact source.
    request.value = { bytes: encoder.encode(span === undefined ? JSON.stringify(o.data) : text.slice(span[0], span[1])), json: true };
  }
  return request;
}

/** Parses a raw-mode request: arguments in headers, the value (put/store) as the body. */
export function parseRawRequest(get: (name: string) => string, body: Uint8Array, defaultAction?: Action): ApiRequest {
  const action = parseAction(get(RAW_HEADERS.action) || undefined, defaultAction);
  const header = (name: string) => {
    const value = get(name);
    return value === "" ? undefined : percentDecode(name, value);
  };
  const key = header(RAW_HEADERS.key);
  const request: ApiRequest = {
    action,
    key,
    raw: true,
    prefix: header(RAW_HEADERS.prefix),
    version: header(RAW_HEADERS.version),
    after: header(RAW_HEADERS.after),
    ifMatch: get(RAW_HEADERS.ifMatch) || undefined,
    ifNoneMatch: get(RAW_HEADERS.ifNoneMatch) || undefined,
  };
  const limit = get(RAW_HEADERS.limit);
  if (limit !== "") {
    if (!/^\d{1,9}$/.test(limit)) throw invalid(`${RAW_HEADERS.limit} must be a positive integer`, key);
    request.limit = Number(limit);
  }
  if (action === "put" || action === "store") request.value = { bytes: plainBytes(body), json: false };
  return request;
}

/** The same bytes as a plain Uint8Array (the client hands out Buffers; stores return what they got). */
export function plainBytes(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Reads `Stowage-Meta-*` headers into metadata (values percent-decoded). Names are kept as sent
 * and built as own properties (`__proto__` included), so the store validates them exactly as
 * it validates JSON mode's `metadata` object.
 */
export function rawMetadata(entries: Iterable<[string, string[]]>): Metadata | undefined {
  const found: [string, string][] = [];
  const prefix = RAW_HEADERS.metaPrefix.toLowerCase();
  for (const [name, values] of entries) {
    if (!name.toLowerCase().startsWith(prefix)) continue;
    found.push([name.slice(prefix.length), percentDecode(name, values[0] ?? "")]);
  }
  return found.length === 0 ? undefined : (Object.fromEntries(found) as Metadata);
}

function parseAction(value: unknown, defaultAction: Action | undefined): Action {
  if (value === undefined) {
    if (defaultAction) return defaultAction;
    throw invalid(`missing action: one of ${ACTIONS.join(", ")}`);
  }
  if (typeof value !== "string") throw invalid(`action must be a string: one of ${ACTIONS.join(", ")}`);
  if (!(ACTIONS as readonly string[]).includes(value)) throw invalid(`unknown action ${JSON.stringify(value.slice(0, 40))}: one of ${ACTIONS.join(", ")}`);
  if (defaultAction && value !== defaultAction) throw invalid(`action ${value} sent to the ${defaultAction} endpoint`);
  return value as Action;
}

function optionalString(o: Record<string, unknown>, field: string, key?: string): string | undefined {
  const value = o[field];
  if (value === undefined || typeof value === "string") return value;
  throw invalid(`${field} must be a string, got ${value === null ? "null" : Array.isArray(value) ? "an array" : typeof value}`, key);
}

function percentDecode(header: string, value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw invalid(`header ${header} is not valid percent-encoding (encode it with encodeURIComponent)`);
  }
}

/** Strict standard base64 (with padding); anything else is refused rather than guessed at. */
export function decodeBase64(text: string, key?: string): Uint8Array {
  if (text.length % 4 !== 0 || !BASE64.test(text)) throw invalid("data_base64 is not valid base64 (standard alphabet, padded)", key);
  const bytes = Buffer.from(text, "base64");
  // A plain Uint8Array view: stores hand back what they were given, and callers compare with Uint8Array.
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The stored bytes as JSON text when they are UTF-8 JSON (so a response can embed them), else undefined. */
export function asJsonText(bytes: Uint8Array): string | undefined {
  if (bytes.byteLength === 0) return undefined;
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return undefined;
  }
  try {
    JSON.parse(text);
    return text;
  } catch {
    return undefined;
  }
}

/**
 * The `[start, end)` span of the last top-level member `name` in a JSON object text that
 * `JSON.parse` accepted (the last, as JSON.parse keeps the last duplicate). Iterative, so
 * deep nesting costs no stack.
 */
export function memberSpan(text: string, name: string): [number, number] | undefined {
  let found: [number, number] | undefined;
  let i = skipSpace(text, 0) + 1; // past "{"
  for (;;) {
    i = skipSpace(text, i);
    if (text[i] !== '"') return found; // "}" (or the end)
    const keyEnd = skipString(text, i);
    const rawKey = text.slice(i, keyEnd);
    const memberName = rawKey.includes("\\") ? (JSON.parse(rawKey) as string) : rawKey.slice(1, -1);
    i = skipSpace(text, keyEnd) + 1; // past ":"
    const start = skipSpace(text, i);
    const end = skipValue(text, start);
    if (memberName === name) found = [start, end];
    i = skipSpace(text, end);
    if (text[i] === ",") i++;
  }
}

/** The deepest nesting of arrays and objects in a JSON text (strings skipped); iterative. */
function nestingDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) i = skipString(text, i) - 1;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > deepest) deepest = depth;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return deepest;
}

function skipSpace(text: string, i: number): number {
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

/** Index just past the string starting at `i` (a `"`). */
function skipString(text: string, i: number): number {
  for (i++; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c) i++;
    else if (c === 0x22) return i + 1;
  }
  return i;
}

function skipValue(text: string, i: number): number {
  const first = text[i];
  if (first === '"') return skipString(text, i);
  if (first === "{" || first === "[") {
    let depth = 0;
    while (i < text.length) {
      const c = text[i];
      if (c === '"') {
        i = skipString(text, i);
        continue;
      }
      if (c === "{" || c === "[") depth++;
      else if (c === "}" || c === "]") {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    return i;
  }
  while (i < text.length && !",}] \t\r\n".includes(text[i]!)) i++;
  return i;
}

/** What a successful response says besides `success: true`. */
export interface ApiResult {
  key?: string;
  /** get: the value (rendered as data or data_base64). */
  value?: Uint8Array;
  keys?: string[];
  next?: string;
  info?: { key: string; size: number; modified: string; metadata: Metadata; version?: string; etag: string };
  versions?: { version: string; size: number; modified: string; deleted: boolean }[];
}

/** The JSON text of a success response; `base64` forces `data_base64` for a value. */
export function successJson(result: ApiResult, base64 = false): string {
  let out = '{"success":true';
  if (result.key !== undefined) out += `,"key":${JSON.stringify(result.key)}`;
  if (result.value !== undefined) {
    const text = base64 ? undefined : asJsonText(result.value);
    out += text === undefined ? `,"encoding":"base64","data_base64":"${Buffer.from(result.value.buffer, result.value.byteOffset, result.value.byteLength).toString("base64")}"` : `,"encoding":"json","data":${text}`;
  }
  if (result.keys !== undefined) out += `,"keys":${JSON.stringify(result.keys)}`;
  if (result.next !== undefined) out += `,"next":${JSON.stringify(result.next)}`;
  if (result.info !== undefined) out += `,"info":${JSON.stringify(result.info)}`;
  if (result.versions !== undefined) out += `,"versions":${JSON.stringify(result.versions)}`;
  return `${out}}`;
}

/** The JSON text of an error response; `maxMessage` cuts the message (UTF-16 code units). */
export function errorJson(err: StorageError, key?: string, maxMessage = Infinity): string {
  const error = err.message.length > maxMessage ? `${err.message.slice(0, maxMessage)}…` : err.message;
  return JSON.stringify({ success: false, ...(key === undefined ? {} : { key }), error, kind: err.kind, op: err.op });
}

/** The `Nats-Service-Error-Code` for each kind (HTTP-like, as NATS micro services use). */
export const ERROR_CODES: Record<StorageErrorKind, number> = {
  invalid: 400,
  not_found: 404,
  fatal: 500,
  unsupported: 501,
  transient: 503,
  conflict: 409,
};
