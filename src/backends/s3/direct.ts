/**
 * Direct requests: GetObject, PutObject and DeleteObject of one object and ListObjectsV2 pages,
 * sent without the SDK's per-command middleware stack (serde schemas, endpoint rules, retry
 * bookkeeping), which costs about twice the request itself on small objects (measured against
 * s3rver: 1 KiB get 0.42 → 0.17 ms of client CPU), and without its XML deserializer, which takes
 * ~12 ms for a page of 1000 keys (see listing.ts).
 *
 * Everything else still comes from the SDK client: the endpoint it resolved (captured from the
 * client's first object or listing request, so virtual-hosted, path-style, FIPS or dual-stack
 * come out as the SDK decided), its credentials provider and its clock-skew correction; requests
 * are signed with `@smithy/signature-v4`, the SDK's own signer, and sent over the client's HTTP
 * handler when the caller gave one, else over a connection pool of their own (transport.ts).
 * Only expected answers are handled here (2xx, 404 NoSuchKey on a get, a listing this reader
 * is sure of): after any other answer or failure the operation is sent again through the SDK,
 * which owns retries, redirects, skew correction and error parsing. After {@link MAX_REFUSALS}
 * refusals in a row that the SDK then served, the store keeps to the SDK.
 */
import { isIPv4, isIPv6 } from "node:net";
import type { Readable } from "node:stream";
import type { S3Client } from "@aws-sdk/client-s3";
import { extendedEncodeURIComponent } from "@smithy/core/protocols";
import { SignatureV4 } from "@smithy/signature-v4";
import type { HttpRequest } from "@smithy/types";
import { readListPage, type ListedPage } from "./listing.js";
import { handlerTransport, poolTransport, type Response, type Transport } from "./transport.js";

/** A get's answer "no object at this key" (404 NoSuchKey). */
export const NO_SUCH_KEY = Symbol("no such key");

/** Where object requests go, learnt from the SDK. */
interface Target {
  protocol: string;
  hostname: string;
  port: number | undefined;
  host: string;
  /** The path before the key: `/bucket` (path-style) or `` (virtual-hosted). */
  basePath: string;
  signer: SignatureV4;
  transport: Transport;
}

interface AuthScheme {
  name?: string;
  signingName?: string;
  signingRegion?: string;
  disableDoubleEncoding?: boolean;
}

/** Requests whose URL is the object's: `<base>/<escaped key>`. */
const OBJECT_COMMANDS = new Set(["GetObjectCommand", "PutObjectCommand", "DeleteObjectCommand", "HeadObjectCommand"]);
/** Error bodies are a few hundred bytes of XML; more than this is not an S3 error document. */
const MAX_ERROR_BODY = 64 * 1024;
/** A page of 1000 keys of 1024 bytes, entity-encoded, with their other fields, fits easily. */
const MAX_LIST_BODY = 32 * 1024 * 1024;

/** One ListObjectsV2 request. */
export interface ListParams {
  prefix: string;
  maxKeys: number;
  continuationToken?: string;
  startAfter?: string;
}

/** A key as the SDK puts it in a URL path (a greedy `{Key+}` label): the SDK's own escaping per segment. */
export function escapeKey(key: string): string {
  return key.split("/").map(extendedEncodeURIComponent).join("/");
}

/** Why a direct attempt handed over to the SDK. */
type Fallback = { fallback: "refused" | "failed" };
/** A direct attempt's outcome. */
type Attempt<T> = { value: T } | Fallback;

const FAILED: Fallback = { fallback: "failed" };
const REFUSED: Fallback = { fallback: "refused" };

/**
 * Refusals in a row (a 3xx or 4xx that the SDK then served) after which a store stops sending
 * direct requests: something between us and the server (a region redirect, a proxy, a server
 * reading the signature differently) wants what only the SDK sends.
 */
export const MAX_REFUSALS = 3;

/**
 * Direct requests for the objects of `bucket` through `client`. Attach it before the client's
 * first request (it adds a middleware that watches for the first object or listing request).
 * Each method takes the same operation through the SDK (`viaSdk`), used until that first
 * request has been seen, and whenever a direct attempt does not succeed.
 */
export class DirectRequests {
  #target: Target | undefined;
  #refusals = 0;
  #off = false;
  readonly #client: S3Client;
  readonly #ownConnections: boolean;

  /**
   * `ownConnections`: send over a connection pool of its own rather than the client's request
   * handler (for clients built with the SDK's default handler).
   */
  constructor(client: S3Client, bucket: string, options: { ownConnections: boolean }) {
    this.#client = client;
    this.#ownConnections = options.ownConnections;
    client.middlewareStack.add(
      (next, context) => (args) => {
        const input = args.input as { Bucket?: string; Key?: string; VersionId?: string };
        if (this.#target === undefined && input.Bucket === bucket && input.VersionId === undefined) {
          // An object's URL is `<base>/<escaped key>`, a listing's `<base>/`.
          const key = OBJECT_COMMANDS.has(context.commandName ?? "") ? input.Key : context.commandName === "ListObjectsV2Command" ? "" : undefined;
          if (key !== undefined) {
            try {
              this.#target = this.#targetOf(args.request as HttpRequest, key, context.endpointV2?.properties?.authSchemes);
            } catch {
              // Never in the way of the SDK's own request: without a target, everything stays with it.
            }
          }
        }
        return next(args);
      },
      { step: "build", name: "stowageDirectTarget", override: true },
    );
  }

  /** Whether requests are sent directly: the endpoint is known, signed with SigV4, not refused. */
  get active(): boolean {
    return this.#target !== undefined && !this.#off;
  }

  /** The object's bytes, or {@link NO_SUCH_KEY}. */
  get(objectKey: string, signal: AbortSignal | undefined, viaSdk: () => Promise<Uint8Array>): Promise<Uint8Array | typeof NO_SUCH_KEY> {
    return this.#run(async (): Promise<Attempt<Uint8Array | typeof NO_SUCH_KEY>> => {
      const response = await this.#send("GET", objectKey, {}, undefined, signal);
      if (!("body" in response)) return response;
      const { statusCode, headers, body } = response;
      if (statusCode === 200) {
        const announced = headers["content-length"];
        const length = typeof announced === "string" ? Number(announced) : undefined;
        const data = await readUnlessCut(body, length, Infinity, signal);
        return data === undefined || (length !== undefined && data.byteLength !== length) ? FAILED : { value: data };
      }
      if (statusCode === 404) {
        const xml = await readAll(body, undefined, MAX_ERROR_BODY).catch(() => undefined);
        if (xml && /<Code>NoSuchKey<\/Code>/.test(Buffer.from(xml.buffer, xml.byteOffset, xml.byteLength).toString("utf8"))) return { value: NO_SUCH_KEY };
        return REFUSED;
      }
      body.destroy();
      return fallbackFor(statusCode);
    }, viaSdk);
  }

  /** One ListObjectsV2 page (keys url-encoded). */
  list(params: ListParams, signal: AbortSignal | undefined, viaSdk: () => Promise<ListedPage>): Promise<ListedPage> {
    return this.#run(async (): Promise<Attempt<ListedPage>> => {
      const query: Record<string, string> = { "list-type": "2", prefix: params.prefix, "max-keys": String(params.maxKeys), "encoding-type": "url" };
      if (params.continuationToken !== undefined) query["continuation-token"] = params.continuationToken;
      else if (params.startAfter !== undefined) query["start-after"] = params.startAfter;
      const response = await this.#send("GET", undefined, {}, undefined, signal, query);
      if (!("body" in response)) return response;
      if (response.statusCode !== 200) {
        response.body.destroy();
        return fallbackFor(response.statusCode);
      }
      const xml = await readUnlessCut(response.body, undefined, MAX_LIST_BODY, signal);
      if (!xml) return FAILED;
      try {
        const page = readListPage(UTF8.decode(xml));
        return page ? { value: page } : REFUSED;
      } catch {
        return REFUSED; // not UTF-8, or a character reference past U+10FFFF
      }
    }, viaSdk);
  }

  /** Writes the object (`metadata` as `x-amz-meta-*` values). */
  put(objectKey: string, data: Uint8Array, metadata: Record<string, string>, signal: AbortSignal | undefined, viaSdk: () => Promise<unknown>): Promise<unknown> {
    return this.#run(async () => {
      const headers: Record<string, string> = { "content-type": "application/octet-stream", "content-length": String(data.byteLength) };
      if (this.#target && !payloadNeedsHash(this.#target)) headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD";
      for (const [name, value] of Object.entries(metadata)) headers[`x-amz-meta-${name}`] = value;
      return settled(await this.#send("PUT", objectKey, headers, data, signal));
    }, viaSdk);
  }

  /** Deletes the object (or adds a delete marker). */
  delete(objectKey: string, signal: AbortSignal | undefined, viaSdk: () => Promise<unknown>): Promise<unknown> {
    return this.#run(async () => settled(await this.#send("DELETE", objectKey, {}, undefined, signal)), viaSdk);
  }

  /** `attempt` when active; else, or when it hands over, `viaSdk` (and a refusal it serves counts). */
  async #run<T>(attempt: () => Promise<Attempt<T>>, viaSdk: () => Promise<T>): Promise<T> {
    if (!this.active) return viaSdk();
    const outcome = await attempt();
    if ("value" in outcome) {
      this.#refusals = 0;
      return outcome.value;
    }
    const value = await viaSdk();
    if (outcome.fallback === "refused" && ++this.#refusals >= MAX_REFUSALS) this.#off = true;
    return value;
  }

  /** Sends a signed request for `objectKey` (or the bucket, when undefined). */
  async #send(
    method: string,
    objectKey: string | undefined,
    headers: Record<string, string>,
    body: Uint8Array | undefined,
    signal: AbortSignal | undefined,
    query: Record<string, string> = {},
  ): Promise<Response | Fallback> {
    const target = this.#target;
    if (!target) return FAILED;
    const config = this.#client.config;
    try {
      const request: HttpRequest = {
        method,
        protocol: target.protocol,
        hostname: target.hostname,
        port: target.port,
        path: `${target.basePath}/${objectKey === undefined ? "" : escapeKey(objectKey)}`,
        query,
        headers: { host: target.host, ...headers },
        body,
      };
      const signed = await target.signer.sign(request, { signingDate: new Date(Date.now() + (config.systemClockOffset ?? 0)) });
      return await target.transport.send(signed, signal);
    } catch (err) {
      // An abort is the caller's answer; anything else (a reset pooled connection…) the SDK retries.
      if (signal?.aborted) throw signal.reason ?? err;
      return FAILED;
    }
  }

  /** Closes the connections of its own, if any. */
  async close(): Promise<void> {
    this.#off = true;
    await this.#target?.transport.close();
  }

  #targetOf(request: HttpRequest, key: string, schemes: unknown): Target | undefined {
    const scheme = (Array.isArray(schemes) ? schemes[0] : undefined) as AuthScheme | undefined;
    // Other schemes (SigV4a for multi-region access points, S3 Express sessions) stay with the SDK.
    if (scheme?.name !== "sigv4" || !scheme.signingRegion) return undefined;
    const suffix = `/${escapeKey(key)}`;
    if (!request.path.endsWith(suffix)) return undefined;
    const config = this.#client.config;
    const port = request.port;
    const host = port === undefined ? request.hostname : `${request.hostname}:${port}`;
    return {
      protocol: request.protocol,
      hostname: request.hostname,
      port,
      host,
      basePath: request.path.slice(0, -suffix.length),
      signer: new SignatureV4({
        credentials: config.credentials,
        region: scheme.signingRegion,
        service: scheme.signingName ?? "s3",
        sha256: config.sha256,
        uriEscapePath: scheme.disableDoubleEncoding !== true,
      }),
      transport: this.#ownConnections ? poolTransport(`${request.protocol}//${host}`) : handlerTransport(config.requestHandler),
    };
  }
}

/**
 * Whether a put's body must be hashed into its signature: over plain HTTP across a network, the
 * signed SHA-256 is what protects the bytes in flight, as in the SDK. Over TLS that is TLS's
 * job, and on the loopback interface nobody is between us and the server: there hashing (0.5 ms
 * per MiB here) buys nothing, and the body goes as `UNSIGNED-PAYLOAD`.
 */
function payloadNeedsHash(target: { protocol: string; hostname: string }): boolean {
  return target.protocol !== "https:" && !isLoopback(target.hostname);
}

function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (host === "localhost" || host.endsWith(".localhost")) return true; // RFC 6761
  if (isIPv4(host)) return host.startsWith("127.");
  // ::1, or an IPv4-mapped 127.x.y.z (URLs write it in hex: ::ffff:7f00:1).
  return isIPv6(host) && (host === "::1" || /^::ffff:(127\.|7f[0-9a-f]{2}:)/.test(host));
}

/** A redirect or a client error is a refusal; a server error is a failure the SDK retries. */
function fallbackFor(statusCode: number): Fallback {
  return statusCode < 500 && statusCode !== 429 ? REFUSED : FAILED;
}

/** A write's answer: done on 2xx, else handed over. The body is drained so the connection is reused. */
async function settled(response: Response | Fallback): Promise<Attempt<undefined>> {
  if (!("body" in response)) return response;
  await readAll(response.body, undefined, MAX_ERROR_BODY).catch(() => undefined);
  return response.statusCode >= 200 && response.statusCode < 300 ? { value: undefined } : fallbackFor(response.statusCode);
}

/** Strict UTF-8: a listing that is not valid UTF-8 is left to the SDK. */
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The whole body, or undefined when the connection was cut mid-body (the SDK then tries
 * again); an abort rejects, as it is the caller's answer.
 */
function readUnlessCut(body: Readable, length: number | undefined, limit: number, signal: AbortSignal | undefined): Promise<Uint8Array | undefined> {
  return readAll(body, length, limit).catch((err: unknown) => {
    if (signal?.aborted) throw signal.reason ?? err;
    return undefined;
  });
}

/**
 * Reads a whole body into a plain Uint8Array of its own (as the SDK returns; a Buffer from
 * Node's pool would expose the pool through `.buffer`). Rejects past `limit` bytes.
 */
function readAll(body: Readable, length: number | undefined, limit: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const sized = length !== undefined && Number.isSafeInteger(length) && length >= 0 && length <= limit;
    let whole = sized ? new Uint8Array(length) : undefined;
    const chunks: Buffer[] = [];
    let received = 0;
    body.on("data", (chunk: Buffer) => {
      if (whole && received + chunk.byteLength <= whole.byteLength) whole.set(chunk, received);
      else {
        // Longer than announced: keep everything and let the caller compare lengths.
        if (whole) chunks.push(Buffer.from(whole.subarray(0, received)));
        whole = undefined;
        chunks.push(chunk);
      }
      received += chunk.byteLength;
      if (received > limit) body.destroy(new Error(`body over ${limit} bytes`));
    });
    let ended = false;
    body.once("error", reject);
    // A connection that closes before the end. Every body closes after its end too: no Error
    // (and its stack trace, ~30 µs) is built then.
    body.once("close", () => {
      if (!ended) reject(new Error("the response body ended early"));
    });
    body.once("end", () => {
      ended = true;
      if (whole) return resolve(received === whole.byteLength ? whole : whole.slice(0, received));
      const out = new Uint8Array(received);
      let offset = 0;
      for (const chunk of chunks) {
        out.set(chunk, offset);
        offset += chunk.byteLength;
      }
      resolve(out);
    });
  });
}
