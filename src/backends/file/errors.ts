/** Node filesystem errors -> StorageError kinds, by `err.code` only (messages vary by platform). */
import { StorageError, type StorageOp } from "../../errors.js";
import { notFound } from "../../internal/not-found.js";
import { errno } from "./safe-fs.js";

// Operations where a missing file means a missing key.
const VALUE_READS: ReadonlySet<string> = new Set(["get", "getStream", "stat", "getMany"]);

/** The StorageError for a filesystem error under the store at `root`, or undefined when `err` has no known code. */
export function classifyFsError(err: unknown, op: StorageOp, key: string | undefined, root: string): StorageError | undefined {
  const fail = (kind: StorageError["kind"], message: string) => new StorageError(kind, message, { op, key, cause: err });
  switch (errno(err)) {
    case "ENOENT":
    case "ENOTDIR":
      if (VALUE_READS.has(op) && key !== undefined) return notFound(op, key);
      return errno(err) === "ENOENT"
        ? fail("transient", "a directory of the store vanished during the operation (a concurrent delete); retry")
        : fail("fatal", "a file stands where a directory of the store should be; remove it (it was not made by stowage)");
    case "ELOOP":
      return fail("fatal", `a symbolic link inside the store directory ${root} is in the way; stowage never follows links out of its root. Remove the link`);
    case "EISDIR":
      return fail("fatal", "a directory stands where the value file should be; remove it (it was not made by stowage)");
    case "EACCES":
    case "EPERM":
      return fail("fatal", `permission denied in the store directory ${root}: give this process read and write access to it and everything below it`);
    case "EROFS":
      return fail("fatal", `the store directory ${root} is on a read-only filesystem: mount it read-write or choose another directory`);
    case "ENAMETOOLONG":
      return fail("invalid", "the key's path is too long for this filesystem (the store's root path plus the escaped key exceed PATH_MAX); use a shorter key or a shorter root path");
    case "ENOSPC":
    case "EDQUOT":
      return fail("transient", "no space left on the store's filesystem (disk or quota full); free space, then retry");
    case "EMFILE":
    case "ENFILE":
      return fail("transient", "too many open files; retry, and raise the limit (ulimit -n) or lower the concurrency");
    case "EBUSY":
    case "EAGAIN":
    case "EINTR":
    case "ETIMEDOUT":
    case "ESTALE":
      return fail("transient", `the filesystem is busy (${errno(err)}); retry`);
    case "EIO":
      return fail("fatal", "I/O error reading or writing the store's disk; check the disk and the system log");
    default:
      return undefined;
  }
}
