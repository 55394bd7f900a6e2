import type { Command } from "commander";
import { assertKey } from "../../keys.js";
import type { CliContext } from "../context.js";

export function register(program: Command, context: CliContext): void {
  program
    .command("versions")
    .description("list the versions of KEY, oldest first (stores that keep history)")
    .argument("<key>", "the key")
    .option("--json", "print a JSON array instead of aligned text")
    .action(async (key: string, options: { json?: boolean }) => {
      assertKey(key, "versions");
      const versions = await context.withStore((store) => store.versions(key, { signal: context.signal }), { readOnly: true });
      if (options.json) {
        const json = versions.map((v) => ({ version: v.version, size: v.size, modified: v.modified.toISOString(), deleted: v.deleted }));
        context.io.stdout.write(`${JSON.stringify(json)}\n`);
        return;
      }
      const width = Math.max(7, ...versions.map((v) => v.version.length));
      const lines = versions.map((v) => `${v.version.padEnd(width)}  ${String(v.size).padStart(12)}  ${v.modified.toISOString()}${v.deleted ? "  (deleted)" : ""}\n`);
      context.io.stdout.write(lines.join(""));
    });
}
