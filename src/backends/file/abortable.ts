/** Ending a source iteration promptly when a signal aborts. */
import { raceSignal } from "../../internal/signal.js";

/** Iterates `source`, ending promptly with the signal's reason when it aborts, even while the source waits. */
export async function* untilAborted<T>(source: AsyncIterable<T>, signal: AbortSignal | undefined): AsyncGenerator<T> {
  if (!signal) return yield* source;
  const iterator = source[Symbol.asyncIterator]();
  let finished = false;
  try {
    for (;;) {
      const next = await raceSignal(signal, () => iterator.next());
      if (next.done) {
        finished = true;
        return;
      }
      yield next.value;
    }
  } finally {
    // Tell an unfinished source to stop; not awaited, it may be stuck in its own await.
    if (!finished) iterator.return?.().catch(() => undefined);
  }
}

