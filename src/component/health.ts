import type { StorageErrorKind } from "../errors.js";

/** The component's health as discovery reports it. */
export interface Health {
  /** Running, connected to NATS, and the store is open. */
  healthy: boolean;
  /** `stopped`, `starting`, `running` or `stopping`. */
  state: ComponentState;
  /** Failures that were the component's or the backend's (kinds `transient` and `fatal`). */
  errorCount: number;
  /** Requests refused for the caller's mistake (kinds `invalid`, `not_found`, `unsupported`). */
  rejectedCount: number;
  lastError?: { message: string; kind: StorageErrorKind; at: string };
  /** Seconds since start (0 when stopped). */
  uptimeSeconds: number;
  /** When the component started (ISO 8601). */
  startedAt?: string;
}

export type ComponentState = "stopped" | "starting" | "running" | "stopping";

/**
 * Error bookkeeping for health. Client mistakes are counted apart: a flood of bad requests says
 * nothing about whether the component works.
 */
export class HealthTracker {
  #errors = 0;
  #rejected = 0;
  #lastError: Health["lastError"];
  #startedAt: number | undefined;

  started(): void {
    this.#startedAt = Date.now();
  }

  stopped(): void {
    this.#startedAt = undefined;
  }

  recordError(kind: StorageErrorKind, message: string): void {
    if (kind === "transient" || kind === "fatal") {
      this.#errors++;
      this.#lastError = { message, kind, at: new Date().toISOString() };
    } else {
      this.#rejected++;
    }
  }

  report(state: ComponentState, connected: boolean, storeOpen: boolean): Health {
    const started = this.#startedAt;
    return {
      healthy: state === "running" && connected && storeOpen,
      state,
      errorCount: this.#errors,
      rejectedCount: this.#rejected,
      lastError: this.#lastError,
      uptimeSeconds: started === undefined ? 0 : (Date.now() - started) / 1000,
      startedAt: started === undefined ? undefined : new Date(started).toISOString(),
    };
  }
}
