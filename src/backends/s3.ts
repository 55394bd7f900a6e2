import type { Readable } from "node:stream";
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type PutObjectCommandInput,
} from "@aws-sdk/client-s3";
import { StorageError, type StorageOp } from "../errors.js";
import { MAX_KEY_BYTES } from "../keys.js";
import type { OpenStoreOptions, StoreUrl } from "../open.js";
import { BaseStore, type CleanListPageOptions, type CleanPutOptions } from "../store.js";
import { mapLimit } from "../internal/concurrency.js";
import { optionsFromUrl, resolveS3Config, sendOptions, type ResolvedS3Config, type S3StoreOptions } from "./s3/config.js";
import { DirectRequests, NO_SUCH_KEY } from "./s3/direct.js";
import { classifyS3Error } from "./s3/errors.js";
import type { ListedPage } from "./s3/listing.js";
import { decodeMetadata, encodeMetadata, S3_METADATA_LIMIT } from "./s3/metadata.js";
import { uploadBuffer, uploadStream, type MultipartOptions } from "./s3/multipart.js";
import type { BatchEntry, Capabilities, GetOptions, ListPage, Metadata, ObjectInfo, OperationOptions, VersionInfo } from "../types.js";

export type { S3StoreOptions } from "./s3/config.js";

declare module "../open.js" {
  interface BackendOptions {
    /** Options for `s3://` URLs (the URL's own parameters win). */
    s3?: S3StoreOptions;
  }
}

/** S3's largest object (5 TiB). */
const MAX_OBJECT_BYTES = 5 * 1024 ** 4;
/** Keys per DeleteObjects request: S3's maximum. */
const DELETE_BATCH = 1000;
/** Characters a key may hold that XML 1.0 cannot (keys never hold control characters). */
const NOT_XML = /[\ufffe\uffff]/;
/** Keys per ListObjectsV2 request: S3's maximum. */
const LIST_BATCH = 1000;

/**
 * A store in an S3 bucket (AWS S3, MinIO, R2, Ceph…), optionally under a key prefix that acts as
 * a namespace. Small values are one PutObject; values above `partSize` and every `putStream`
 * are multipart uploads holding at most `partSize × (queueSize + 1)` bytes, aborted on failure
 * so no parts or partial objects stay behind. `list` is ListObjectsV2 (UTF-8 byte order, as the contract wants) page by page;
 * `deleteMany` is DeleteObjects in batches of 1000. Metadata is S3 user metadata, non-ASCII
 * values encoded as RFC 2047 words. Versions are declared when the bucket has versioning enabled.
 *
 * Build one with {@link openS3Store} / `openStore("s3://…")`, or {@link S3Store.open} with an
 * S3Client of your own.
 */
export class S3Store extends BaseStore {
  readonly capabilities: Readonly<Capabilities>;
  /** The bucket this store writes to. */
  readonly bucket: string;
  /** The key prefix (namespace) inside the bucket: `""` or ending in `/`. */
  readonly prefix: string;
  readonly #client: S3Client;
  readonly #ownsClient: boolean;
  readonly #config: ResolvedS3Config;
  readonly #prefixBytes: number;
  /** Object and listing requests without the SDK's middleware (s3/direct.ts), for clients the store made. */
  readonly #direct: DirectRequests | undefined;

  /**
   * Use {@link S3Store.open}, which also finds out whether the bucket keeps versions.
   * `ownsClient`: close() destroys the client (true only for clients the store created).
   */
  constructor(config: ResolvedS3Config, state: { client: S3Client; ownsClient: boolean; versions: boolean; direct?: DirectRequests }) {
    super();
    const { client, ownsClient, versions } = state;
    this.#direct = state.direct;
    this.#config = config;
    this.bucket = config.bucket;
    this.prefix = config.prefix;
    this.#prefixBytes = Buffer.byteLength(config.prefix, "utf8");
    this.#ownsClient = ownsClient;
    this.#client = client;
    this.capabilities = Object.freeze({
      stat: true,
      metadata: true,
      versions,
      streaming: true,
      paginatedList: true,
      batch: true,
      watch: false,
      maxValueBytes: MAX_OBJECT_BYTES,
      // S3's 1024 bytes hold the prefix too.
      ...(this.#prefixBytes > 0 && { maxKeyBytes: MAX_KEY_BYTES - this.#prefixBytes }),
    });
  }

  /**
   * Opens a store on `options.bucket`. With `versioning: "auto"` (the default) this asks the
   * bucket (GetBucketVersioning), which also fails early, with kind `fatal`, when the bucket
   * is missing or the credentials are refused.
   */
  static async open(options: S3StoreOptions): Promise<S3Store> {
    const config = resolveS3Config(options);
    const client = options.client ?? new S3Client(config.clientConfig);
    // Attached before the client's first request: it learns the endpoint from the first object
    // or listing request. Over the store's own connections unless the caller configured the
    // client's request handler.
    const direct = !options.client && config.directRequests ? new DirectRequests(client, config.bucket, { ownConnections: config.clientConfig.requestHandler === undefined }) : undefined;
    try {
      const versions = config.versioning === "auto" ? await bucketVersioning(client, config.bucket) : config.versioning;
      return new S3Store(config, { client, ownsClient: options.client === undefined, versions, direct });
    } catch (err) {
      await direct?.close();
      if (!options.client) client.destroy();
      throw classifyS3Error(err, { op: "open", key: undefined, bucket: config.bucket });
    }
  }

  protected override classifyError(err: unknown, op: StorageOp, key: string | undefined): StorageError {
    return classifyS3Error(err, { op, key, bucket: this.bucket });
  }

  protected async _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
    const params = this.#putParams(key, options.metadata, "put");
    if (data.byteLength <= this.#config.partSize) {
      const viaSdk = () => this.#client.send(new PutObjectCommand({ ...params, Body: data, ContentLength: data.byteLength }), sendOptions(options.signal));
      await (this.#direct ? this.#direct.put(params.Key as string, data, params.Metadata ?? {}, options.signal, viaSdk) : viaSdk());
      return;
    }
    await uploadBuffer(data, this.#multipart(params, options.signal));
  }

  protected override async _putStream(key: string, source: AsyncIterable<Uint8Array>, options: CleanPutOptions): Promise<void> {
    await uploadStream(source, this.#multipart(this.#putParams(key, options.metadata, "putStream"), options.signal));
  }

  #multipart(params: PutObjectCommandInput, signal: AbortSignal | undefined): MultipartOptions {
    return { client: this.#client, params, partSize: this.#config.partSize, queueSize: this.#config.queueSize, signal };
  }

  #putParams(key: string, metadata: Metadata | undefined, op: StorageOp): PutObjectCommandInput {
    const { headers, bytes } = encodeMetadata(metadata);
    if (bytes > S3_METADATA_LIMIT) {
      throw new StorageError("invalid", `metadata is ${bytes} bytes as S3 headers (non-ASCII values are base64-encoded), S3 keeps at most ${S3_METADATA_LIMIT}`, { op, key });
    }
    return { Bucket: this.bucket, Key: this.#objectKey(key, op), Metadata: headers };
  }

  protected async _get(key: string, options: GetOptions): Promise<Uint8Array> {
    const viaSdk = async () => (await this.#getBody(key, options, "get")).transformToByteArray();
    if (!this.#direct || options.version !== undefined) return viaSdk();
    const data = await this.#direct.get(this.#objectKey(key, "get"), options.signal, viaSdk);
    if (data === NO_SUCH_KEY) throw new StorageError("not_found", "no value at this key", { op: "get", key });
    return data;
  }

  protected override async _getStream(key: string, options: GetOptions): Promise<AsyncIterable<Uint8Array>> {
    const body = await this.#getBody(key, options, "getStream");
    return body as unknown as Readable;
  }

  async #getBody(key: string, options: GetOptions, op: StorageOp) {
    try {
      const out = await this.#client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.#objectKey(key, op), VersionId: options.version }),
        sendOptions(options.signal),
      );
      if (!out.Body) throw new StorageError("fatal", "the S3 server returned no body", { op, key });
      return out.Body;
    } catch (err) {
      throw this.#versionNotFound(err, key, options.version, op);
    }
  }

  /** A version id the server refuses or that names a delete marker is a missing version. */
  #versionNotFound(err: unknown, key: string, version: string | undefined, op: StorageOp): unknown {
    if (version === undefined || err instanceof StorageError) return err;
    const name = (err as { name?: string }).name;
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (name === "InvalidArgument" || name === "NoSuchVersion" || name === "NoSuchKey" || status === 404 || status === 405) {
      return new StorageError("not_found", `no version ${version} of this key`, { op, key, cause: err });
    }
    return err;
  }

  protected override async _stat(key: string, options: OperationOptions): Promise<ObjectInfo> {
    const out = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.#objectKey(key, "stat") }), sendOptions(options.signal));
    const info: ObjectInfo = {
      key,
      size: out.ContentLength ?? 0,
      modified: out.LastModified ?? new Date(0),
      metadata: decodeMetadata(out.Metadata),
    };
    if (this.capabilities.versions && out.VersionId) info.version = out.VersionId;
    return info;
  }

  protected async _delete(key: string, options: OperationOptions): Promise<void> {
    const objectKey = this.#objectKey(key, "delete");
    const viaSdk = () => this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey }), sendOptions(options.signal));
    await (this.#direct ? this.#direct.delete(objectKey, options.signal, viaSdk) : viaSdk());
  }

  protected override async _deleteMany(keys: string[], options: OperationOptions): Promise<void> {
    const objectKeys = [...new Set(keys)].map((key) => this.#objectKey(key, "deleteMany"));
    // DeleteObjects is an XML body, and XML 1.0 cannot carry U+FFFE/U+FFFF: such keys go one by one.
    const inXml = objectKeys.filter((key) => !NOT_XML.test(key));
    const alone = objectKeys.filter((key) => NOT_XML.test(key));
    for (let i = 0; i < inXml.length; i += DELETE_BATCH) {
      const batch = inXml.slice(i, i + DELETE_BATCH);
      const out = await this.#client.send(
        new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
        sendOptions(options.signal),
      );
      const failed = out.Errors?.[0];
      if (failed) {
        const key = failed.Key?.slice(this.prefix.length);
        throw classifyS3Error(Object.assign(new Error(failed.Message ?? "delete failed"), { name: failed.Code ?? "Error" }), { op: "deleteMany", key, bucket: this.bucket });
      }
    }
    await mapLimit(alone, this.#config.concurrency, (Key) => this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }), sendOptions(options.signal)));
  }

  protected override async _getMany(keys: string[], options: OperationOptions): Promise<(Uint8Array | undefined)[]> {
    return mapLimit(keys, this.#config.concurrency, async (key) => {
      try {
        return await this._get(key, options);
      } catch (err) {
        if (this.classifyError(err, "getMany", key).kind === "not_found") return undefined;
        throw err;
      }
    });
  }

  protected override async _putMany(entries: BatchEntry[], options: OperationOptions): Promise<void> {
    await mapLimit(entries, this.#config.concurrency, (entry) => this._put(entry.key, entry.data, { signal: options.signal, metadata: entry.metadata }));
  }

  protected async _list(prefix: string, options: OperationOptions): Promise<string[]> {
    const keys: string[] = [];
    if (this.#prefixBytes + Buffer.byteLength(prefix, "utf8") > MAX_KEY_BYTES) return keys;
    let token: string | undefined;
    do {
      const out = await this.#listObjects({ Prefix: this.prefix + prefix, ContinuationToken: token, MaxKeys: LIST_BATCH }, options.signal);
      keys.push(...this.#keysOf(out));
      token = out.truncated ? out.nextContinuationToken : undefined;
    } while (token);
    return keys;
  }

  protected override async _listPage(prefix: string, options: CleanListPageOptions): Promise<ListPage> {
    const keys: string[] = [];
    if (this.#prefixBytes + Buffer.byteLength(prefix, "utf8") > MAX_KEY_BYTES) return { keys };
    // `after` is a key, so StartAfter resumes exactly there (no continuation token to keep).
    const startAfter = options.after !== undefined && options.after > "" ? this.prefix + options.after : undefined;
    let token: string | undefined;
    let truncated = false;
    do {
      const want = options.limit - keys.length;
      const out = await this.#listObjects(
        { Prefix: this.prefix + prefix, MaxKeys: Math.min(want, LIST_BATCH), ...(token ? { ContinuationToken: token } : { StartAfter: startAfter }) },
        options.signal,
      );
      keys.push(...this.#keysOf(out));
      truncated = out.truncated;
      token = truncated ? out.nextContinuationToken : undefined;
    } while (token && keys.length < options.limit);
    return truncated && keys.length > 0 ? { keys, next: keys[keys.length - 1] } : { keys };
  }

  async #listObjects(params: { Prefix: string; MaxKeys: number; ContinuationToken?: string; StartAfter?: string }, signal: AbortSignal | undefined): Promise<ListedPage> {
    const viaSdk = async (): Promise<ListedPage> => {
      // EncodingType=url: XML 1.0 cannot carry every character a key may hold (U+FFFE, U+FFFF).
      const out = await this.#client.send(new ListObjectsV2Command({ Bucket: this.bucket, EncodingType: "url", ...params }), sendOptions(signal));
      return {
        keys: (out.Contents ?? []).flatMap((object) => (object.Key === undefined ? [] : [object.Key])),
        truncated: out.IsTruncated === true,
        nextContinuationToken: out.NextContinuationToken,
        encodingType: out.EncodingType,
      };
    };
    if (!this.#direct) return viaSdk();
    const direct = { prefix: params.Prefix, maxKeys: params.MaxKeys, continuationToken: params.ContinuationToken, startAfter: params.StartAfter };
    return this.#direct.list(direct, signal, viaSdk);
  }

  /** The store's keys in one listing page (decoded when the server url-encoded them). */
  #keysOf(page: ListedPage): string[] {
    const encoded = page.encodingType === "url";
    const keys: string[] = [];
    for (const listed of page.keys) {
      const key = encoded ? decodeListedKey(listed) : listed;
      if (key.startsWith(this.prefix)) keys.push(key.slice(this.prefix.length));
    }
    return keys;
  }

  protected override async _versions(key: string, options: OperationOptions): Promise<VersionInfo[]> {
    const objectKey = this.#objectKey(key, "versions");
    const newestFirst: (VersionInfo & { latest: boolean })[] = [];
    let keyMarker: string | undefined;
    let versionMarker: string | undefined;
    for (;;) {
      const out = await this.#client.send(
        new ListObjectVersionsCommand({ Bucket: this.bucket, Prefix: objectKey, EncodingType: "url", KeyMarker: keyMarker, VersionIdMarker: versionMarker }),
        sendOptions(options.signal),
      );
      const keyOf = (listed: string | undefined) => (listed !== undefined && out.EncodingType === "url" ? decodeListedKey(listed) : listed);
      // The response lists versions and delete markers of a key newest first; the SDK splits them
      // into two lists, so they are merged again by time (IsLatest breaks a tie at the top).
      for (const v of out.Versions ?? []) {
        if (keyOf(v.Key) !== objectKey || !v.VersionId) continue;
        newestFirst.push({ version: v.VersionId, size: v.Size ?? 0, modified: v.LastModified ?? new Date(0), deleted: false, latest: v.IsLatest === true });
      }
      for (const m of out.DeleteMarkers ?? []) {
        if (keyOf(m.Key) !== objectKey || !m.VersionId) continue;
        newestFirst.push({ version: m.VersionId, size: 0, modified: m.LastModified ?? new Date(0), deleted: true, latest: m.IsLatest === true });
      }
      const nextKey = keyOf(out.NextKeyMarker);
      // Versions of one key are contiguous: once the listing moves past it, stop.
      if (!out.IsTruncated || nextKey === undefined || nextKey !== objectKey) break;
      keyMarker = nextKey;
      versionMarker = out.NextVersionIdMarker;
    }
    newestFirst.sort((a, b) => b.modified.getTime() - a.modified.getTime() || Number(b.latest) - Number(a.latest));
    return newestFirst.reverse().map(({ version, size, modified, deleted }) => ({ version, size, modified, deleted }));
  }

  protected async _close(): Promise<void> {
    await this.#direct?.close();
    if (this.#ownsClient) this.#client.destroy();
  }

  /** The object key for `key` under the prefix, refused when S3 could not hold it. */
  #objectKey(key: string, op: StorageOp): string {
    if (this.#prefixBytes === 0) return key;
    const bytes = this.#prefixBytes + Buffer.byteLength(key, "utf8");
    if (bytes > MAX_KEY_BYTES) {
      throw new StorageError("invalid", `key is ${bytes - this.#prefixBytes} UTF-8 bytes; under the prefix "${this.prefix}" S3 takes at most ${MAX_KEY_BYTES - this.#prefixBytes}`, { op, key });
    }
    return this.prefix + key;
  }
}

/**
 * Whether the bucket has versioning enabled. Servers without the API (s3rver) have none; a
 * policy without s3:GetBucketVersioning reads as "not enabled" (set `versioning: true` then).
 */
async function bucketVersioning(client: S3Client, bucket: string): Promise<boolean> {
  try {
    const out = await client.send(new GetBucketVersioningCommand({ Bucket: bucket }));
    return out.Status === "Enabled";
  } catch (err) {
    const name = (err as { name?: string }).name;
    if (name === "NotImplemented" || name === "MethodNotAllowed" || name === "AccessDenied" || (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 501) return false;
    throw err;
  }
}

/** A key from a listing with EncodingType=url: form encoding, so `+` is a space. */
function decodeListedKey(key: string): string {
  return decodeURIComponent(key.replace(/\+/g, " "));
}

/** `s3://[ACCESS_KEY:SECRET@]BUCKET[/PREFIX]?endpoint=…&region=…&forcePathStyle=true`. */
export async function openS3Store(target: StoreUrl, options: OpenStoreOptions): Promise<S3Store> {
  return S3Store.open({ ...options.s3, ...optionsFromUrl(target) });
}
