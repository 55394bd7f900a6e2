import { readFileSync } from "node:fs";
import { Command } from "commander";
import { commands } from "./commands/index.js";
import { createContext, DEFAULT_STORE_URL, STORE_ENV, type CliIo } from "./context.js";
import { EXIT, EXIT_CODE_HELP, errorLine, exitCodeFor, type ExitCode } from "./errors.js";

// package.json sits two folders up from both src/cli and dist/cli.
const VERSION = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;

/** The process's own streams and environment. */
export function processIo(signal?: AbortSignal): CliIo {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env, signal };
}

/**
 * The `stowage` program, ready for `parseAsync`. Commander never exits the process here: errors
 * (usage ones included) are thrown, so the program can run in-process in tests and `main.ts`
 * alone decides the exit code.
 */
export function buildProgram(io: CliIo = processIo()): Command {
  const program = new Command("stowage");
  program
    .description("Put, get, list and delete values in a stowage store (file, memory, NATS JetStream, S3, PostgreSQL).")
    .version(VERSION, "-V, --version", "print the version")
    .helpOption("-h, --help", "show help")
    .option("-s, --store <url>", `store URL (default: $${STORE_ENV}, else ${DEFAULT_STORE_URL})`)
    .exitOverride()
    .configureOutput({
      writeOut: (text) => void io.stdout.write(text),
      writeErr: (text) => void io.stderr.write(text),
      // Commander's usage errors come as "error: ..."; keep our one-line "stowage: ..." form.
      outputError: (text, write) => write(`stowage: ${text.replace(/^error: /, "")}`),
    })
    .showSuggestionAfterError(true)
    .addHelpText(
      "after",
      `
Store URLs: file:DIR, memory:, nats://HOST:PORT/BUCKET, s3://BUCKET[/PREFIX]?endpoint=URL,
postgres://USER@HOST/DB?table=NAME (the backends installed decide which work).
Environment: ${STORE_ENV} names the store when --store is not given.

${EXIT_CODE_HELP}
`,
    );
  const context = createContext(io, () => program.opts<{ store?: string }>().store);
  for (const command of commands) command.register(program, context);
  return program;
}

/**
 * Runs `stowage` with `args` (without `node` and the script) and resolves to the exit code,
 * having printed any error as one line on `io.stderr`.
 */
export async function runCli(args: string[], io: CliIo = processIo()): Promise<ExitCode> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(args, { from: "user" });
    return EXIT.ok;
  } catch (err) {
    return reportError(err, io);
  }
}

/** Prints `err` as one line (plus the stack under STOWAGE_DEBUG=1) and returns its exit code. */
export function reportError(err: unknown, io: CliIo): ExitCode {
  const line = errorLine(err);
  if (line !== undefined) io.stderr.write(`${line}\n`);
  if (io.env.STOWAGE_DEBUG && err instanceof Error) io.stderr.write(`${debugDetails(err)}\n`);
  return exitCodeFor(err);
}

function debugDetails(err: Error): string {
  const parts = [err.stack ?? String(err)];
  for (let cause = err.cause; cause !== undefined; cause = cause instanceof Error ? cause.cause : undefined) {
    parts.push(`caused by: ${cause instanceof Error ? (cause.stack ?? cause.message) : String(cause)}`);
  }
  return parts.join("\n");
}
