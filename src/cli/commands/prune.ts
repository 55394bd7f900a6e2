import type { Command } from "commander";
import { assertPrefix } from "../../keys.js";
import { prune } from "../../move/index.js";
import { pointInTime } from "../arguments.js";
import type { CliContext } from "../context.js";
import { writeText } from "../files.js";

interface PruneCliOptions {
  olderThan: Date;
  dryRun?: boolean;
  timeOrdered?: boolean;
}

export function register(program: Command, context: CliContext): void {
  program
    .command("prune")
    .description("delete the keys under PREFIX last modified before a cutoff, printing each one; never a key written after it")
    .argument("<prefix>", "the keys to consider (need not end at /); \"\" means every key")
    .requiredOption("--older-than <time>", "the cutoff: a duration back from now (30d, 12h) or an ISO date", pointInTime("--older-than"))
    .option("--dry-run", "delete nothing: print what would be deleted")
    .option("--time-ordered", "the keys sort by the time they were written (the archiver's time-bucket keys): stop at the first younger one")
    .action(async (prefix: string, options: PruneCliOptions) => {
      assertPrefix(prefix, "prune");
      await context.withStore(async (store) => {
        // Each key as it goes, so a long prune shows its progress and an interrupted one its work.
        const summary = await prune(store, {
          prefix,
          olderThan: options.olderThan,
          dryRun: options.dryRun,
          timeOrderedKeys: options.timeOrdered,
          signal: context.signal,
          onKey: (key) => void context.io.stdout.write(`${key}\n`),
        });
        const verb = options.dryRun ? "would delete" : "deleted";
        await writeText(context.io.stdout, `${verb} ${summary.deleted} keys modified before ${options.olderThan.toISOString()}, examined ${summary.examined}\n`);
      }, { readOnly: true });
    });
}
