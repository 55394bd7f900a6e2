/**
 * A write's call must not reject once its commit (the rename or unlink that makes it visible)
 * has begun: a rejected write would then take effect after its rejection. The store races each
 * call against its signal, so a write's call is given a gate's signal instead of the caller's:
 * it follows the caller's abort only until the write commits.
 */
import { StorageError, type StorageOp } from "../../errors.js";

const gates = new WeakMap<AbortSignal, CommitGate>();

export class CommitGate {
  /** The caller's signal: what the backend checks for its own early exits. */
  readonly outer: AbortSignal | undefined;
  readonly #inner = new AbortController();
  #committed = false;
  readonly #forward = () => {
    if (!this.#committed) this.#inner.abort(this.outer!.reason);
  };

  /** `follow`: forward the caller's abort to {@link signal} (a gate made by {@link gated}). */
  constructor(outer: AbortSignal | undefined, follow = true) {
    this.outer = outer;
    if (!follow) return;
    if (outer?.aborted) this.#inner.abort(outer.reason);
    else outer?.addEventListener("abort", this.#forward, { once: true });
    gates.set(this.#inner.signal, this);
  }

  /** The signal the call is raced against: the caller's, until the write commits. */
  get signal(): AbortSignal {
    return this.#inner.signal;
  }

  /**
   * Call synchronously right before the system call that commits: throws the caller's reason
   * when it aborted, or `transient` past the write's deadline; afterwards the call waits for
   * the commit whatever the caller's signal does.
   */
  commit(op: StorageOp, key: string, deadline: number | undefined): void {
    this.outer?.throwIfAborted();
    if (deadline !== undefined && Date.now() >= deadline) {
      throw new StorageError("transient", "the write's deadline passed before it was committed; nothing was written", { op, key });
    }
    this.#committed = true;
  }

  dispose(): void {
    this.outer?.removeEventListener("abort", this.#forward);
  }

  /** The gate whose signal a backend method received; for any other signal, a gate that only checks it. */
  static of(signal: AbortSignal | undefined): CommitGate {
    return (signal && gates.get(signal)) ?? new CommitGate(signal, false);
  }
}

/**
 * Runs a public write method with a gate: `call` gets the options with the gate's signal, and
 * the gate is released when the call settles.
 */
export function gated<O extends { signal?: AbortSignal }, T>(options: O | undefined, call: (options: O | undefined) => Promise<T>): Promise<T> {
  const signal = options !== null && typeof options === "object" ? options.signal : undefined;
  if (!(signal instanceof AbortSignal)) return call(options);
  const gate = new CommitGate(signal);
  return call({ ...options!, signal: gate.signal }).finally(() => gate.dispose());
}
