import type { Command } from "commander";
import { assertPrefix } from "../../keys.js";
import { copy, DEFAULT_COPY_CONCURRENCY, type CopyProgress, type CopySummary } from "../../move/index.js";
import { MAX_CONCURRENCY } from "../../move/options.js";
import { isStorageError, StorageError } from "../../errors.js";
import { openStore } from "../../open.js";
import type { Store } from "../../types.js";
import { pointInTime, positiveInt } from "../arguments.js";
import type { CliContext } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { writeText } from "../files.js";
import { formatBytes, formatRate, statusLine } from "../progress.js";

interface CpOptions {
  from: string;
  to: string;
  prefix?: string;
  toPrefix?: string;
  since?: Date;
  jobs: number;
}

export function register(program: Command, context: CliContext): void {
  program
    .command("cp")
    .description("copy every key under a prefix from one store to another, with its metadata; keys the destination already holds (same bytes and metadata) are skipped, so a rerun finishes an interrupted copy")
    .requiredOption("--from <url>", "the store to copy from (opened read-only: nothing is created there)")
    .requiredOption("--to <url>", "the store to copy to (its bucket, table or folder is created if missing)")
    .option("--prefix <prefix>", "copy the keys starting with this (need not end at /); all keys when omitted")
    .option("--to-prefix <prefix>", "put the copies under this prefix instead of --prefix (it replaces --prefix at the start of each key)")
    .option("--since <time>", "only keys modified since: a duration back from now (24h, 7d) or an ISO date", pointInTime("--since"))
    .option("-j, --jobs <n>", "keys copied at once", positiveInt("--jobs", MAX_CONCURRENCY), DEFAULT_COPY_CONCURRENCY)
    .action(async (options: CpOptions) => {
      const prefix = options.prefix ?? "";
      assertPrefix(prefix, "cp");
      if (options.toPrefix !== undefined) assertPrefix(options.toPrefix, "cp");
      await withStores(options.from, options.to, async (source, destination) => {
        const started = Date.now();
        let last: CopyProgress = { keys: 0, bytes: 0, copied: 0, skipped: 0, failed: 0 };
        const line = statusLine(context, (elapsed) => `cp  ${last.keys} keys  ${formatBytes(last.bytes)}  ${formatRate(last.bytes, elapsed)}  skipped ${last.skipped}  failed ${last.failed}`);
        let summary: CopySummary;
        try {
          summary = await copy(source, destination, {
            prefix,
            destinationPrefix: options.toPrefix,
            concurrency: options.jobs,
            since: options.since,
            signal: context.signal,
            onProgress: (progress) => {
              last = progress;
              line.tick();
            },
          });
        } finally {
          line.stop();
        }
        // Each failure on a line of its own, like any error; then the one summary line.
        for (const failure of summary.failures) context.io.stderr.write(`stowage: ${failure.error.message.replace(/\s*\n\s*/g, " ")}\n`);
        const unlisted = summary.failed - summary.failures.length;
        if (unlisted > 0) context.io.stderr.write(`stowage: ... and ${unlisted} more failed keys\n`);
        const seconds = ((Date.now() - started) / 1000).toFixed(1);
        await writeText(context.io.stdout, `copied ${summary.copied} keys (${summary.bytes} bytes), skipped ${summary.skipped}, failed ${summary.failed} in ${seconds}s\n`);
        if (summary.failed > 0) throw new CliError(EXIT.failure, `cp: ${summary.failed} of ${summary.keys} keys failed; run the same command again to retry them`);
      });
    });
}

/** Opens both stores (the source without creating anything), runs `work`, closes both. */
async function withStores(from: string, to: string, work: (source: Store, destination: Store) => Promise<void>): Promise<void> {
  const source = await openStore(from, { create: false }).catch(naming("--from"));
  try {
    const destination = await openStore(to).catch(naming("--to"));
    try {
      await work(source, destination);
    } finally {
      await destination.close().catch(() => undefined);
    }
  } finally {
    await source.close().catch(() => undefined);
  }
}

/** Says which of the two stores could not be opened, keeping the kind (and so the exit code). */
function naming(flag: string): (err: unknown) => never {
  return (err) => {
    if (!isStorageError(err)) throw err;
    throw new StorageError(err.kind, `${flag}: ${err.detail}`, { op: err.op, key: err.key, cause: err });
  };
}
