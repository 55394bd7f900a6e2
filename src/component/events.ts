import type { NatsConnection } from "@nats-io/transport-node";
import type { Metadata } from "../types.js";

/**
 * What the events port publishes, one JSON object per message:
 * `{ "type": "stored", "key": "a/b", "timestamp": "2024-10-08T10:30:00.000Z", "metadata": {...} }`.
 */
export interface StorageEvent {
  type: "stored" | "retrieved" | "deleted";
  key: string;
  /** When the operation completed, ISO 8601 UTC. */
  timestamp: string;
  /** Metadata stored with the value (stored events, when there was any). */
  metadata?: Metadata;
  /** The component that did it (its name), so one events subject can serve several. */
  source?: string;
}

/**
 * Publishes storage events. Fire-and-forget: an event that cannot be published (connection
 * closing, payload limit) is counted and dropped; it never fails the operation it reports.
 */
export class EventPublisher {
  readonly #nc: NatsConnection;
  readonly #subject: string;
  readonly #source: string;
  #dropped = 0;

  constructor(nc: NatsConnection, subject: string, source: string) {
    this.#nc = nc;
    this.#subject = subject;
    this.#source = source;
  }

  /** Events that could not be published. */
  get dropped(): number {
    return this.#dropped;
  }

  publish(type: StorageEvent["type"], key: string, metadata?: Metadata): void {
    const event: StorageEvent = { type, key, timestamp: new Date().toISOString(), source: this.#source };
    if (metadata !== undefined && Object.keys(metadata).length > 0) event.metadata = metadata;
    try {
      this.#nc.publish(this.#subject, JSON.stringify(event));
    } catch {
      this.#dropped++;
    }
  }
}
