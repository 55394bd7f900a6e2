import { InvalidArgumentError, type Command } from "commander";
import { assertKey } from "../../keys.js";
import type { CliContext } from "../context.js";
import { openSource } from "../files.js";
import { asCommandError } from "../errors.js";
import { withProgress } from "../progress.js";

export function register(program: Command, context: CliContext): void {
  program
    .command("put")
    .description("store the contents of FILE (or stdin) at KEY, replacing any value")
    .argument("<key>", "the key, e.g. events/2024/a.json")
    .argument("[file]", "file to read; `-` or omitted reads stdin")
    .option("-m, --metadata <name=value>", "metadata to keep with the value (repeatable)", collectMetadata, {})
    .option("--if-match <etag>", "write only if the key's etag (from `stowage stat`) is still this one; else exit 6")
    .option("--if-none-match", "write only if the key does not exist yet; else exit 6")
    .action(async (key: string, file: string | undefined, options: { metadata: Record<string, string>; ifMatch?: string; ifNoneMatch?: boolean }) => {
      assertKey(key, "put"); // before touching the file or the store: bad keys are usage errors
      const source = await openSource(file, context.io);
      await context.withStore(async (store) => {
        const metadata = Object.keys(options.metadata).length > 0 ? options.metadata : undefined;
        const body = withProgress(source.chunks, context, { label: `put ${key}`, total: source.size });
        // putStream keeps memory bounded where the store streams; others buffer the body.
        // Streaming is how put writes, not what the user asked for: errors name the command.
        const conditions = { ...(options.ifMatch !== undefined && { ifMatch: options.ifMatch }), ...(options.ifNoneMatch && { ifNoneMatch: "*" as const }) };
        await store.putStream(key, body, { metadata, signal: context.signal, ...conditions }).catch((err: unknown) => {
          throw asCommandError(err, "putStream", "put");
        });
      });
    });
}

function collectMetadata(pair: string, previous: Record<string, string>): Record<string, string> {
  const at = pair.indexOf("=");
  if (at <= 0) throw new InvalidArgumentError("expected name=value, e.g. content-type=text/plain");
  const name = pair.slice(0, at);
  if (Object.keys(previous).some((n) => n.toLowerCase() === name.toLowerCase())) {
    throw new InvalidArgumentError(`metadata ${JSON.stringify(name)} is given twice`);
  }
  return { ...previous, [name]: pair.slice(at + 1) };
}
