import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { PassThrough, Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { runCli } from "../src/cli/program.js";
import { EXIT } from "../src/cli/errors.js";
import { assertSameContent, moveTestbed, seed, type Backend } from "./fixtures/move.js";

// Every await before the first test is registered (see moveTestbed).
const { unavailable, fresh } = await moveTestbed();

/** Runs the program in this process (same parsing, commands and exit codes as the executable). */
async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on("data", (c: Buffer) => out.push(c));
  stderr.on("data", (c: Buffer) => err.push(c));
  const code = await runCli(args, { stdin: Readable.from([]), stdout, stderr, env });
  return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

const SUMMARY = /^copied (\d+) keys \((\d+) bytes\), skipped (\d+), failed (\d+) in [\d.]+s\n$/;

for (const [from, to] of [["nats", "s3"], ["file", "postgres"], ["postgres", "nats"]] as [Backend, Backend][]) {
  describe(`stowage cp ${from} -> ${to}`, { skip: unavailable[from] ?? unavailable[to] ?? false }, () => {
    it("copies the prefix under another, prints one summary line, and a rerun skips everything", async () => {
      const source = await fresh(from);
      const destination = await fresh(to);
      const keys = await seed(source.store, "in/", { big: false });
      const first = await cli(["cp", "--from", source.url, "--to", destination.url, "--prefix", "in/", "--to-prefix", "out/", "-j", "4"]);
      assert.equal(first.code, EXIT.ok, first.stderr);
      assert.equal(first.stderr, "");
      const [, copied, bytes, skipped, failed] = SUMMARY.exec(first.stdout) ?? assert.fail(first.stdout);
      assert.deepEqual([Number(copied), Number(skipped), Number(failed)], [keys.length, 0, 0]);
      assert.ok(Number(bytes) > 0);
      await assertSameContent(source.store, "in/", destination.store, "out/");

      const again = await cli(["cp", "--from", source.url, "--to", destination.url, "--prefix", "in/", "--to-prefix", "out/"]);
      assert.equal(again.code, EXIT.ok, again.stderr);
      assert.match(again.stdout, new RegExp(`^copied 0 keys \\(0 bytes\\), skipped ${keys.length}, failed 0 `));
    });
  });
}

describe("stowage cp and prune on file stores", () => {
  it("cp: a key that cannot be written is reported, counted, and the exit code is 1", async () => {
    const source = await fresh("file");
    const destination = await fresh("file");
    await source.store.put("a/ok", new Uint8Array([1]));
    await source.store.put(`a/${"x".repeat(1000)}`, new Uint8Array([2]));
    const result = await cli(["cp", "--from", source.url, "--to", destination.url, "--prefix", "a/", "--to-prefix", "longer/".repeat(10)]);
    assert.equal(result.code, EXIT.failure);
    assert.match(result.stdout, /^copied 1 keys \(1 bytes\), skipped 0, failed 1 /);
    const lines = result.stderr.trimEnd().split("\n");
    assert.equal(lines.length, 2, result.stderr);
    assert.match(lines[0]!, /^stowage: copy "a\/x+\.\.\.": the destination key .* is not valid/);
    assert.match(lines[1]!, /^stowage: cp: 1 of 2 keys failed; run the same command again/);
  });

  it("cp --since copies only the keys modified since; bad values are usage errors", async () => {
    const source = await fresh("file");
    const destination = await fresh("file");
    await source.store.put("old", new Uint8Array([1]));
    await sleep(1100);
    const since = new Date().toISOString();
    await sleep(1100);
    await source.store.put("new", new Uint8Array([2]));
    const result = await cli(["cp", "--from", source.url, "--to", destination.url, "--since", since]);
    assert.equal(result.code, EXIT.ok, result.stderr);
    assert.match(result.stdout, /^copied 1 keys \(1 bytes\), skipped 1, failed 0 /);
    assert.deepEqual(await destination.store.list(), ["new"]);
    assert.equal((await cli(["cp", "--from", source.url, "--to", destination.url, "--since", "yesterday"])).code, EXIT.usage);
    assert.equal((await cli(["cp", "--from", source.url, "--to", destination.url, "-j", "0"])).code, EXIT.usage);
    assert.equal((await cli(["cp", "--to", destination.url])).code, EXIT.usage);
  });

  it("cp from a store that does not exist exits 3 and says which side", async () => {
    const destination = await fresh("file");
    const result = await cli(["cp", "--from", `${destination.url}/missing`, "--to", destination.url]);
    assert.equal(result.code, EXIT.notFound, result.stderr);
    assert.match(result.stderr, /^stowage: open: --from: /);
  });

  it("prune --dry-run lists the older keys and deletes nothing; prune deletes exactly them", async () => {
    const { store, url } = await fresh("file");
    await store.put("logs/a", new Uint8Array([1]));
    await store.put("logs/c", new Uint8Array([1]));
    await sleep(1100);
    const cutoff = new Date().toISOString();
    await sleep(1100);
    await store.put("logs/b", new Uint8Array([2]));
    const dry = await cli(["prune", "logs/", "--older-than", cutoff, "--dry-run", "--store", url]);
    assert.equal(dry.code, EXIT.ok, dry.stderr);
    assert.equal(dry.stdout, `logs/a\nlogs/c\nwould delete 2 keys modified before ${cutoff}, examined 3\n`);
    assert.deepEqual(await store.list("logs/"), ["logs/a", "logs/b", "logs/c"]);

    const nothing = await cli(["prune", "logs/", "--older-than", "1h"], { STOWAGE_STORE: url });
    assert.match(nothing.stdout, /^deleted 0 keys modified before .*, examined 3\n$/);
    const real = await cli(["prune", "logs/", "--older-than", cutoff], { STOWAGE_STORE: url });
    assert.equal(real.code, EXIT.ok, real.stderr);
    assert.equal(real.stdout, `logs/a\nlogs/c\ndeleted 2 keys modified before ${cutoff}, examined 3\n`);
    assert.deepEqual(await store.list("logs/"), ["logs/b"]);
    assert.equal((await cli(["prune", "logs/", "--older-than", "soon", "--store", url])).code, EXIT.usage);
    assert.equal((await cli(["prune", "logs/", "--store", url])).code, EXIT.usage, "--older-than is required");
  });
});
