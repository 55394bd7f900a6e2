/** Cutting a body into fixed-size pieces for chunk rows, without waiting past an abort. */

/**
 * Yields `source` as pieces of exactly `size` bytes (the last may be shorter). A caller's
 * chunk that holds whole pieces is passed on as views without copying; smaller chunks are
 * gathered into a fresh buffer. At most one piece is held here at a time.
 */
export async function* rechunk(source: AsyncIterable<Uint8Array>, size: number, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  let buffer: Uint8Array | undefined;
  let fill = 0;
  for await (const chunk of abortable(source, signal)) {
    let offset = 0;
    while (offset < chunk.byteLength) {
      if (fill === 0 && chunk.byteLength - offset >= size) {
        yield chunk.subarray(offset, offset + size);
        offset += size;
        continue;
      }
      buffer ??= new Uint8Array(size);
      const n = Math.min(size - fill, chunk.byteLength - offset);
      buffer.set(chunk.subarray(offset, offset + n), fill);
      fill += n;
      offset += n;
      if (fill === size) {
        yield buffer;
        buffer = undefined;
        fill = 0;
      }
    }
  }
  if (buffer && fill > 0) yield buffer.subarray(0, fill);
}

/**
 * Iterates `source`, but a pending read rejects as soon as `signal` aborts (a stalled body
 * must not keep a transaction and its connection open), and the source is then told to stop.
 */
export async function* abortable<T>(source: AsyncIterable<T>, signal?: AbortSignal): AsyncGenerator<T> {
  if (!signal) return yield* source;
  const iterator = source[Symbol.asyncIterator]();
  let finished = false;
  try {
    for (;;) {
      signal.throwIfAborted();
      const result = await new Promise<IteratorResult<T>>((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        iterator.next().then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
      });
      if (result.done) {
        finished = true;
        return;
      }
      yield result.value;
    }
  } finally {
    // Do not await: a stalled source may never settle its return either.
    if (!finished) void Promise.resolve(iterator.return?.()).catch(() => undefined);
  }
}
