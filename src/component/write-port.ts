/**
 * The write port: every message on the write subject is stored through the archiver and
 * announced on the events port. Two modes:
 *
 * - `subscribe`: a core NATS queue subscription. Fast, but messages sent while no instance
 *   runs are lost (the seed's behaviour).
 * - `jetstream`: a durable pull consumer on a stream that captures the write subject (created
 *   when missing). A message is acknowledged only after the store took it; a failure is
 *   redelivered after a backoff delay (`nak(delay)`); after `max_deliver` deliveries, or at
 *   once for an input no retry can fix (kind `invalid`/`unsupported`), it is published to the
 *   dead-letter subject and terminated. Messages published while the component is down wait
 *   in the stream.
 *
 * Keys: a message with an id (the `Nats-Msg-Id` header, else a top-level JSON `id` string or
 * number, else in jetstream mode `<stream>-<sequence>`) is stored under
 * `<key_prefix>/YYYY/MM/DD/HH/<id>`, with the hour taken from the stream's timestamp in
 * jetstream mode, so a redelivered message lands on the same key instead of a second one.
 * Other messages get the archiver's key generator.
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
  type JsMsg,
} from "@nats-io/jetstream";
import { Match, headers as natsHeaders, nanos, type MsgHdrs, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { hourBucket } from "../archive/time-key.js";
import { toSegment } from "../archive/segments.js";
import { StorageError, isAbortError } from "../errors.js";
import type { ArchiveFn, Logger } from "./api.js";
import { asJsonText, plainBytes, rawMetadata } from "./codec.js";
import type { ComponentConfig } from "./config.js";
import type { EventPublisher } from "./events.js";
import type { InFlight } from "./in-flight.js";
import type { Telemetry } from "./telemetry.js";

export interface WritePortDeps {
  nc: NatsConnection;
  config: ComponentConfig;
  archive: ArchiveFn;
  events: EventPublisher;
  telemetry: Telemetry;
  inFlight: InFlight;
  logger: Logger;
}

/** Headers a dead-lettered message carries besides its own. */
export const DEAD_LETTER_HEADERS = {
  subject: "Stowage-Original-Subject",
  stream: "Stowage-Stream",
  sequence: "Stowage-Stream-Sequence",
  deliveries: "Stowage-Deliveries",
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

/** Where a message came from, for its key. */
interface Origin {
  data: Uint8Array;
  headers: MsgHdrs | undefined;
  /** When the message was stored (stream) or received. */
  time: Date;
  /** An id when nothing in the message gives one (jetstream: stream-sequence). */
  fallbackId?: string;
}

/** Stores one message through the archiver and announces it; resolves to the key. */
async function storeMessage(deps: WritePortDeps, origin: Origin): Promise<string> {
  const { config } = deps;
  const jsonText = asJsonText(origin.data);
  const id = messageId(origin.headers, jsonText) ?? origin.fallbackId;
  const segment = id === undefined ? undefined : toSegment(id);
  const key = segment === undefined ? undefined : `${config.keyPrefix}/${hourBucket(origin.time)}/${segment}`;
  const metadata = origin.headers ? rawMetadata(origin.headers) : undefined;
  const timeoutMs = config.timeoutsMs.store;
  const signal = AbortSignal.timeout(timeoutMs);
  if (config.maxValueBytes !== undefined && origin.data.byteLength > config.maxValueBytes) {
    throw new StorageError("invalid", `message is ${origin.data.byteLength} bytes, over max_value_size ${config.maxValueBytes}`, { op: "write", key });
  }
  try {
    const stored = await deps.archive({ bytes: plainBytes(origin.data), json: jsonText !== undefined }, { key, metadata, signal });
    deps.events.publish("stored", stored, metadata);
    return stored;
  } catch (err) {
    if (signal.aborted && isAbortError(err, signal)) throw new StorageError("transient", `timed out after ${timeoutMs} ms (timeouts.store)`, { op: "write", key, cause: err });
    throw err;
  }
}

function messageId(headers: MsgHdrs | undefined, jsonText: string | undefined): string | undefined {
  const header = headers?.get("Nats-Msg-Id", Match.IgnoreCase);
  if (header) return header;
  if (jsonText === undefined || !jsonText.trimStart().startsWith("{")) return undefined;
  const id = (JSON.parse(jsonText) as { id?: unknown }).id;
  if (typeof id === "string" && id !== "") return id;
  if (typeof id === "number" && Number.isFinite(id)) return String(id);
  return undefined;
}

function classify(err: unknown): StorageError {
  if (err instanceof StorageError) return err;
  return new StorageError("fatal", `unexpected error: ${err instanceof Error ? err.message : String(err)}`, { op: "write", cause: err });
}

class SubscribeWritePort implements WritePort {
  readonly #deps: WritePortDeps;
  #sub: Subscription | undefined;

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
    const { inFlight, telemetry, logger } = this.#deps;
    const started = performance.now();
    inFlight.enter();
    try {
      await storeMessage(this.#deps, { data, headers, time: new Date() });
      telemetry.record("write", data.byteLength, 0, (performance.now() - started) / 1000);
    } catch (err) {
      const error = classify(err);
      telemetry.record("write", data.byteLength, 0, (performance.now() - started) / 1000, { kind: error.kind, message: error.message });
      // Fire-and-forget has no one to tell: the log and the health report are all there is.
      logger.warn("write port: message not stored (subscribe mode drops it)", { kind: error.kind, error: error.message });
    } finally {
      inFlight.leave();
    }
  }

  async stopIntake(): Promise<void> {
    const sub = this.#sub;
    this.#sub = undefined;
    if (sub && !sub.isClosed()) await sub.drain();
  }
}

class JetStreamWritePort implements WritePort {
  readonly #deps: WritePortDeps;
  #messages: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;
  #stopping = false;

  constructor(deps: WritePortDeps) {
    this.#deps = deps;
  }

  async start(): Promise<void> {
    const { nc, config } = this.#deps;
    const { stream, durable } = config.jetstream;
    const jsm = await jetstreamManager(nc);
    await this.#ensureStream(jsm);
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
        // Unlimited on the server: the port counts deliveries itself and dead-letters, so a
        // message whose last delivery died with the process is still redelivered, not dropped.
        max_deliver: -1,
        max_ack_pending: config.maxInFlight,
      });
    }
    const consumer = await jetstream(nc).consumers.get(stream, durable);
    const messages = await consumer.consume({ max_messages: Math.min(config.maxInFlight, 256) });
    this.#messages = messages;
    this.#loop = (async () => {
      for await (const m of messages) {
        if (this.#stopping) {
          // Pulled but not started: hand it back at once rather than after ack_wait.
          m.nak();
          continue;
        }
        void this.#handle(m);
      }
    })().catch((err: unknown) => this.#deps.logger.error("write port consumer stopped", { error: err instanceof Error ? err.message : String(err) }));
  }

  async #ensureStream(jsm: Awaited<ReturnType<typeof jetstreamManager>>): Promise<void> {
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
    try {
      await jsm.streams.add({
        name: stream,
        subjects: [config.write.subject],
        ...(replicas === undefined ? {} : { num_replicas: replicas }),
        ...(storage === undefined ? {} : { storage: storage === "memory" ? StorageType.Memory : StorageType.File }),
      });
    } catch (err) {
      if (!(err instanceof JetStreamApiError)) throw err;
      // The server's description says why (e.g. "replicas > 1 not supported in non-clustered mode").
      const settings = `replicas ${replicas ?? "default"}, storage ${storage ?? "default"}`;
      throw new StorageError("fatal", `write port: cannot create stream ${stream} (${settings}): ${err.message}`, { op: "start", cause: err });
    }
    logger.info("write port: created stream", { stream, subject: config.write.subject, replicas: replicas ?? "server default", storage: storage ?? "file" });
  }

  async #handle(m: JsMsg): Promise<void> {
    const { inFlight, telemetry, config, logger } = this.#deps;
    const started = performance.now();
    inFlight.enter();
    try {
      const time = new Date(Number(m.info.timestampNanos / 1_000_000));
      await storeMessage(this.#deps, { data: m.data, headers: m.headers, time, fallbackId: `${m.info.stream}-${m.info.streamSequence}` });
      m.ack();
      telemetry.record("write", m.data.byteLength, 0, (performance.now() - started) / 1000);
    } catch (err) {
      const error = classify(err);
      telemetry.record("write", m.data.byteLength, 0, (performance.now() - started) / 1000, { kind: error.kind, message: error.message });
      const deliveries = m.info.deliveryCount;
      const hopeless = error.kind === "invalid" || error.kind === "unsupported";
      if (hopeless || deliveries >= config.jetstream.maxDeliver) {
        this.#deadLetter(m, error, deliveries);
      } else {
        const backoff = config.jetstream.backoffMs;
        const delay = backoff[Math.min(deliveries - 1, backoff.length - 1)]!;
        logger.warn("write port: store failed, redelivering", { kind: error.kind, error: error.message, deliveries, delayMs: delay });
        m.nak(delay);
      }
    } finally {
      inFlight.leave();
    }
  }

  #deadLetter(m: JsMsg, error: StorageError, deliveries: number): void {
    const { nc, config, logger } = this.#deps;
    const h = natsHeaders();
    for (const [name, values] of m.headers ?? []) for (const v of values) h.append(name, v);
    h.set(DEAD_LETTER_HEADERS.subject, m.subject);
    h.set(DEAD_LETTER_HEADERS.stream, m.info.stream);
    h.set(DEAD_LETTER_HEADERS.sequence, String(m.info.streamSequence));
    h.set(DEAD_LETTER_HEADERS.deliveries, String(deliveries));
    h.set(DEAD_LETTER_HEADERS.errorKind, error.kind);
    h.set(DEAD_LETTER_HEADERS.error, error.message.replace(/[\r\n]+/g, " ").slice(0, 1000));
    try {
      nc.publish(config.jetstream.deadLetterSubject, m.data, { headers: h });
      m.term();
      logger.warn("write port: message dead-lettered", { subject: config.jetstream.deadLetterSubject, kind: error.kind, deliveries });
    } catch (err) {
      // Could not dead-letter (connection closing): leave it to be redelivered.
      logger.error("write port: dead-letter publish failed, redelivering", { error: err instanceof Error ? err.message : String(err) });
      m.nak(config.jetstream.backoffMs.at(-1));
    }
  }

  async stopIntake(): Promise<void> {
    this.#stopping = true;
    const messages = this.#messages;
    this.#messages = undefined;
    if (messages) await messages.close().catch(() => undefined);
    await this.#loop;
  }
}
