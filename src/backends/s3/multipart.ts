/**
 * Multipart uploads with a hard memory bound and a clean failure path.
 *
 * Why not lib-storage's `Upload`: it concatenates every part out of the incoming chunks, so
 * each part exists twice until GC (docs/s3.md has the measurement), and after `abort()` its
 * `done()` rejects before its own cleanup ran (on moto a multipart upload stayed in progress). Here a stream is copied into at most `queueSize + 1`
 * part buffers that are reused, so memory is `partSize × (queueSize + 1)` whatever the size;
 * and on any failure (source error, part error, abort) the in-flight parts are cancelled, the
 * upload is aborted on the server (AbortMultipartUpload) and only then the call rejects, with
 * the first error, never the cleanup's.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type PutObjectCommandInput,
  type S3Client,
} from "@aws-sdk/client-s3";
import { sendOptions } from "./config.js";

/** S3's most parts in one upload. */
export const MAX_PARTS = 10_000;
/** How long the cleanup (AbortMultipartUpload) may take after a failure. */
const CLEANUP_TIMEOUT_MS = 30_000;

export interface MultipartOptions {
  client: S3Client;
  /** Bucket, Key, Metadata, encryption: everything but the body. */
  params: Omit<PutObjectCommandInput, "Body">;
  /** A write condition: on the PutObject, or on CompleteMultipartUpload (which makes the object). */
  condition?: { IfMatch?: string; IfNoneMatch?: string };
  /** Called before a conditional multipart upload starts: rejects when the server would ignore the condition. */
  checkCondition?: () => Promise<void>;
  partSize: number;
  queueSize: number;
  signal?: AbortSignal;
}

/** Uploads a body held in memory: parts are views into it, never copies. */
export function uploadBuffer(data: Uint8Array, options: MultipartOptions): Promise<void> {
  const { partSize } = options;
  async function* parts(): AsyncGenerator<Uint8Array> {
    for (let offset = 0; offset < data.byteLength || offset === 0; offset += partSize) {
      yield data.subarray(offset, offset + partSize);
    }
  }
  return uploadParts(parts(), undefined, options);
}

/** Uploads a stream of any length, holding at most `queueSize + 1` parts. */
export function uploadStream(source: AsyncIterable<Uint8Array>, options: MultipartOptions): Promise<void> {
  const pool: Buffer[] = [];
  let allocated = 0;
  const waiting: ((buffer: Buffer) => void)[] = [];
  const take = async (): Promise<Buffer> => {
    const free = pool.pop();
    if (free) return free;
    if (allocated < options.queueSize + 1) {
      allocated++;
      return Buffer.allocUnsafe(options.partSize);
    }
    return new Promise((resolve) => waiting.push(resolve));
  };
  const release = (part: Uint8Array) => {
    const buffer = Buffer.from(part.buffer, part.byteOffset, options.partSize);
    const next = waiting.shift();
    if (next) next(buffer);
    else pool.push(buffer);
  };
  async function* parts(): AsyncGenerator<Uint8Array> {
    let buffer = await take();
    let filled = 0;
    for await (const chunk of source) {
      let offset = 0;
      while (offset < chunk.byteLength) {
        const n = Math.min(chunk.byteLength - offset, buffer.byteLength - filled);
        buffer.set(chunk.subarray(offset, offset + n), filled);
        filled += n;
        offset += n;
        if (filled === buffer.byteLength) {
          yield buffer;
          buffer = await take();
          filled = 0;
        }
      }
    }
    yield buffer.subarray(0, filled);
  }
  return uploadParts(parts(), release, options);
}

/**
 * Uploads the parts `parts` yields (each `partSize` bytes but the last). One part in all is a
 * single PutObject; otherwise a multipart upload with `queueSize` parts in flight.
 */
async function uploadParts(
  parts: AsyncGenerator<Uint8Array>,
  release: ((part: Uint8Array) => void) | undefined,
  { client, params, condition = {}, checkCondition, queueSize, signal }: MultipartOptions,
): Promise<void> {
  signal?.throwIfAborted();
  const first = await parts.next();
  const second = first.done ? first : await parts.next();
  if (second.done) {
    const body = first.done ? new Uint8Array(0) : first.value;
    await client.send(new PutObjectCommand({ ...params, ...condition, Body: body, ContentLength: body.byteLength }), sendOptions(signal));
    return;
  }
  if (checkCondition && (condition.IfMatch !== undefined || condition.IfNoneMatch !== undefined)) {
    try {
      await checkCondition();
    } catch (err) {
      parts.return(undefined).catch(() => undefined);
      throw err;
    }
  }

  // Cancels the in-flight parts when anything fails or the caller aborts.
  const inner = new AbortController();
  const onAbort = () => inner.abort(signal!.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  let uploadId: string | undefined;
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown) => {
    failure ??= { error };
    inner.abort(error);
  };
  // Rejects when the upload is cancelled, so a source that stalls cannot hold the cleanup back.
  const stopped = new Promise<never>((_, reject) => inner.signal.addEventListener("abort", () => reject(inner.signal.reason as Error), { once: true }));
  stopped.catch(() => undefined);
  const inFlight = new Set<Promise<void>>();
  const completed: CompletedPart[] = [];
  try {
    uploadId = (await client.send(new CreateMultipartUploadCommand(params), { abortSignal: inner.signal })).UploadId;
    if (!uploadId) throw Object.assign(new Error("CreateMultipartUpload returned no UploadId"), { name: "InternalError" });
    const upload = async (part: Uint8Array, partNumber: number) => {
      const out = await client.send(
        new UploadPartCommand({ Bucket: params.Bucket, Key: params.Key, UploadId: uploadId, PartNumber: partNumber, Body: part, ContentLength: part.byteLength }),
        { abortSignal: inner.signal },
      );
      completed.push({ PartNumber: partNumber, ETag: out.ETag });
      release?.(part);
    };
    const start = (part: Uint8Array, partNumber: number) => {
      if (partNumber > MAX_PARTS) throw Object.assign(new Error(`more than ${MAX_PARTS} parts: raise partSize`), { name: "EntityTooLarge" });
      const running: Promise<void> = upload(part, partNumber).catch(fail).finally(() => inFlight.delete(running));
      inFlight.add(running);
    };
    start(first.value, 1);
    start(second.value, 2);
    for (let partNumber = 3; !failure && !inner.signal.aborted; partNumber++) {
      while (inFlight.size >= queueSize && !failure) await Promise.race(inFlight);
      if (failure || inner.signal.aborted) break;
      const next = await Promise.race([parts.next(), stopped]);
      if (next.done) break;
      start(next.value, partNumber);
    }
    await Promise.all(inFlight);
    if (failure) throw failure.error;
    inner.signal.throwIfAborted();
    completed.sort((a, b) => a.PartNumber! - b.PartNumber!);
    await client.send(
      new CompleteMultipartUploadCommand({ Bucket: params.Bucket, Key: params.Key, UploadId: uploadId, MultipartUpload: { Parts: completed }, ...condition }),
      { abortSignal: inner.signal },
    );
  } catch (err) {
    // The first error is the one to report: the parts cancelled below fail with AbortErrors.
    failure ??= { error: err };
    inner.abort(err);
    await Promise.allSettled(inFlight);
    // Lets the source release what it holds (not awaited: a stalled source would never answer).
    parts.return(undefined).catch(() => undefined);
    if (uploadId) {
      // Best effort: the caller's error matters more than the cleanup's; a bucket lifecycle rule
      // (AbortIncompleteMultipartUpload) removes what a failed cleanup leaves.
      await client
        .send(new AbortMultipartUploadCommand({ Bucket: params.Bucket, Key: params.Key, UploadId: uploadId }), { abortSignal: AbortSignal.timeout(CLEANUP_TIMEOUT_MS) })
        .catch(() => undefined);
    }
    throw failure.error;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}
