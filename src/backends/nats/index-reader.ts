import { DeliverPolicy, type JetStreamClient, type JsMsg } from "@nats-io/jetstream";
import { readToEnd, type EndProbe } from "./stall.js";

/** The index messages under a subject filter, as {@link readIndex} reads them. */
export type IndexReader = (filter: string, policy: "all" | "last_per_subject" | number) => Promise<AsyncIterable<JsMsg>>;

/** How often a read that waits for messages asks whether any are left. */
const END_CHECK_MS = 250;

/**
 * Reads index messages matching a subject filter through an ephemeral ordered push consumer,
 * headers only (values never travel for listings, histories or sweeps). The server resolves
 * the filter, so the work is proportional to the matching messages, not to the bucket.
 *
 * - `last_per_subject`: the latest message of every matching key (listing);
 * - `all`: every retained message (history, sweep);
 * - a number: every message from that stream sequence on (the changes since a listing);
 * each ends once caught up with what was in the stream when the consumer was created.
 *
 * `existsAfter(seq)` says whether a message matching the filter has a sequence above `seq` (one
 * direct get). The server's pending count decides when the read is complete only together with
 * it (see {@link EndProbe}): a listing, and the sweep that decides what is unreferenced, must
 * neither miss a message nor wait for one that will never come.
 */
export async function readIndex(
  js: JetStreamClient,
  stream: string,
  filter: string,
  policy: "all" | "last_per_subject" | number,
  existsAfter: (seq: number) => Promise<boolean>,
): Promise<AsyncIterable<JsMsg>> {
  const start =
    typeof policy === "number"
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: policy }
      : { deliver_policy: policy === "all" ? DeliverPolicy.All : DeliverPolicy.LastPerSubject };
  const before = typeof policy === "number" ? policy - 1 : 0;
  const consumer = await js.consumers.getPushConsumer(stream, { filter_subjects: filter, ...start, headers_only: true });
  const info = await consumer.info(true);
  if (info.num_pending === 0 && !(await existsAfter(before))) {
    // Delete now rather than leave the server to expire it after its inactivity threshold.
    void consumer.delete().catch(() => undefined);
    return (async function* () {})();
  }
  const messages = await consumer.consume();
  const probe: EndProbe = {
    everyMs: END_CHECK_MS,
    confirmEnd: true,
    // A failed check (a failover in progress) is not the end: ask again; the stall guard bounds the wait.
    run: (last) => existsAfter(last).then((more) => (more ? "wait" : "end"), () => "wait"),
  };
  return readToEnd(messages, consumer, probe, before);
}

/**
 * A live feed of new index messages matching `filter`, headers only; resolves once the server
 * consumer exists, so every change after that is delivered. `stop()` ends it.
 */
export async function followIndex(js: JetStreamClient, stream: string, filter: string): Promise<{ messages: AsyncIterable<JsMsg>; stop: () => void }> {
  const consumer = await js.consumers.getPushConsumer(stream, {
    filter_subjects: filter,
    deliver_policy: DeliverPolicy.New,
    headers_only: true,
  });
  const messages = await consumer.consume();
  let stopped = false;
  return {
    messages,
    stop: () => {
      if (stopped) return;
      stopped = true;
      messages.stop();
      void consumer.delete().catch(() => undefined);
    },
  };
}
