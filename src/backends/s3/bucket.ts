/**
 * What a store learns about its bucket at open: that it exists (a missing bucket rejects with
 * `not_found`, and nothing is created), whether it keeps versions, and whether the server
 * honours conditions on writes. Servers differ here: AWS S3, MinIO and moto refuse a write
 * whose `If-Match` does not hold; s3rver and some S3-compatible servers ignore the header and
 * write anyway, which would turn a conditional write into a lost update. So the server is asked,
 * with requests whose condition can never hold: a server that honours them changes nothing.
 */
import { randomUUID } from "node:crypto";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetBucketVersioningCommand,
  HeadBucketCommand,
  ListObjectVersionsCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from "@aws-sdk/client-s3";

/** An etag no object has: a condition on it never holds. */
const NO_SUCH_ETAG = '"00000000000000000000000000000000-stowage-probe"';

/** What a server answers to a condition that does not hold, when it honours it. */
function refusedCondition(err: unknown): boolean {
  const { name, $metadata } = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  // 412 PreconditionFailed, or 404 NoSuchKey for `If-Match` on a key that does not exist (AWS).
  return name === "PreconditionFailed" || name === "NoSuchKey" || $metadata?.httpStatusCode === 412 || ($metadata?.httpStatusCode === 404 && name !== "NoSuchBucket");
}

/** An answer that says "this server will not take this request": no support, not a failure. */
function refusedRequest(err: unknown): boolean {
  const { name, $metadata } = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  const status = $metadata?.httpStatusCode;
  // AccessDenied: credentials that may not write cannot make a conditional write either. Refused
  // credentials (InvalidAccessKeyId, SignatureDoesNotMatch) are not an answer: open fails on them.
  return name === "NotImplemented" || name === "MethodNotAllowed" || name === "AccessDenied" || name === "InvalidArgument" || name === "InvalidRequest" || status === 501;
}

/**
 * Whether the bucket has versioning enabled. Servers without the API (s3rver) have none; a
 * policy without s3:GetBucketVersioning reads as "not enabled" (set `versioning: true` then).
 */
export async function bucketVersioning(client: S3Client, bucket: string): Promise<boolean> {
  try {
    const out = await client.send(new GetBucketVersioningCommand({ Bucket: bucket }));
    return out.Status === "Enabled";
  } catch (err) {
    const name = (err as { name?: string }).name;
    if (name === "NotImplemented" || name === "MethodNotAllowed" || name === "AccessDenied" || (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 501) return false;
    throw err;
  }
}

/** Rejects (NoSuchBucket / 404) when the bucket does not exist. */
export async function assertBucket(client: S3Client, bucket: string): Promise<void> {
  await client.send(new HeadBucketCommand({ Bucket: bucket }));
}

/** The conditions a server may or may not honour, each probed separately. */
export interface ConditionSupport {
  /** PutObject `If-Match` (asked at open; also stands for the store's `conditionalWrites`). */
  putIfMatch: boolean;
  /** DeleteObject `If-Match` (asked at open). */
  deleteIfMatch: boolean;
}

/** The conditions only a write can reveal, asked when the first write needs one. */
export interface WriteConditionSupport {
  putIfNoneMatch: boolean;
  completeIfMatch: boolean;
  completeIfNoneMatch: boolean;
}

/**
 * Asks the server, writing nothing where it honours conditions: a 0-byte PutObject and a
 * DeleteObject of a key that does not exist, each with an `If-Match` that cannot hold. A server
 * that ignores the condition creates the probe object (deleted at once) or deletes nothing.
 */
export async function probeConditions(client: S3Client, bucket: string, probePrefix: string): Promise<ConditionSupport> {
  const key = `${probePrefix}${randomUUID()}`;
  const [putIfMatch, deleteIfMatch] = await Promise.all([
    honoured(client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: new Uint8Array(0), ContentLength: 0, IfMatch: NO_SUCH_ETAG }))),
    honoured(client.send(new DeleteObjectCommand({ Bucket: bucket, Key: `${key}-absent`, IfMatch: NO_SUCH_ETAG }))),
  ]);
  if (!putIfMatch) await removeProbe(client, bucket, key);
  return { putIfMatch, deleteIfMatch };
}

/**
 * Asks the server about `If-None-Match: *` on PutObject and both conditions on
 * CompleteMultipartUpload, which need an object to exist: writes a 0-byte probe object, tries
 * to replace it under conditions that cannot hold (a server that ignores them replaces it),
 * then deletes it and aborts what was left in progress.
 */
export async function probeWriteConditions(client: S3Client, bucket: string, probePrefix: string): Promise<WriteConditionSupport> {
  const key = `${probePrefix}${randomUUID()}`;
  const empty = { Body: new Uint8Array(0), ContentLength: 0 };
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, ...empty }));
  const complete = async (condition: { IfMatch?: string; IfNoneMatch?: string }) => {
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    try {
      const part = await client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, ...empty }));
      return await honoured(
        client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] }, ...condition })),
      );
    } finally {
      // A refused completion leaves the upload in progress; a completed one has nothing to abort.
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId })).catch(() => undefined);
    }
  };
  try {
    const putIfNoneMatch = await honoured(client.send(new PutObjectCommand({ Bucket: bucket, Key: key, ...empty, IfNoneMatch: "*" })));
    const completeIfNoneMatch = await complete({ IfNoneMatch: "*" });
    const completeIfMatch = await complete({ IfMatch: NO_SUCH_ETAG });
    return { putIfNoneMatch, completeIfMatch, completeIfNoneMatch };
  } finally {
    await removeProbe(client, bucket, key);
  }
}

/** Deletes a probe object, every version of it on a versioned bucket (best effort). */
async function removeProbe(client: S3Client, bucket: string, key: string): Promise<void> {
  try {
    const out = await client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: key }));
    const versions = [...(out.Versions ?? []), ...(out.DeleteMarkers ?? [])].filter((v) => v.Key === key && v.VersionId);
    for (const v of versions) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, VersionId: v.VersionId }));
    if (versions.length > 0) return;
  } catch {
    // No versions API (s3rver): a plain delete below.
  }
  await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })).catch(() => undefined);
}

/** True when `request` was refused for its condition, false when it went through or is refused outright. */
async function honoured(request: Promise<unknown>): Promise<boolean> {
  try {
    await request;
    return false;
  } catch (err) {
    if (refusedCondition(err)) return true;
    if (refusedRequest(err)) return false;
    throw err;
  }
}
