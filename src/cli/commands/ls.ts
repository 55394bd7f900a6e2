import type { Command } from "commander";
import { assertPrefix } from "../../keys.js";
import { mapLimit } from "../../internal/concurrency.js";
import type { Store } from "../../types.js";
import type { CliContext } from "../context.js";
import { writeText } from "../files.js";
import { StorageError } from "../../errors.js";

/** Stats in flight for `ls --long`. */
const STAT_CONCURRENCY = 16;

export function register(program: Command, context: CliContext): void {
  program
    .command("ls")
    .description("list the keys starting with PREFIX (all keys when omitted), one a line, in byte order")
    .argument("[prefix]", "only keys starting with this (need not end at /)", "")
    .option("-l, --long", "also show size in bytes and modification time (stores with stat)")
    .action(async (prefix: string, options: { long?: boolean }) => {
      assertPrefix(prefix, "list");
      await context.withStore(async (store) => {
        if (options.long) await listLong(store, prefix, context);
        else for await (const key of store.keys(prefix, { signal: context.signal })) await writeText(context.io.stdout, `${key}\n`);
      });
    });
}

/** Page by page so a huge listing never sits in memory; stats of a page run in parallel. */
async function listLong(store: Store, prefix: string, context: CliContext): Promise<void> {
  const signal = context.signal;
  if (!store.capabilities.stat) {
    throw new StorageError("unsupported", "this store has no stat: `ls --long` cannot show sizes (use `ls`)", { op: "list" });
  }
  let after: string | undefined;
  do {
    const page = await store.listPage(prefix, { signal, after });
    const infos = await mapLimit(page.keys, STAT_CONCURRENCY, async (key) => {
      try {
        return await store.stat(key, { signal });
      } catch (err) {
        // Deleted between the listing and the stat: it is no longer there to show.
        if (err instanceof StorageError && err.kind === "not_found") return undefined;
        throw err;
      }
    });
    let text = "";
    for (const info of infos) {
      if (info) text += `${String(info.size).padStart(12)}  ${info.modified.toISOString()}  ${info.key}\n`;
    }
    await writeText(context.io.stdout, text);
    after = page.next;
  } while (after !== undefined);
}
