/** Option checks and the shared listing of the move functions. */
import { StorageError, type StorageOp } from "../errors.js";

/** Most workers a caller may ask for: more only queue up in the client's connection pool. */
export const MAX_CONCURRENCY = 256;

export function checkConcurrency(value: unknown, fallback: number, op: StorageOp): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > MAX_CONCURRENCY) {
    throw new StorageError("invalid", `concurrency must be an integer from 1 to ${MAX_CONCURRENCY}, got ${String(value)}`, { op });
  }
  return value;
}

export function checkDate(value: unknown, name: string, op: StorageOp): Date {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) throw new StorageError("invalid", `${name} must be a valid Date`, { op });
  return value;
}

/**
 * A `next()` for several workers sharing one iterable: calls are chained, so the iterator is
 * never asked twice at once (not every AsyncIterable queues its calls as generators do).
 * Resolves undefined once the iterable is done.
 */
export function serialized<T>(iterable: AsyncIterable<T>): () => Promise<T | undefined> {
  const iterator = iterable[Symbol.asyncIterator]();
  let done = false;
  let last: Promise<unknown> = Promise.resolve();
  return () => {
    const step = last.then(async () => {
      if (done) return undefined;
      const result = await iterator.next();
      if (result.done) done = true;
      return result.done ? undefined : result.value;
    });
    // A failed step ends the iteration for every worker; the one that called it sees the error.
    last = step.catch(() => {
      done = true;
    });
    return step;
  };
}
