import type { Readable } from "node:stream";
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  type PutObjectCommandInput,
} from "@aws-sdk/client-s3";
import { StorageError, type StorageOp } from "../errors.js";
import { MAX_KEY_BYTES } from "../keys.js";
import type { StoreUrl } from "../types.js";
import {
  BaseStore,
  resolveRange,
  type CleanBatchEntry,
  type CleanDeleteOptions,
  type CleanFolderOptions,
  type CleanListPageOptions,
  type CleanPutOptions,
  type CleanWriteOptions,
} from "../store.js";
import { mapLimit } from "../internal/concurrency.js";
import { optionsFromUrl, resolveS3Config, sendOptions, type ResolvedS3Config, type S3StoreOptions } from "./s3/config.js";
import { assertBucket, bucketVersioning, probeConditions, probeWriteConditions, type ConditionSupport, type WriteConditionSupport } from "./s3/bucket.js";
import { classifyS3Error } from "./s3/errors.js";
import { decodeMetadata, encodeMetadata, S3_METADATA_LIMIT } from "./s3/metadata.js";
import { uploadBuffer, uploadStream, type MultipartOptions } from "./s3/multipart.js";
import { BucketListing } from "./s3/listing.js";
import { bodyStart, cutBuffer, cutStream, rangeHeader } from "./s3/range.js";
import type { ByteRange, Capabilities, GetOptions, ListPage, Metadata, ObjectInfo, OperationOptions, VersionInfo, WriteConditions } from "../types.js";

export type { S3StoreOptions } from "./s3/config.js";

/** S3's largest object (5 TiB). */
const MAX_OBJECT_BYTES = 5 * 1024 ** 4;
/** Keys per DeleteObjects request: S3's maximum. */
const DELETE_BATCH = 1000;
/** Characters a key may hold that XML 1.0 cannot (keys never hold control characters). */
const NOT_XML = /[\ufffe\uffff]/;
/** S3's largest single PutObject (5 GiB): a conditional put up to this size is one request. */
const MAX_PUT_OBJECT_BYTES = 5 * 1024 ** 3;

/**
 * A store in an S3 bucket (AWS S3, MinIO, R2, Ceph…), optionally under a key prefix that acts as
 * a namespace. Small values are one PutObject; values above `partSize` and every `putStream`
 * are multipart uploads holding at most `partSize × (queueSize + 1)` bytes, aborted on failure
 * so no parts or partial objects stay behind. `list` is ListObjectsV2 (UTF-8 byte order, as the contract wants) page by page;
 * `deleteMany` is DeleteObjects in batches of 1000. Metadata is S3 user metadata, non-ASCII
 * values encoded as RFC 2047 words. Versions are declared when the bucket has versioning enabled.
 *
 * Build one with {@link S3Store.open} (with an S3Client of your own, or options to make one) or
 * `openStore("s3://…")`.
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
  readonly #listing: BucketListing;
  /** Which write conditions the server honours (asked at open). */
  readonly #conditions: ConditionSupport;
  /** The conditions only a write can reveal, asked by the first write that needs one. */
  #writeConditions: Promise<WriteConditionSupport> | undefined;

  /** `ownsClient`: close() destroys the client (true only for clients the store created). */
  private constructor(config: ResolvedS3Config, state: { client: S3Client; ownsClient: boolean; versions: boolean; conditions: ConditionSupport }) {
    super();
    const { client, ownsClient, versions } = state;
    this.#conditions = state.conditions;
    this.#config = config;
    this.bucket = config.bucket;
    this.prefix = config.prefix;
    this.#prefixBytes = Buffer.byteLength(config.prefix, "utf8");
    this.#listing = new BucketListing(state.client, config.bucket, config.prefix);
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
      conditionalWrites: state.conditions.putIfMatch,
      rangeReads: true,
      maxValueBytes: MAX_OBJECT_BYTES,
      // S3's 1024 bytes hold the prefix too.
      ...(this.#prefixBytes > 0 && { maxKeyBytes: MAX_KEY_BYTES - this.#prefixBytes }),
    });
  }

  /**
   * Opens a store on `options.bucket` after checking the options. It asks the bucket what it
   * needs to know (with the defaults: GetBucketVersioning, and the conditional-write probe of
   * docs/s3.md), which also fails early when the bucket is missing (`not_found`; the store never
   * creates buckets) or the credentials are refused (`fatal`). With `versioning` and
   * `conditionalWrites` both given, it sends HeadBucket instead. With `create: false` nothing is
   * written, not even the probe's object: `conditionalWrites` is then false unless given.
   */
  static async open(options: S3StoreOptions): Promise<S3Store> {
    const config = resolveS3Config(options);
    const client = options.client ?? new S3Client(config.clientConfig);
    try {
      const probe = config.conditionalWrites === "auto" && options.create !== false;
      const given = config.conditionalWrites === true;
      const [versions, conditions] = await Promise.all([
        config.versioning === "auto" ? bucketVersioning(client, config.bucket) : config.versioning,
        probe ? probeConditions(client, config.bucket, probePrefix(config.prefix)) : { putIfMatch: given, deleteIfMatch: given },
        config.versioning !== "auto" && !probe && assertBucket(client, config.bucket),
      ]);
      return new S3Store(config, { client, ownsClient: options.client === undefined, versions, conditions });
    } catch (err) {
      if (!options.client) client.destroy();
      throw classifyS3Error(err, { op: "open", key: undefined, bucket: config.bucket });
    }
  }

  protected override classifyError(err: unknown, op: StorageOp, key: string | undefined): StorageError {
    return classifyS3Error(err, { op, key, bucket: this.bucket, kms: this.#config.sse.ServerSideEncryption === "aws:kms" });
  }

  protected async _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
    const params = this.#putParams(key, options.metadata, "put");
    const condition = await this.#condition(options, "put", key);
    // A conditional put stays one request as long as S3 takes it in one: the condition then
    // needs no multipart support from the server.
    const single = condition ? MAX_PUT_OBJECT_BYTES : this.#config.partSize;
    if (data.byteLength <= single) {
      const put = this.#client.send(new PutObjectCommand({ ...params, ...condition, Body: data, ContentLength: data.byteLength }), sendOptions(options.signal));
      await this.#conditional(put, condition, "put", key);
      return;
    }
    await this.#conditional(uploadBuffer(data, this.#multipart(params, options, "put", key, condition)), condition, "put", key);
  }

  protected override async _putStream(key: string, source: AsyncIterable<Uint8Array>, options: CleanPutOptions): Promise<void> {
    const condition = await this.#condition(options, "putStream", key);
    const params = this.#putParams(key, options.metadata, "putStream");
    await this.#conditional(uploadStream(source, this.#multipart(params, options, "putStream", key, condition)), condition, "putStream", key);
  }

  #multipart(params: PutObjectCommandInput, options: CleanPutOptions, op: StorageOp, key: string, condition: SdkCondition | undefined): MultipartOptions {
    const checkCondition = async () => {
      const support = await this.#probeWriteConditions();
      const honoured = condition?.IfMatch !== undefined ? support.completeIfMatch : support.completeIfNoneMatch;
      if (!honoured) throw unsupportedCondition(op, key, "on CompleteMultipartUpload (a value above partSize); write it with put, which sends one PutObject up to 5 GiB");
    };
    return { client: this.#client, params, condition, checkCondition, partSize: this.#config.partSize, queueSize: this.#config.queueSize, signal: options.signal };
  }

  /** The condition as SDK fields, after making sure this server honours it on PutObject. */
  async #condition(options: WriteConditions, op: StorageOp, key: string): Promise<SdkCondition | undefined> {
    if (options.ifMatch !== undefined) return { IfMatch: options.ifMatch };
    if (options.ifNoneMatch === undefined) return undefined;
    if (!(await this.#probeWriteConditions()).putIfNoneMatch) throw unsupportedCondition(op, key, "If-None-Match on PutObject");
    return { IfNoneMatch: options.ifNoneMatch };
  }

  /** A conditional write whose key is missing: S3 answers `If-Match` with 404 NoSuchKey, a failed condition. */
  async #conditional<T>(write: Promise<T>, condition: SdkCondition | undefined, op: StorageOp, key: string): Promise<T> {
    if (condition?.IfMatch === undefined) return write;
    try {
      return await write;
    } catch (err) {
      if (isMissingKey(err)) throw new StorageError("conflict", "the key does not exist, so its etag cannot match (ifMatch); nothing was changed", { op, key, cause: err });
      throw err;
    }
  }

  #probeWriteConditions(): Promise<WriteConditionSupport> {
    this.#writeConditions ??= probeWriteConditions(this.#client, this.bucket, probePrefix(this.prefix)).catch((err: unknown) => {
      this.#writeConditions = undefined;
      throw err;
    });
    return this.#writeConditions;
  }

  #putParams(key: string, metadata: Metadata | undefined, op: StorageOp): PutObjectCommandInput {
    const { headers, bytes } = encodeMetadata(metadata);
    if (bytes > S3_METADATA_LIMIT) {
      throw new StorageError("invalid", `metadata is ${bytes} bytes as S3 headers (non-ASCII values are base64-encoded), S3 keeps at most ${S3_METADATA_LIMIT}`, { op, key });
    }
    return { Bucket: this.bucket, Key: this.#objectKey(key, op), Metadata: headers, ...this.#config.sse };
  }

  protected async _get(key: string, options: GetOptions): Promise<Uint8Array> {
    const { range } = options;
    const got = await this.#getBody(key, options, "get");
    if (got === undefined) return new Uint8Array(0);
    const data = await got.body.transformToByteArray();
    return range ? cutBuffer(data, got.start, range) : data;
  }

  protected override async _getStream(key: string, options: GetOptions): Promise<AsyncIterable<Uint8Array>> {
    const { range } = options;
    const got = await this.#getBody(key, options, "getStream");
    if (got === undefined) return (async function* () {})();
    const body = got.body as unknown as Readable;
    return range ? cutStream(body, got.start, range) : body;
  }

  /**
   * GetObject, of a range when asked: the body and the byte of the object it starts at, or
   * undefined when the range holds no bytes (an offset at the very end, a length of 0).
   */
  async #getBody(key: string, options: GetOptions, op: StorageOp) {
    const { range, version } = options;
    try {
      // HTTP cannot ask for 0 bytes: the size decides whether the offset is valid.
      if (range?.length === 0) return this.#emptyRange(key, range, version, op, options.signal);
      const out = await this.#client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.#objectKey(key, op), VersionId: version, Range: range && rangeHeader(range) }),
        sendOptions(options.signal),
      );
      if (!out.Body) throw new StorageError("fatal", "the S3 server returned no body", { op, key });
      return { body: out.Body, start: range ? bodyStart(out.ContentRange) : 0 };
    } catch (err) {
      // 416: the range starts at or past the end. At the end is an empty range, past it `invalid`.
      if (range && (err as { name?: string }).name === "InvalidRange") return this.#emptyRange(key, range, version, op, options.signal);
      throw this.#versionNotFound(err, key, version, op);
    }
  }

  async #emptyRange(key: string, range: ByteRange, version: string | undefined, op: StorageOp, signal: AbortSignal | undefined): Promise<undefined> {
    try {
      const head = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.#objectKey(key, op), VersionId: version }), sendOptions(signal));
      resolveRange(range, head.ContentLength ?? 0, op, key);
      return undefined;
    } catch (err) {
      throw this.#versionNotFound(err, key, version, op);
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
      etag: out.ETag ?? "",
    };
    if (this.capabilities.versions && out.VersionId) info.version = out.VersionId;
    return info;
  }

  protected async _delete(key: string, options: CleanDeleteOptions): Promise<void> {
    const { ifMatch } = options;
    if (ifMatch !== undefined && !this.#conditions.deleteIfMatch) throw unsupportedCondition("delete", key, "If-Match on DeleteObject");
    const condition = ifMatch === undefined ? undefined : { IfMatch: ifMatch };
    await this.#conditional(this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.#objectKey(key, "delete"), ...condition }), sendOptions(options.signal)), condition, "delete", key);
  }

  protected override async _deleteMany(keys: string[], options: CleanWriteOptions): Promise<void> {
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

  protected override async _putMany(entries: CleanBatchEntry[], options: CleanWriteOptions): Promise<void> {
    await mapLimit(entries, this.#config.concurrency, ({ key, data, ...rest }) => this._put(key, data, { ...options, ...rest }));
  }

  protected async _list(prefix: string, options: OperationOptions): Promise<string[]> {
    return this.#listing.list(prefix, options.signal);
  }

  protected override async _listPage(prefix: string, options: CleanListPageOptions): Promise<ListPage> {
    return this.#listing.page(prefix, options);
  }

  protected override async _listFolder(prefix: string, options: CleanFolderOptions): Promise<ListPage> {
    return this.#listing.folder(prefix, options);
  }

  protected override async _versions(key: string, options: OperationOptions): Promise<VersionInfo[]> {
    return this.#listing.versions(this.#objectKey(key, "versions"), options.signal);
  }

  protected async _close(): Promise<void> {
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

/** A write condition as the SDK's fields. */
interface SdkCondition {
  IfMatch?: string;
  IfNoneMatch?: string;
}

/** Where the probe objects of a store go (see s3/bucket.ts): inside its prefix, where it may write. */
function probePrefix(prefix: string): string {
  return `${prefix}.stowage-probe/`;
}

function unsupportedCondition(op: StorageOp, key: string, what: string): StorageError {
  return new StorageError("unsupported", `this S3 server ignores ${what}, so the condition cannot be enforced: it is refused rather than lose a write`, { op, key });
}

/** A 404 for a key (NoSuchKey, or a HEAD's bare 404), not for the bucket. */
function isMissingKey(err: unknown): boolean {
  const { name, $metadata } = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return name === "NoSuchKey" || (name !== "NoSuchBucket" && $metadata?.httpStatusCode === 404);
}

/** `s3://[ACCESS_KEY:SECRET@]BUCKET[/PREFIX]?endpoint=…&region=…&forcePathStyle=true`: {@link S3Store.open} with the URL's options. */
export async function openS3Store(target: StoreUrl, options: S3StoreOptions = {}): Promise<S3Store> {
  return S3Store.open({ ...options, ...optionsFromUrl(target) });
}
