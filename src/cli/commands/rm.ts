import type { Command } from "commander";
import { assertKey } from "../../keys.js";
import type { CliContext } from "../context.js";

export function register(program: Command, context: CliContext): void {
  program
    .command("rm")
    .description("delete the values at KEY... (a missing key is not an error)")
    .argument("<keys...>", "one or more keys")
    .action(async (keys: string[]) => {
      for (const key of keys) assertKey(key, "delete"); // all or none: check every key first
      await context.withStore(async (store) => {
        if (keys.length === 1) await store.delete(keys[0]!, { signal: context.signal });
        else await store.deleteMany(keys, { signal: context.signal });
      });
    });
}
