/**
 * How the SDK retries in the clients the store creates: its standard strategy (backoff with
 * jitter, a client-wide retry budget, clock-skew correction) for a request that failed on the
 * way (a connection reset or refused, a timeout, a 500/502/503/504), but never for throttling
 * (`SlowDown`, 429, `Throttling…`). Throttling is the server asking for fewer requests; the
 * store reports it at once as `transient`, and the one retry policy the application chose
 * (`withRetry`, openStore's `retry`) decides when to try again. So a bucket that keeps
 * answering `SlowDown` costs one request per attempt of that policy, not its attempts times the
 * SDK's.
 */
import { StandardRetryStrategy } from "@smithy/core/retry";

type Token = Awaited<ReturnType<StandardRetryStrategy["acquireInitialRetryToken"]>>;
type ErrorInfo = Parameters<StandardRetryStrategy["refreshRetryTokenForRetry"]>[1];

/** The SDK's own default: attempts per request, the first included. */
export const SDK_MAX_ATTEMPTS = 3;

/** A `retryStrategy` for S3ClientConfig: the SDK's standard one, throttling excepted. */
export class NoThrottlingRetries {
  readonly mode = "standard";
  readonly #standard: StandardRetryStrategy;

  constructor(maxAttempts: number) {
    this.#standard = new StandardRetryStrategy(maxAttempts);
  }

  acquireInitialRetryToken(scope: string): Promise<Token> {
    return this.#standard.acquireInitialRetryToken(scope);
  }

  refreshRetryTokenForRetry(token: Token, errorInfo: ErrorInfo): Promise<Token> {
    // Rejecting is how a strategy says "no retry": the SDK then throws the request's own error.
    if (errorInfo.errorType === "THROTTLING") return Promise.reject(new Error("throttled: left to the caller's retry policy"));
    return this.#standard.refreshRetryTokenForRetry(token, errorInfo);
  }

  recordSuccess(token: Token): void {
    this.#standard.recordSuccess(token);
  }
}
