/**
 * The write port: every message on the write subject is stored through the archiver and
 * announced on the events port. Two modes:
 *
 * - `subscribe`: a core NATS queue subscription. Fast, but messages sent while no instance
 *   runs are lost, and so is a message the store fails (it is logged and counted).
 * - `jetstream`: a durable pull consumer on a stream that captures the write subject (created
 *   when missing). A message is acknowledged only after the store took it. When a message
 *   fails, the port asks the store whether it is otherwise healthy (a `stat` of a probe key):
 *   - the store is down: the message goes back without counting against it, and consumption
 *     pauses until a probe succeeds again (an outage never uses up delivery attempts);
 *   - the store is healthy, or the message is one no retry can fix (kind `invalid` /
 *     `unsupported`): the failure is the message's. After `max_deliver` of those (at once for
 *     invalid/unsupported) it is published to the dead-letter subject, which a JetStream stream
 *     keeps (created when no stream captures the subject), and terminated; before that it is
 *     redelivered after a backoff delay.
 *
 * Keys come from the message's identity, never from its payload: its `Nats-Msg-Id` header,
 * else in jetstream mode `<stream>-<sequence>`, stored under `<key_prefix>/YYYY/MM/DD/HH/<id>`
 * (the hour from the stream's timestamp in jetstream mode), so a redelivered message lands on
 * the key of its first delivery. A message without identity (subscribe mode, no Msg-Id) gets
 * the archiver's key generator.
 *
 * Every message holds its share of the {@link WorkBudget} until its store call has settled. The
 * jetstream port waits for room before taking the next message; the subscribe port cannot push
 * back, so its messages wait in a queue bounded by `max_in_flight_bytes`, and one that finds
 * the queue full is dropped (logged and counted).
 */
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  StorageType,
  jetstream,
  jetstreamManager,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { Match, headers as natsHeaders, nanos, type MsgHdrs, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { hourBucket } from "../archive/time-key.js";
import { toSegment } from "../archive/segments.js";
import { StorageError, isStorageError } from "../errors.js";
import { sleep } from "../internal/signal.js";
import type { Store } from "../types.js";
import type { ArchiveFn } from "./api.js";
import { withDeadline, type Lease, type WorkBudget } from "./budget.js";
import { asJsonText, plainBytes, rawMetadata } from "./codec.js";
import type { ComponentConfig } from "./config.js";
import type { EventPublisher } from "./events.js";
import type { Logger, Telemetry } from "./telemetry.js";

export interface WritePortDeps {
  nc: NatsConnection;
  config: ComponentConfig;
  store: Store;
  archive: ArchiveFn;
  events: EventPublisher;
  telemetry: Telemetry;
  budget: WorkBudget;
  logger: Logger;
  /** Aborts when a stop gives up waiting for work in flight. */
  abandon: AbortSignal;
}

/** Headers a dead-lettered message carries besides its own. */
export const DEAD_LETTER_HEADERS = {
  subject: "Stowage-Original-Subject",
  stream: "Stowage-Stream",
  sequence: "Stowage-Stream-Sequence",
  /** Deliveries of the message, outages included. */
  deliveries: "Stowage-Deliveries",
  /** Failures counted against the message (`max_deliver` of them, or 1 for an invalid one). */
  failures: "Stowage-Failures",
  errorKind: "Stowage-Error-Kind",
  error: "Stowage-Error",
} as const;

export interface WritePort {
  start(): Promise<void>;
  /** Stops taking messages; work already started continues (the component waits for it). */
  stopIntake(): Promise<void>;
}

export function createWritePort(deps: WritePortDeps): WritePort {
  return deps.config.write.type === "jetstream" ? new JetStreamWritePort(deps) : new SubscribeWritePort(deps);
}

/** A message as the port received it. */
interface Incoming {
  data: Uint8Array;
  headers: MsgHdrs | undefined;
  /** When the message was stored (stream) or received. */
  time: Date;
  /** Jetstream mode: `<stream>-<sequence>`, the identity of a message without a Msg-Id. */
  streamId?: string;
}

/** The key a message's identity gives, or undefined (the archiver's key generator decides). */
function messageKey(config: ComponentConfig, message: Pick<Incoming, "headers" | "time" | "streamId">): string | undefined {
  const id = message.headers?.get("Nats-Msg-Id", Match.IgnoreCase) || message.streamId;
  return id ? `${config.keyPrefix}/${hourBucket(message.time)}/${toSegment(id)}` : undefined;
}

/** Starts storing one message through the archiver (announcing it once stored); resolves to the key. */
async function storeMessage(deps: WritePortDeps, message: Incoming): Promise<string> {
  const { config } = deps;
  const key = messageKey(config, message);
  if (config.maxValueBytes !== undefined && message.data.byteLength > config.maxValueBytes) {
    throw new StorageError("invalid", `message is ${message.data.byteLength} bytes, over max_value_size ${config.maxValueBytes}`, { op: "write", key });
  }
  const metadata = message.headers ? rawMetadata(message.headers) : undefined;
  const json = asJsonText(message.data) !== undefined;
  const stored = await deps.archive({ bytes: plainBytes(message.data), json }, { key, metadata, signal: deps.abandon });
  deps.events.publish("stored", stored, metadata);
  return stored;
}

/** Stores a message within `timeouts.store`; the lease is released when the store call settles. */
async function storeWithin(deps: WritePortDeps, message: Incoming, lease: Lease): Promise<void> {
  const work = storeMessage(deps, message);
  work.then(lease.release, lease.release);
  await withDeadline(work, deps.config.timeoutsMs.store, { op: "write", setting: "timeouts.store" });
}

function classify(err: unknown): StorageError {
  if (err instanceof StorageError) return err;
  return new StorageError("fatal", `unexpected error: ${err instanceof Error ? err.message : String(err)}`, { op: "write", cause: err });
}

class SubscribeWritePort implements WritePort {
  readonly #deps: WritePortDeps;
  #sub: Subscription | undefined;
  #dropped = 0;
  #loggedAt = 0;

  constructor(deps: WritePortDeps) {
    this.#deps = deps;
  }

  async start(): Promise<void> {
    const { nc, config } = this.#deps;
    this.#sub = nc.subscribe(config.write.subject, {
      queue: config.queueGroup,
      callback: (err, msg) => {
        if (err) return this.#deps.logger.error("write subscription failed", { error: err.message });
        void this.#handle(msg.data, msg.headers);
      },
    });
  }

  async #handle(data: Uint8Array, headers: MsgHdrs | undefined): Promise<void> {
    const { budget, telemetry, logger } = this.#deps;
    const started = performance.now();
    try {
      const waiting = budget.queue(data.byteLength);
      if (!waiting) throw budget.busy("write");
      const lease = await waiting;
      await storeWithin(this.#deps, { data, headers, time: new Date() }, lease);
      telemetry.record("write", data.byteLength, 0, (performance.now() - started) / 1000);
    } catch (err) {
      const error = classify(err);
      telemetry.record("write", data.byteLength, 0, (performance.now() - started) / 1000, { kind: error.kind, message: error.message });
      // Fire-and-forget has no one to tell: the log and the health report are all there is
      // (one line a second at most, so a flood behind a hung store does not flood the log too).
      this.#dropped++;
      const now = Date.now();
      if (now - this.#loggedAt >= 1000) {
        logger.warn("write port: messages not stored (subscribe mode drops them)", { dropped: this.#dropped, kind: error.kind, error: error.message });
        this.#dropped = 0;
        this.#loggedAt = now;
      }
    }
  }

  async stopIntake(): Promise<void> {
    const sub = this.#sub;
    this.#sub = undefined;
    if (sub && !sub.isClosed()) await sub.drain();
  }
}

/** Most message-caused failure counts kept (for messages being redelivered); the oldest go first. */
const MAX_TRACKED_FAILURES = 10_000;
/** Longest pause between two probes of a store that is down. */
const MAX_PROBE_DELAY_MS = 5000;

class JetStreamWritePort implements WritePort {
  readonly #deps: WritePortDeps;
  readonly #stop = new AbortController();
  #messages: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;
  /** Failures counted against each message being redelivered, by stream sequence. */
  readonly #failures = new Map<number, number>();
  /** Set while the store is down: resolves once a probe succeeds again. */
  #outage: Promise<void> | undefined;
  /** The probe running now, shared by every message that failed meanwhile. */
  #probe: Promise<boolean> | undefined;

  constructor(deps: WritePortDeps) {
    this.#deps = deps;
  }

  async start(): Promise<void> {
    const { nc, config } = this.#deps;
    const { stream, durable } = config.jetstream;
    const jsm = await jetstreamManager(nc);
    await this.#ensureStream(jsm);
    await this.#ensureDeadLetterStream(jsm);
    try {
      await jsm.consumers.info(stream, durable);
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
      await jsm.consumers.add(stream, {
        durable_name: durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        filter_subject: config.write.subject,
        ack_wait: nanos(config.jetstream.ackWaitMs),
        // Unlimited on the server: the port counts failures itself and dead-letters, so a
        // message whose last delivery died with the process is still redelivered, not dropped.
        max_deliver: -1,
        max_ack_pending: config.maxInFlight,
      });
    }
    const consumer = await jetstream(nc).consumers.get(stream, durable);
    const batch = Math.min(config.maxInFlight, 256);
    this.#messages = await consumer.consume({ max_messages: batch });
    this.#loop = (async () => {
      while (!this.#stop.signal.aborted) {
        // Paused while the store is down.
        await this.#outage;
        const messages = this.#messages ?? (await consumer.consume({ max_messages: batch }));
        this.#messages = messages;
        if (!this.#paused()) await this.#take(messages);
        this.#messages = undefined;
        await messages.close().catch(() => undefined);
      }
    })().catch((err: unknown) => this.#deps.logger.error("write port consumer stopped", { error: err instanceof Error ? err.message : String(err) }));
  }

  /** Hands each message to #handle once the budget has room for it; ends when the messages are closed. */
  async #take(messages: ConsumerMessages): Promise<void> {
    for await (const m of messages) {
      let lease: Lease | undefined;
      if (!this.#paused()) lease = await this.#deps.budget.enter(m.data.byteLength, this.#stop.signal).catch(() => undefined);
      if (!lease || this.#paused()) {
        // Pulled but not started: hand it back at once rather than after ack_wait.
        lease?.release();
        m.nak(this.#paused() && !this.#stop.signal.aborted ? this.#deps.config.jetstream.backoffMs[0] : undefined);
        continue;
      }
      void this.#handle(m, lease);
    }
  }

  #paused(): boolean {
    return this.#stop.signal.aborted || this.#outage !== undefined;
  }

  async #ensureStream(jsm: JetStreamManager): Promise<void> {
    const { config, logger } = this.#deps;
    const { stream, createStream, replicas, storage } = config.jetstream;
    try {
      const info = await jsm.streams.info(stream);
      // An existing stream is adopted as it is: changing replicas or storage of a live stream
      // is an operator's decision (`nats stream edit`), not a side effect of a restart.
      const actualStorage = info.config.storage === StorageType.Memory ? "memory" : "file";
      if ((replicas !== undefined && info.config.num_replicas !== replicas) || (storage !== undefined && actualStorage !== storage)) {
        logger.warn("write port: the existing stream is used as it is, not as write.replicas/write.storage say", {
          stream,
          replicas: info.config.num_replicas,
          storage: actualStorage,
          configuredReplicas: replicas,
          configuredStorage: storage,
        });
      }
      return;
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
    }
    if (!createStream) throw new StorageError("fatal", `write port: stream ${stream} does not exist and write.create_stream is false`, { op: "start" });
    await this.#addStream(jsm, stream, config.write.subject);
    logger.info("write port: created stream", { stream, subject: config.write.subject, replicas: replicas ?? "server default", storage: storage ?? "file" });
  }

  /** Dead letters are kept by a stream: the one that captures the subject, else one created for it. */
  async #ensureDeadLetterStream(jsm: JetStreamManager): Promise<void> {
    const { config, logger } = this.#deps;
    const { deadLetterSubject: subject, deadLetterStream: stream, createStream } = config.jetstream;
    for await (const name of jsm.streams.names(subject)) if (name) return;
    if (!createStream) throw new StorageError("fatal", `write port: no stream keeps the dead-letter subject ${subject} and write.create_stream is false: create one, or let the component create ${stream}`, { op: "start" });
    await this.#addStream(jsm, stream, subject);
    logger.info("write port: created the dead-letter stream", { stream, subject });
  }

  async #addStream(jsm: JetStreamManager, name: string, subject: string): Promise<void> {
    const { replicas, storage } = this.#deps.config.jetstream;
    try {
      await jsm.streams.add({
        name,
        subjects: [subject],
        ...(replicas === undefined ? {} : { num_replicas: replicas }),
        ...(storage === undefined ? {} : { storage: storage === "memory" ? StorageType.Memory : StorageType.File }),
      });
    } catch (err) {
      if (!(err instanceof JetStreamApiError)) throw err;
      // The server's description says why (e.g. "replicas > 1 not supported in non-clustered mode").
      const settings = `replicas ${replicas ?? "default"}, storage ${storage ?? "default"}`;
      throw new StorageError("fatal", `write port: cannot create stream ${name} (${settings}): ${err.message}`, { op: "start", cause: err });
    }
  }

  async #handle(m: JsMsg, lease: Lease): Promise<void> {
    const { telemetry, config, logger } = this.#deps;
    const started = performance.now();
    const sequence = m.info.streamSequence;
    try {
      const time = new Date(Number(m.info.timestampNanos / 1_000_000));
      await storeWithin(this.#deps, { data: m.data, headers: m.headers, time, streamId: `${m.info.stream}-${sequence}` }, lease);
      m.ack();
      this.#failures.delete(sequence);
      telemetry.record("write", m.data.byteLength, 0, (performance.now() - started) / 1000);
    } catch (err) {
      const error = classify(err);
      telemetry.record("write", m.data.byteLength, 0, (performance.now() - started) / 1000, { kind: error.kind, message: error.message });
      const hopeless = error.kind === "invalid" || error.kind === "unsupported";
      if (!hopeless && !(await this.#storeHealthy())) {
        // The store's failure, not the message's: it goes back uncounted while the port pauses.
        m.nak(config.jetstream.backoffMs[0]);
        return;
      }
      const failures = hopeless ? 1 : this.#countFailure(sequence);
      if (hopeless || failures >= config.jetstream.maxDeliver) {
        await this.#deadLetter(m, error, failures);
      } else {
        const backoff = config.jetstream.backoffMs;
        const delay = backoff[Math.min(failures - 1, backoff.length - 1)]!;
        logger.warn("write port: message failed with the store healthy, redelivering", { kind: error.kind, error: error.message, failures, delayMs: delay });
        m.nak(delay);
      }
    }
  }

  #countFailure(sequence: number): number {
    const failures = (this.#failures.get(sequence) ?? 0) + 1;
    this.#failures.delete(sequence);
    this.#failures.set(sequence, failures);
    if (this.#failures.size > MAX_TRACKED_FAILURES) this.#failures.delete(this.#failures.keys().next().value!);
    return failures;
  }

  /** False while the store is down (and then the port pauses until a probe succeeds). */
  async #storeHealthy(): Promise<boolean> {
    if (this.#outage) return false;
    this.#probe ??= this.#probeStore().finally(() => (this.#probe = undefined));
    const healthy = await this.#probe;
    if (!healthy && !this.#outage && !this.#stop.signal.aborted) this.#pause();
    return healthy;
  }

  /** The store answers a `stat` of a probe key (found or not) within `timeouts.stat`. */
  async #probeStore(): Promise<boolean> {
    const { store, config, abandon } = this.#deps;
    const probe = store.stat(`${config.keyPrefix}/stowage-probe`, { signal: abandon });
    try {
      await withDeadline(probe, config.timeoutsMs.stat, { op: "write", setting: "timeouts.stat" });
      return true;
    } catch (err) {
      return isStorageError(err, "not_found");
    }
  }

  /** Stops pulling messages and probes the store (backing off) until it answers again. */
  #pause(): void {
    const { logger, config } = this.#deps;
    logger.warn("write port: the store is unavailable; pausing until it answers again", { stream: config.jetstream.stream });
    void this.#messages?.close();
    this.#outage = (async () => {
      const delays = config.jetstream.backoffMs;
      for (let attempt = 0; !this.#stop.signal.aborted; attempt++) {
        await sleep(Math.min(delays[Math.min(attempt, delays.length - 1)]!, MAX_PROBE_DELAY_MS), this.#stop.signal).catch(() => undefined);
        if (this.#stop.signal.aborted) break;
        if (await this.#probeStore()) {
          logger.info("write port: the store answers again; resuming", { stream: config.jetstream.stream, pausedProbes: attempt + 1 });
          break;
        }
      }
      this.#outage = undefined;
    })();
  }

  /** Publishes the message to the dead-letter stream (acknowledged by it), then terminates it. */
  async #deadLetter(m: JsMsg, error: StorageError, failures: number): Promise<void> {
    const { nc, config, logger } = this.#deps;
    const h = natsHeaders();
    for (const [name, values] of m.headers ?? []) for (const v of values) h.append(name, v);
    h.set(DEAD_LETTER_HEADERS.subject, m.subject);
    h.set(DEAD_LETTER_HEADERS.stream, m.info.stream);
    h.set(DEAD_LETTER_HEADERS.sequence, String(m.info.streamSequence));
    h.set(DEAD_LETTER_HEADERS.deliveries, String(m.info.deliveryCount));
    h.set(DEAD_LETTER_HEADERS.failures, String(failures));
    h.set(DEAD_LETTER_HEADERS.errorKind, error.kind);
    h.set(DEAD_LETTER_HEADERS.error, error.message.replace(/[\r\n]+/g, " ").slice(0, 1000));
    try {
      await jetstream(nc).publish(config.jetstream.deadLetterSubject, m.data, { headers: h });
      m.term();
      this.#failures.delete(m.info.streamSequence);
      logger.warn("write port: message dead-lettered", { subject: config.jetstream.deadLetterSubject, kind: error.kind, failures });
    } catch (err) {
      // Could not dead-letter (connection closing, stream unavailable): leave it to be redelivered.
      logger.error("write port: dead-letter publish failed, redelivering", { error: err instanceof Error ? err.message : String(err) });
      m.nak(config.jetstream.backoffMs.at(-1));
    }
  }

  async stopIntake(): Promise<void> {
    this.#stop.abort();
    const messages = this.#messages;
    this.#messages = undefined;
    if (messages) await messages.close().catch(() => undefined);
    await this.#loop;
  }
}
