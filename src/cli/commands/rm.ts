import type { Command } from "commander";
import { assertKey } from "../../keys.js";
import type { CliContext } from "../context.js";
import { CliError, EXIT } from "../errors.js";

export function register(program: Command, context: CliContext): void {
  program
    .command("rm")
    .description("delete the values at KEY... (a missing key is not an error)")
    .argument("<keys...>", "one or more keys")
    .option("--if-match <etag>", "delete only if the key's etag is still this one; else exit 6 (one key)")
    .action(async (keys: string[], options: { ifMatch?: string }) => {
      for (const key of keys) assertKey(key, "delete"); // all or none: check every key first
      if (options.ifMatch !== undefined && keys.length > 1) throw new CliError(EXIT.usage, "--if-match takes exactly one key");
      await context.withStore(async (store) => {
        if (keys.length === 1) await store.delete(keys[0]!, { signal: context.signal, ...(options.ifMatch !== undefined && { ifMatch: options.ifMatch }) });
        else await store.deleteMany(keys, { signal: context.signal });
      });
    });
}
