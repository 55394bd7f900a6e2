import { pipeline } from "node:stream/promises";
import type { Command } from "commander";
import { assertKey } from "../../keys.js";
import type { CliContext } from "../context.js";
import { asCommandError } from "../errors.js";
import { writeFileAtomic } from "../files.js";
import { withProgress } from "../progress.js";

export function register(program: Command, context: CliContext): void {
  program
    .command("get")
    .description("write the value at KEY to stdout (byte for byte) or to a file")
    .argument("<key>", "the key")
    .option("-o, --output <file>", "write to FILE (atomically: all or nothing) instead of stdout")
    .option("--version-id <id>", "an older version, as listed by `stowage versions KEY`")
    .action(async (key: string, options: { output?: string; versionId?: string }) => {
      assertKey(key, "get");
      await context.withStore(async (store) => {
        const signal = context.signal;
        const version = options.versionId;
        // The size only feeds the progress bar: ask for it only when a bar may be drawn.
        const total = context.interactive && store.capabilities.stat && version === undefined
          ? (await store.stat(key, { signal }).catch(() => undefined))?.size
          : undefined;
        let body: AsyncIterable<Uint8Array> | undefined;
        try {
          body = await store.getStream(key, { signal, version });
          const chunks = withProgress(body, context, { label: `get ${key}`, total });
          if (options.output !== undefined && options.output !== "-") {
            await writeFileAtomic(options.output, chunks);
          } else {
            // Raw bytes, no encoding, no newline added; stdout stays open for the process.
            await pipeline(chunks, context.io.stdout, { end: false });
          }
        } catch (err) {
          // The output may have failed before the body was read (no such folder): the store
          // still holds it open (a file handle, a consumer) until told it is not wanted.
          if (body) await body[Symbol.asyncIterator]().return?.().catch(() => undefined);
          // Streaming is how get reads, not what the user asked for: name the command.
          throw asCommandError(err, "getStream", "get");
        }
      }, { readOnly: true });
    });
}
