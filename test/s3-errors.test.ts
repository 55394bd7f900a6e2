/**
 * The S3 error table (src/backends/s3/errors.ts) on errors shaped as the SDK throws them: kind
 * by code, then by HTTP status, never by message text. The same codes from a real server are
 * in test/s3-wire.test.ts (s3rver, and a proxy answering as a server would) and test/s3.test.ts
 * (moto).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { S3ServiceException } from "@aws-sdk/client-s3";
import { classifyS3Error, S3_ERRORS } from "../src/backends/s3/errors.js";
import type { StorageErrorKind } from "../src/errors.js";

function sdkError(name: string, status: number | undefined, message = "We encountered an internal error. Please try again."): S3ServiceException {
  return new S3ServiceException({ name, $fault: status !== undefined && status >= 500 ? "server" : "client", $metadata: { httpStatusCode: status }, message });
}

const context = { op: "get", key: "k", bucket: "events" } as const;

describe("s3 error table", () => {
  it("maps each code to its kind, whatever the message says", () => {
    const expected: [string, number, StorageErrorKind, RegExp][] = [
      ["NoSuchKey", 404, "not_found", /no value/],
      ["NoSuchBucket", 404, "fatal", /bucket "events" does not exist/],
      ["SlowDown", 503, "transient", /throttling/],
      ["Throttling", 400, "transient", /throttling/],
      ["ServiceUnavailable", 503, "transient", /retry later/],
      ["InternalError", 500, "transient", /retry later/],
      ["RequestTimeout", 400, "transient", /retry later/],
      ["RequestTimeTooSkewed", 403, "transient", /clock.*synchronise/],
      ["InvalidObjectState", 403, "fatal", /archived.*restore it first/],
      ["AccessDenied", 403, "fatal", /GetObject was denied on bucket "events".*s3:GetObject/],
      ["InvalidAccessKeyId", 403, "fatal", /credentials/],
      ["SignatureDoesNotMatch", 403, "fatal", /credentials/],
      ["ExpiredToken", 400, "fatal", /session token has expired/],
      ["PermanentRedirect", 301, "fatal", /another region/],
      ["PreconditionFailed", 412, "conflict", /condition/],
      ["ConditionalRequestConflict", 409, "conflict", /condition/],
      ["InvalidRange", 416, "invalid", /past the end/],
      ["NotImplemented", 501, "unsupported", /does not implement/],
      ["InvalidArgument", 400, "invalid", /invalid/],
      ["KMS.DisabledException", 400, "fatal", /KMS key/],
    ];
    for (const [code, status, kind, message] of expected) {
      // A message naming another code must not sway the classification.
      const err = classifyS3Error(sdkError(code, status, "SlowDown AccessDenied NoSuchKey"), context);
      assert.equal(err.kind, kind, code);
      assert.match(err.message, message, code);
      assert.ok(err.cause instanceof S3ServiceException, `${code}: the SDK's error is the cause`);
    }
  });

  it("every row of the table is covered above or by its status fallback", () => {
    for (const [code, row] of Object.entries(S3_ERRORS)) {
      const err = classifyS3Error(sdkError(code, 400), context);
      const kind = typeof row.kind === "function" ? row.kind(context) : row.kind;
      assert.equal(err.kind, kind, code);
    }
  });

  it("names the operation that was denied, and KMS when the store encrypts with it", () => {
    const denied = (op: string, kms = false) => classifyS3Error(sdkError("AccessDenied", 403), { op, key: undefined, bucket: "b", kms }).message;
    assert.match(denied("put"), /PutObject was denied.*s3:PutObject/);
    assert.match(denied("list"), /ListObjectsV2 was denied.*s3:ListBucket/);
    assert.match(denied("delete"), /DeleteObject was denied.*s3:DeleteObject/);
    assert.match(denied("versions"), /ListObjectVersions was denied.*s3:ListBucketVersions/);
    assert.match(denied("put", true), /kms:GenerateDataKey/);
    assert.doesNotMatch(denied("list", true), /kms:/);
  });

  it("a missing bucket at open is not_found (nothing is created), later fatal (not a missing key)", () => {
    assert.equal(classifyS3Error(sdkError("NoSuchBucket", 404), { op: "open", key: undefined, bucket: "b" }).kind, "not_found");
    // HeadBucket's 404 has no body, so no code: the status names the bucket at open.
    const head = classifyS3Error(sdkError("NotFound", 404), { op: "open", key: undefined, bucket: "b" });
    assert.equal(head.kind, "not_found");
    assert.match(head.message, /bucket "b" does not exist/);
    assert.equal(classifyS3Error(sdkError("NoSuchBucket", 404), { op: "getMany", key: undefined, bucket: "b" }).kind, "fatal");
  });

  it("falls back on the HTTP status for codes without a row, and on Node's network codes", () => {
    assert.equal(classifyS3Error(sdkError("Unknown", 503), context).kind, "transient");
    assert.equal(classifyS3Error(sdkError("Unknown", 429), context).kind, "transient");
    assert.equal(classifyS3Error(sdkError("Unknown", 403), context).kind, "fatal");
    assert.equal(classifyS3Error(sdkError("Unknown", 412), context).kind, "conflict");
    assert.equal(classifyS3Error(sdkError("Unknown", 416), context).kind, "invalid");
    assert.equal(classifyS3Error(sdkError("Unknown", 400), context).kind, "invalid");
    const reset = Object.assign(new Error("socket hang up"), { code: "ECONNRESET" });
    assert.equal(classifyS3Error(reset, context).kind, "transient");
    assert.equal(classifyS3Error(new TypeError("boom"), context).kind, "fatal");
  });
});
