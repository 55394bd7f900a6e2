import type { Command } from "commander";
import { assertPrefix, compareKeys } from "../../keys.js";
import { mapLimit } from "../../internal/concurrency.js";
import type { ObjectInfo, Store } from "../../types.js";
import type { CliContext } from "../context.js";
import { writeText } from "../files.js";
import { StorageError } from "../../errors.js";

/** Stats in flight for `ls --long`. */
const STAT_CONCURRENCY = 16;

interface LsOptions {
  long?: boolean;
  recursive?: boolean;
}

export function register(program: Command, context: CliContext): void {
  program
    .command("ls")
    .description("list one level under PREFIX, like a folder: the keys there and the sub-prefixes (ending in /); -r lists every key")
    .argument("[prefix]", "where to list (need not end at /); the top when omitted", "")
    .option("-r, --recursive", "every key starting with PREFIX, one a line, in byte order")
    .option("-l, --long", "also show size in bytes, modification time and etag (stores with stat)")
    .action(async (prefix: string, options: LsOptions) => {
      assertPrefix(prefix, "list");
      await context.withStore(async (store) => {
        if (options.long && !store.capabilities.stat) {
          throw new StorageError("unsupported", "this store has no stat: `ls --long` cannot show sizes (use `ls`)", { op: "list" });
        }
        await listPages(store, prefix, options, context);
      }, { readOnly: true });
    });
}

/** Page by page, so a huge listing never sits in memory; stats of a page run in parallel. */
async function listPages(store: Store, prefix: string, options: LsOptions, context: CliContext): Promise<void> {
  const signal = context.signal;
  const delimiter = options.recursive ? undefined : "/";
  let after: string | undefined;
  do {
    const page = await store.listPage(prefix, { signal, after, delimiter });
    // Keys and sub-prefixes are each in byte order; show them merged, as one folder.
    const entries = [...page.keys.map((key) => ({ key, folder: false })), ...(page.prefixes ?? []).map((key) => ({ key, folder: true }))];
    entries.sort((a, b) => compareKeys(a.key, b.key));
    const infos = options.long ? await mapLimit(entries, STAT_CONCURRENCY, async (e) => (e.folder ? undefined : statIfThere(store, e.key, signal))) : [];
    let text = "";
    entries.forEach((entry, i) => {
      if (!options.long) text += `${entry.key}\n`;
      else if (entry.folder) text += `${"PRE".padStart(12)}  ${"".padEnd(24)}  ${"".padEnd(16)}  ${entry.key}\n`;
      else {
        const info = infos[i];
        // Deleted between the listing and the stat: it is no longer there to show.
        if (info) text += `${String(info.size).padStart(12)}  ${info.modified.toISOString()}  ${info.etag.padEnd(16)}  ${info.key}\n`;
      }
    });
    await writeText(context.io.stdout, text);
    after = page.next;
  } while (after !== undefined);
}

async function statIfThere(store: Store, key: string, signal: AbortSignal | undefined): Promise<ObjectInfo | undefined> {
  try {
    return await store.stat(key, { signal });
  } catch (err) {
    if (err instanceof StorageError && err.kind === "not_found") return undefined;
    throw err;
  }
}
