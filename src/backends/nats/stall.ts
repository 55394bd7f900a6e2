import { TimeoutError } from "@nats-io/nats-core";

/**
 * How long a consumer read may wait for its next message. Consumers send a heartbeat every 5 s
 * while idle; silence this long means the server holding the consumer died mid-read (a
 * failover), and an ordered consumer may then wait forever.
 */
export const STALL_MS = 15_000;

/**
 * Guards a consumer read against hanging: arm it while waiting for the next message, disarm it
 * on each message. When it fires it stops the messages, and `throwIfStalled()` then fails the
 * read as a timeout (transient) — never a hang, never a silently partial result.
 */
function stallGuard(messages: { stop(): void }, ms = STALL_MS) {
  let timer: NodeJS.Timeout | undefined;
  let stalled = false;
  return {
    arm(): void {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stalled = true;
        messages.stop();
      }, ms);
    },
    disarm(): void {
      clearTimeout(timer);
    },
    throwIfStalled(): void {
      if (stalled) throw new TimeoutError();
    },
  };
}

/**
 * A consumer's messages until one says nothing more is pending, each wait guarded by
 * `stallGuard`. However the caller leaves (done, broke off, failed), the messages are stopped
 * and the consumer deleted now rather than left to the server's inactivity threshold.
 */
export async function* readToEnd<M extends { info: { pending: number } }>(
  messages: AsyncIterable<M> & { stop(): void },
  consumer: { delete(): Promise<unknown> },
): AsyncGenerator<M> {
  const guard = stallGuard(messages);
  try {
    guard.arm();
    for await (const m of messages) {
      guard.disarm();
      yield m;
      if (m.info.pending === 0) return;
      guard.arm();
    }
    guard.throwIfStalled();
  } finally {
    guard.disarm();
    messages.stop();
    void consumer.delete().catch(() => undefined);
  }
}
