import { DeliverPolicy, type JetStreamClient, type JsMsg } from "@nats-io/jetstream";
import { readToEnd } from "./stall.js";

/**
 * Reads index messages matching a subject filter through an ephemeral ordered push consumer,
 * headers only (values never travel for listings, histories or sweeps). The server resolves
 * the filter, so the work is proportional to the matching messages, not to the bucket.
 *
 * - `last_per_subject`: the latest message of every matching key (listing);
 * - `all`: every retained message (history, sweep);
 * both end once caught up with what was in the stream when the consumer was created.
 */
export async function readIndex(js: JetStreamClient, stream: string, filter: string, policy: "all" | "last_per_subject"): Promise<AsyncIterable<JsMsg>> {
  const consumer = await js.consumers.getPushConsumer(stream, {
    filter_subjects: filter,
    deliver_policy: policy === "all" ? DeliverPolicy.All : DeliverPolicy.LastPerSubject,
    headers_only: true,
  });
  const info = await consumer.info(true);
  if (info.num_pending === 0) {
    // Delete now rather than leave the server to expire it after its inactivity threshold.
    void consumer.delete().catch(() => undefined);
    return (async function* () {})();
  }
  const messages = await consumer.consume();
  // An idle heartbeat means the server has nothing more to send: the messages counted at the
  // start were removed meanwhile (purged, or trimmed by the history limit). End, don't wait.
  void (async () => {
    for await (const status of messages.status()) {
      if (status.type !== "heartbeat") continue;
      // A failed check (a failover in progress) is not the end: try again at the next heartbeat.
      const pending = await consumer.info(false).then((i) => i.num_pending, () => undefined);
      if (pending === 0) messages.stop();
    }
  })().catch(() => undefined);
  return readToEnd(messages, consumer);
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
