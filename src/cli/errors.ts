import { CommanderError } from "commander";
import { StorageError } from "../errors.js";

/**
 * Exit codes of the `stowage` command, one per kind of failure so scripts can branch on them.
 * Documented in `stowage --help` and docs/cli.md; never renumber.
 */
export const EXIT = Object.freeze({
  /** Success. */
  ok: 0,
  /** Anything else: the backend refused for good (permissions, missing bucket), local I/O failed, a bug. */
  failure: 1,
  /** Bad usage or invalid input: unknown option, missing argument, invalid key, URL or metadata. */
  usage: 2,
  /** The key (or version) does not exist. */
  notFound: 3,
  /** The backend is unavailable or timed out; retrying later may work. */
  unavailable: 4,
  /** The store cannot do this at all (e.g. `versions` on a store without history). */
  unsupported: 5,
  /** The condition of a conditional write (`--if-match`, `--if-none-match`) did not hold. */
  conflict: 6,
  /** The reader of stdout went away (`stowage get k | head -c1`), as `cat` dies of SIGPIPE. */
  brokenPipe: 141,
  /** Interrupted by Ctrl-C (SIGINT) or SIGTERM. */
  interrupted: 130,
});

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The exit-code table as shown at the end of `stowage --help`. */
export const EXIT_CODE_HELP = `Exit codes:
    0  success
    1  failure (backend refused for good, local I/O error)
    2  usage error or invalid input (key, URL, metadata, option)
    3  not found (key or version)
    4  backend unavailable or timed out (transient; retry later)
    5  unsupported by this store (see its capabilities)
    6  conflict: --if-match / --if-none-match did not hold, nothing changed
  130  interrupted (Ctrl-C or SIGTERM)
  141  stdout closed early (as with SIGPIPE), nothing printed`;

/** An error of the CLI itself (bad file argument, terminal as input) with its exit code. */
export class CliError extends Error {
  override readonly name = "CliError";
  readonly exitCode: ExitCode;

  constructor(exitCode: ExitCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.exitCode = exitCode;
  }
}

/** True when `err` is a write to a pipe whose reader has gone. */
export function isBrokenPipe(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === "EPIPE";
}

/**
 * `err` under the name of the command the user typed: `get` reads through `getStream`, and
 * `stowage: getStream "k": no value at this key` names an operation the user never asked for.
 * Kind, key and cause are kept; errors of other operations (e.g. `open`) pass through.
 *
 * @example
 * catch (err) { throw asCommandError(err, "getStream", "get"); }
 */
export function asCommandError(err: unknown, from: string, to: string): unknown {
  if (!(err instanceof StorageError) || err.op !== from) return err;
  return new StorageError(err.kind, err.detail, { op: to, key: err.key, cause: err });
}

/** The exit code for an error thrown by a command. */
export function exitCodeFor(err: unknown): ExitCode {
  if (err instanceof CliError) return err.exitCode;
  if (err instanceof CommanderError) {
    // Help and --version "fail" with code 0 so commander can stop parsing.
    if (err.exitCode === 0) return EXIT.ok;
    return EXIT.usage;
  }
  if (err instanceof StorageError) {
    switch (err.kind) {
      case "invalid":
        return EXIT.usage;
      case "not_found":
        return EXIT.notFound;
      case "transient":
        return EXIT.unavailable;
      case "unsupported":
        return EXIT.unsupported;
      case "conflict":
        return EXIT.conflict;
      case "fatal":
        return EXIT.failure;
    }
  }
  if (isBrokenPipe(err)) return EXIT.brokenPipe;
  if (err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError")) return EXIT.interrupted;
  return EXIT.failure;
}

/**
 * The one line printed for an error, or undefined when nothing should be printed (commander
 * already printed its usage errors; a broken pipe is not worth a word). Never a stack trace:
 * `STOWAGE_DEBUG=1` adds them, for bug reports.
 */
export function errorLine(err: unknown): string | undefined {
  if (err instanceof CommanderError || isBrokenPipe(err)) return undefined;
  if (err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError")) return "stowage: interrupted";
  const message = err instanceof Error ? err.message : String(err);
  // Messages are one line by construction; make sure of it.
  return `stowage: ${message.replace(/\s*\n\s*/g, " ")}`;
}
