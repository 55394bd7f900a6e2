#!/usr/bin/env node
// Runs every test/**/*.test.ts with node's own test runner (Node 20 has no glob for --test).
// Extra arguments filter test files by substring: `node scripts/run-tests.mjs nats file`.
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { tapRecap } from "./tap-recap.mjs";

function findTests(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === "fixtures" ? [] : findTests(path);
    return name.endsWith(".test.ts") ? [path] : [];
  });
}

const filters = process.argv.slice(2);
const files = findTests("test")
  .map((f) => relative(".", f))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(" ")}`);
  process.exit(1);
}
const child = spawn(
  process.execPath,
  // --expose-gc: memory-bound tests collect garbage as they go, so RSS shows what a store holds.
  ["--expose-gc", "--import", "tsx", "--test", "--test-reporter=tap", "--test-timeout=600000", ...files],
  // No test may ask the cloud instance-metadata address for credentials (an S3 store opened
  // without credentials would end the AWS SDK's credential chain there).
  { stdio: ["inherit", "pipe", "inherit"], env: { AWS_EC2_METADATA_DISABLED: "true", ...process.env } },
);
const recap = tapRecap((text) => process.stdout.write(text + "\n"));
const lines = createInterface({ input: child.stdout, crlfDelay: Infinity });
lines.on("line", recap.line);
const closed = new Promise((resolve) => lines.on("close", resolve));
child.on("exit", async (code, signal) => {
  await closed;
  recap.end();
  process.exitCode = code ?? (signal ? 1 : 0);
});
