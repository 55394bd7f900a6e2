import { StorageError, type StorageOp } from "../errors.js";

/** The one `not_found` error of every backend: a missing key, or a missing version of it. */
export function notFound(op: StorageOp, key: string, version?: string): StorageError {
  const what = version === undefined ? "no value at this key" : `no version ${version} of this key`;
  return new StorageError("not_found", what, { op, key });
}
