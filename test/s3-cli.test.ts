/**
 * The `stowage` executable against S3 (s3rver): its stderr carries only its own one-line
 * errors. On Node 20 every process that builds an AWS SDK client got the SDK's multi-line
 * NodeVersionSupportWarning on stderr, even on success.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createBucket, deleteBucket, sharedS3Server, storeUrl, uniqueBucket, type S3ServerHandle } from "./fixtures/s3.js";

const MAIN = resolve("src/cli/main.ts");
const TSX = import.meta.resolve("tsx");

function stowage(cwd: string, args: string[], input = ""): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, reject) => {
    // The warning's switch is left unset, as in a user's shell.
    const env = { ...process.env, STOWAGE_STORE: undefined, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: undefined };
    const child = spawn(process.execPath, ["--import", TSX, MAIN, ...args], { cwd, env: env as NodeJS.ProcessEnv });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", reject);
    child.on("close", (code) => done({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

describe("stowage CLI on S3", { skip: process.env.S3_ENDPOINT ? "s3rver only" : undefined }, () => {
  let server: S3ServerHandle;
  let dir: string;
  const bucket = uniqueBucket("cli");
  before(async () => {
    server = await sharedS3Server();
    await createBucket(bucket, { server });
    dir = await mkdtemp(join(tmpdir(), "stowage-s3-cli-"));
  });
  after(async () => {
    await deleteBucket(bucket, { server });
    await rm(dir, { recursive: true, force: true });
  });

  it("prints nothing on stderr on success, and one line on failure", async () => {
    const url = storeUrl(server, bucket);
    for (const [args, input] of [[["put", "k"], "value"], [["get", "k"]], [["ls"]], [["stat", "k"]], [["rm", "k"]]] as [string[], string?][]) {
      const result = await stowage(dir, ["-s", url, ...args], input);
      assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
      assert.equal(result.stderr, "", `${args.join(" ")}: stderr`);
      if (args[0] === "get") assert.equal(result.stdout, "value");
    }
    const missing = await stowage(dir, ["-s", storeUrl(server, uniqueBucket("absent")), "ls"]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /^stowage: [^\n]*does not exist[^\n]*\n$/);
  });
});

// The shared s3rver is this file's (a child process): stop it, or the test process never exits.
after(async () => {
  if (!process.env.S3_ENDPOINT) await (await sharedS3Server()).stop();
});
