import type { Command } from "commander";
import { assertKey } from "../../keys.js";
import type { ObjectInfo } from "../../types.js";
import type { CliContext } from "../context.js";
import { formatBytes } from "../progress.js";

export function register(program: Command, context: CliContext): void {
  program
    .command("stat")
    .description("show the size, modification time, version and metadata of KEY")
    .argument("<key>", "the key")
    .option("--json", "print one JSON object instead of aligned text")
    .action(async (key: string, options: { json?: boolean }) => {
      assertKey(key, "stat");
      const info = await context.withStore((store) => store.stat(key, { signal: context.signal }), { readOnly: true });
      context.io.stdout.write(options.json ? `${JSON.stringify(statJson(info))}\n` : statText(info));
    });
}

/** The JSON form: `{ key, size, modified (ISO 8601), etag, version?, metadata }`. */
export function statJson(info: ObjectInfo): Record<string, unknown> {
  return { key: info.key, size: info.size, modified: info.modified.toISOString(), etag: info.etag, version: info.version, metadata: info.metadata };
}

function statText(info: ObjectInfo): string {
  const rows: [string, string][] = [
    ["key", info.key],
    ["size", info.size < 1024 ? `${info.size} B` : `${info.size} (${formatBytes(info.size)})`],
    ["modified", info.modified.toISOString()],
    ["etag", info.etag],
  ];
  if (info.version !== undefined) rows.push(["version", info.version]);
  for (const [name, value] of Object.entries(info.metadata).sort(([a], [b]) => (a < b ? -1 : 1))) rows.push([`meta ${name}`, value]);
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}\n`).join("");
}
