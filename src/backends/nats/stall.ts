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
 * What a wait probe finds: `"wait"` (the messages are still to come) or `"end"` (nothing is left
 * to deliver: the read is complete). It throws when the messages cannot come (removed).
 */
export type ProbeResult = "wait" | "end";

/**
 * How a read learns that it is complete without trusting the server's pending count alone.
 * `run(lastSeq)` is asked every `everyMs` while no message arrives, and, with `confirmEnd`,
 * also when a message says nothing is pending. nats-server 2.9 miscounts the pending messages
 * of a filtered consumer once per-subject limits have removed messages inside the range: too
 * many makes a read wait forever, too few ends it early with keys silently missing.
 */
export interface EndProbe {
  everyMs: number;
  run: (lastSeq: number) => Promise<ProbeResult>;
  confirmEnd?: boolean;
}

/** Runs the probe every `everyMs` while armed and remembers what ended the wait (if anything). */
function waitProbe(messages: { stop(): void }, probe: EndProbe | undefined) {
  let timer: NodeJS.Timeout | undefined;
  let failure: { error: unknown } | undefined;
  let generation = 0;
  const schedule = (g: number, lastSeq: number) => {
    timer = setTimeout(() => {
      void probe!.run(lastSeq).then(
        (result) => {
          if (g !== generation) return;
          if (result === "end") messages.stop();
          else schedule(g, lastSeq);
        },
        (error: unknown) => {
          if (g !== generation) return;
          failure = { error };
          messages.stop();
        },
      );
    }, probe!.everyMs);
  };
  return {
    arm(lastSeq: number): void {
      clearTimeout(timer);
      if (probe) schedule(++generation, lastSeq);
    },
    disarm(): void {
      generation++;
      clearTimeout(timer);
    },
    throwIfFailed(): void {
      if (failure) throw failure.error;
    },
  };
}

/**
 * A consumer's messages until the read is complete, each wait guarded by `stallGuard` and, with
 * `probe`, by a probe that ends the read when nothing is left or fails it when the messages
 * cannot come. Complete means a message says nothing is pending (confirmed by the probe when
 * `probe.confirmEnd`), or the probe says so while waiting. However the caller leaves (done,
 * broke off, failed), the messages are stopped and the consumer deleted now rather than left
 * to the server's inactivity threshold.
 */
export async function* readToEnd<M extends { seq: number; info: { pending: number } }>(
  messages: AsyncIterable<M> & { stop(): void },
  consumer: { delete(): Promise<unknown> },
  probe?: EndProbe,
  startSeq = 0,
): AsyncGenerator<M> {
  const guard = stallGuard(messages);
  const waiting = waitProbe(messages, probe);
  const arm = (lastSeq: number) => {
    guard.arm();
    waiting.arm(lastSeq);
  };
  const disarm = () => {
    guard.disarm();
    waiting.disarm();
  };
  try {
    arm(startSeq);
    for await (const m of messages) {
      disarm();
      yield m;
      if (m.info.pending === 0 && (!probe?.confirmEnd || (await probe.run(m.seq)) === "end")) return;
      arm(m.seq);
    }
    waiting.throwIfFailed();
    guard.throwIfStalled();
  } finally {
    disarm();
    messages.stop();
    void consumer.delete().catch(() => undefined);
  }
}
