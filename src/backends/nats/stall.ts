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
export function stallGuard(messages: { stop(): void }, ms = STALL_MS) {
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
