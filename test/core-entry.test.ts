/**
 * `stowage/core` must not load the NATS, S3 or PostgreSQL clients: walks the static imports
 * (`import`/`export … from`, not the type-only ones) of src/core.ts. `openStore`'s dynamic imports of backends are lazy
 * and are not followed.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as core from "../src/core.js";
import * as root from "../src/index.js";

const src = resolve(dirname(fileURLToPath(import.meta.url)), "../src");
const HEAVY = /^(pg|pg-copy-streams|@aws-sdk\/.*|@nats-io\/.*)$/;

/** Every package a module reaches through static imports, with the path that reached it. */
function staticPackages(entry: string): Map<string, string> {
  const packages = new Map<string, string>();
  const seen = new Set<string>();
  const visit = (file: string, via: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, "utf8");
    // `import type` / `export type` are erased at run time: they load nothing.
    for (const [, spec] of text.matchAll(/^\s*(?:import|export)\s(?!type\s)[^;]*?\sfrom\s+"([^"]+)"/gms)) {
      if (spec!.startsWith(".")) visit(join(dirname(file), spec!.replace(/\.js$/, ".ts")), `${via} -> ${spec}`);
      else if (!spec!.startsWith("node:")) packages.set(spec!, `${via} -> ${spec}`);
    }
  };
  visit(join(src, entry), entry);
  return packages;
}

describe("stowage/core", () => {
  it("reaches no backend client, nor the component, through static imports", () => {
    const heavy = [...staticPackages("core.ts")].filter(([name]) => HEAVY.test(name));
    assert.deepEqual(heavy.map(([, via]) => via), []);
    // The walk does see them where they are: the package root reaches all three clients.
    const fromRoot = [...staticPackages("index.ts").keys()];
    for (const name of ["pg", "@aws-sdk/client-s3", "@nats-io/jetstream"]) assert.ok(fromRoot.includes(name), `the root reaches ${name}`);
  });

  it("exports everything the root does except the three client backends and the component", () => {
    const missing = Object.keys(root).filter((name) => !(name in core)).sort();
    assert.deepEqual(missing, [
      "ACTIONS", "DEAD_LETTER_HEADERS", "DEFAULT_CHUNK_BYTES", "DEFAULT_POSTGRES_TABLE", "ERROR_CODES", "NatsStore", "PostgresStore", "RAW_HEADERS", "S3Store",
      "StorageComponent", "configJsonSchema", "postgresSchemaSql", "postgresTableNames", "resolveConfig", "silentLogger", "stderrLogger",
    ]);
  });
});
