import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { runCli } from "../src/cli/program.js";
import { EXIT, asCommandError } from "../src/cli/errors.js";
import { StorageError } from "../src/errors.js";
import { allBytes } from "../src/testing/helpers.js";
import { sharedNats } from "./fixtures/nats.js";
import { uniqueName } from "./fixtures/services.js";

const MAIN = resolve("src/cli/main.ts");
const TSX = import.meta.resolve("tsx");
const STACK_LINE = /^\s+at /m;

interface Result {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs the real `stowage` executable (through tsx) in `cwd`, as a user would. */
function stowage(cwd: string, args: string[], options: { input?: Uint8Array | string; env?: Record<string, string | undefined> } = {}): Promise<Result> {
  return new Promise((resolvePromise, reject) => {
    const env: Record<string, string | undefined> = { ...process.env, STOWAGE_STORE: undefined, STOWAGE_DEBUG: undefined, ...options.env };
    const child = spawn(process.execPath, ["--import", TSX, MAIN, ...args], { cwd, env: env as NodeJS.ProcessEnv, stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    child.on("error", reject);
    child.on("close", (code) => resolvePromise({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }));
    child.stdin.end(options.input ?? "");
  });
}

/** A failure prints exactly one line, `stowage: ...`, and never a stack trace. */
function assertOneLineError(result: Result, code: number, pattern: RegExp): void {
  assert.equal(result.code, code, `exit code (stderr: ${result.stderr})`);
  assert.doesNotMatch(result.stderr, STACK_LINE);
  assert.match(result.stderr, /^stowage: [^\n]+\n$/, "one line");
  assert.match(result.stderr, pattern);
}

function assertOk(result: Result): void {
  assert.equal(result.code, 0, `exit code (stderr: ${result.stderr})`);
  assert.equal(result.stderr, "", "nothing on stderr (no progress bar without a terminal)");
}

const dirs: string[] = [];
async function workdir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "stowage-cli-"));
  dirs.push(dir);
  return dir;
}
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** Runs the program in this process (same parsing, commands and exit codes as the executable). */
async function cli(args: string[], options: { input?: Uint8Array | string; env?: Record<string, string | undefined>; stdin?: Readable & { isTTY?: boolean }; tty?: boolean } = {}): Promise<Result> {
  const stdout = new PassThrough();
  const stderr = new PassThrough() as PassThrough & { isTTY?: boolean; columns?: number };
  stderr.isTTY = options.tty;
  stderr.columns = 120;
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on("data", (c: Buffer) => out.push(c));
  stderr.on("data", (c: Buffer) => err.push(c));
  const stdin = options.stdin ?? Readable.from(options.input === undefined ? [] : [Buffer.from(options.input)]);
  const code = await runCli(args, { stdin, stdout, stderr, env: options.env ?? {} });
  return { code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() };
}

// Spawning through tsx costs about a second per run (more on a busy machine), so the
// executable's own jobs (argv, the default store in the working folder, exit status, signals,
// pipes) are tested by spawning it, and the commands in-process through the same `runCli`.
describe("stowage executable", { concurrency: 4 }, () => {
  it("put/get every byte value through stdin, in ./.stowage by default, and exits 3 and 2 with one line", async () => {
    const cwd = await workdir();
    const bytes = allBytes(4); // 1 KiB cycling through 0..255
    assertOk(await stowage(cwd, ["put", "bin/stdin"], { input: bytes }));
    assert.ok(existsSync(join(cwd, ".stowage")), "the default store is ./.stowage");
    const got = await stowage(cwd, ["get", "bin/stdin"]);
    assertOk(got);
    assert.deepEqual(got.stdout, Buffer.from(bytes), "byte-exact, no newline added");
    const [missing, invalid] = await Promise.all([stowage(cwd, ["get", "missing"]), stowage(cwd, ["get", "../x"])]);
    assertOneLineError(missing, EXIT.notFound, /^stowage: get "missing": no value/);
    assertOneLineError(invalid, EXIT.usage, /'\.' or '\.\.' segment/);
  });

  it("STOWAGE_STORE picks the store in the working folder", async () => {
    const cwd = await workdir();
    assertOk(await stowage(cwd, ["put", "k"], { input: "env", env: { STOWAGE_STORE: "file:./from-env" } }));
    assert.ok(existsSync(join(cwd, "from-env")));
    assert.ok(!existsSync(join(cwd, ".stowage")));
  });

  it("exits 4 with one line when the backend is unreachable", async () => {
    const cwd = await workdir();
    assertOneLineError(await stowage(cwd, ["--store", "nats://127.0.0.1:1/B", "ls"]), EXIT.unavailable, /NATS/);
  });

  it("a reader closing stdout early (get | head -c1) ends quietly", async () => {
    const cwd = await workdir();
    await writeFile(join(cwd, "big.bin"), Buffer.alloc(8 << 20, 7));
    const script = [
      `"${process.execPath}" --import "${TSX}" "${MAIN}" put big big.bin || exit 99`,
      `"${process.execPath}" --import "${TSX}" "${MAIN}" get big | head -c1 >/dev/null`,
      `echo "\${PIPESTATUS[0]}"`,
    ].join("\n");
    const result = await new Promise<{ status: string; stderr: string }>((done, reject) => {
      const child = spawn("bash", ["-c", script], { cwd, env: { ...process.env, STOWAGE_STORE: undefined } as NodeJS.ProcessEnv });
      let status = "";
      let stderr = "";
      child.stdout.on("data", (c: Buffer) => (status += c.toString()));
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      child.on("error", reject);
      child.on("close", () => done({ status: status.trim(), stderr }));
    });
    assert.equal(result.stderr, "", "no stack trace, no message");
    assert.equal(result.status, String(EXIT.brokenPipe));
  });

  it("Ctrl-C during a put exits 130 and stores nothing", async () => {
    const cwd = await workdir();
    const child = spawn(process.execPath, ["--import", TSX, MAIN, "put", "half"], { cwd, env: { ...process.env, STOWAGE_STORE: undefined } as NodeJS.ProcessEnv });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const closed = new Promise<number | null>((r) => child.on("close", r));
    child.stdin.write(Buffer.alloc(64 * 1024, 1)); // the body has begun and never ends
    // The store folder appears when the store opens: the put is under way.
    for (let i = 0; i < 600 && !existsSync(join(cwd, ".stowage")); i++) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 200));
    child.kill("SIGINT");
    assert.equal(await closed, EXIT.interrupted, stderr);
    assert.equal(stderr, "stowage: interrupted\n");
    assert.equal((await cli(["--store", `file:${join(cwd, ".stowage")}`, "ls", "-r"])).stdout.toString(), "");
  });
});

describe("asCommandError", () => {
  it("renames the operation to the command, keeping kind, key (even a long one), detail and cause", () => {
    const long = "k".repeat(200);
    for (const key of ["k", long]) {
      const inner = new StorageError("not_found", "no value at this key", { op: "getStream", key });
      const err = asCommandError(inner, "getStream", "get");
      assert.ok(err instanceof StorageError);
      assert.equal(err.message, new StorageError("not_found", "no value at this key", { op: "get", key }).message);
      assert.deepEqual([err.kind, err.op, err.key, err.cause], ["not_found", "get", key, inner]);
    }
    const open = new StorageError("transient", "cannot reach the NATS server", { op: "open" });
    assert.equal(asCommandError(open, "getStream", "get"), open, "other operations pass through");
  });
});

describe("stowage commands", () => {
  let dir: string;
  let store: string;
  before(async () => {
    dir = await workdir();
    store = `file:${join(dir, "store")}`;
  });

  it("put/get every byte value via stdin, `-` and a file; get -o writes a file", async () => {
    const bytes = allBytes(4);
    assertOk(await cli(["--store", store, "put", "bin/stdin"], { input: bytes }));
    assertOk(await cli(["--store", store, "put", "bin/dash", "-"], { input: bytes }));
    await writeFile(join(dir, "in.bin"), bytes);
    assertOk(await cli(["--store", store, "put", "bin/file", join(dir, "in.bin")]));
    for (const key of ["bin/stdin", "bin/dash", "bin/file"]) {
      const got = await cli(["--store", store, "get", key]);
      assertOk(got);
      assert.deepEqual(got.stdout, Buffer.from(bytes), key);
    }
    const out = join(dir, "out.bin");
    assertOk(await cli(["--store", store, "get", "bin/file", "-o", out]));
    assert.deepEqual(await readFile(out), Buffer.from(bytes));
    assertOk(await cli(["--store", store, "put", "empty"], { input: "" }));
    const empty = await cli(["--store", store, "get", "empty"]);
    assertOk(empty);
    assert.equal(empty.stdout.length, 0, "an empty value is a value");
  });

  it("ls lists one level like a folder (-r: every key), in byte order; rm deletes; stat shows metadata", async () => {
    const s = `file:${join(dir, "ls")}`;
    const keys = ["a/b", "a/😀", "a/\uffff", "a/x y", "ab", "b", "a/deep/er"];
    for (const key of keys) assertOk(await cli(["--store", s, "put", key], { input: key }));
    const top = await cli(["--store", s, "ls"]);
    assertOk(top);
    assert.equal(top.stdout.toString(), "a/\nab\nb\n");
    const all = await cli(["--store", s, "ls", "-r"]);
    assert.equal(all.stdout.toString(), ["a/b", "a/deep/er", "a/x y", "a/\uffff", "a/😀", "ab", "b"].map((k) => `${k}\n`).join(""));
    assert.equal((await cli(["--store", s, "ls", "a/"])).stdout.toString(), "a/b\na/deep/\na/x y\na/\uffff\na/😀\n");
    assert.equal((await cli(["--store", s, "ls", "--recursive", "a/"])).stdout.toString(), "a/b\na/deep/er\na/x y\na/\uffff\na/😀\n");
    assert.equal((await cli(["--store", s, "ls", "zzz"])).stdout.toString(), "");
    const long = await cli(["--store", s, "ls", "--long", "a"]);
    assertOk(long);
    assert.match(long.stdout.toString(), /^ {9}PRE +a\/\n {11}2 {2}\d{4}-\d\d-\d\dT[\d:.]+Z {2}\S+ +ab\n$/);
    assertOk(await cli(["--store", s, "rm", "a/deep/er"]));

    assertOk(await cli(["--store", s, "put", "m", "-m", "Content-Type=text/plain", "--metadata", "owner=Zoë"], { input: "hi" }));
    const json = await cli(["--store", s, "stat", "--json", "m"]);
    assertOk(json);
    const info = JSON.parse(json.stdout.toString()) as { key: string; size: number; modified: string; metadata: Record<string, string> };
    assert.equal(info.key, "m");
    assert.equal(info.size, 2);
    assert.ok(!Number.isNaN(Date.parse(info.modified)));
    assert.deepEqual(info.metadata, { "content-type": "text/plain", owner: "Zoë" });
    const text = await cli(["--store", s, "stat", "m"]);
    assert.match(text.stdout.toString(), /^key\s+m\nsize\s+2 B\nmodified\s+\S+\netag\s+\S+\nmeta content-type\s+text\/plain\nmeta owner\s+Zoë\n$/);

    assertOk(await cli(["--store", s, "rm", "a/b", "ab", "never-existed"]));
    assert.equal((await cli(["--store", s, "ls", "-r"])).stdout.toString(), "a/x y\na/\uffff\na/😀\nb\nm\n");
    assertOneLineError(await cli(["--store", s, "get", "ab"]), EXIT.notFound, /^stowage: get "ab": no value/);
    // put writes through putStream; its errors still name the command the user ran.
    assertOneLineError(await cli(["--store", s, "put", "bad-meta", "--metadata", "bad name=x"], { input: "v" }), EXIT.usage, /^stowage: put "bad-meta": metadata name/);
  });

  it("put --if-none-match / --if-match and rm --if-match: exit 6 and nothing changed when the condition fails", async () => {
    const f = `file:${join(dir, "conditional")}`;
    assertOk(await cli(["--store", f, "put", "k", "--if-none-match"], { input: "one" }));
    assertOneLineError(await cli(["--store", f, "put", "k", "--if-none-match"], { input: "two" }), EXIT.conflict, /^stowage: put "k": .*exists/);
    const etagOf = async () => (JSON.parse((await cli(["--store", f, "stat", "--json", "k"])).stdout.toString()) as { etag: string }).etag;
    const etag = await etagOf();
    assert.ok(etag.length > 0);
    assertOk(await cli(["--store", f, "put", "k", "--if-match", etag], { input: "three" }));
    assertOneLineError(await cli(["--store", f, "put", "k", "--if-match", etag], { input: "four" }), EXIT.conflict, /etag/);
    assertOneLineError(await cli(["--store", f, "rm", "k", "--if-match", etag]), EXIT.conflict, /etag/);
    assert.equal((await cli(["--store", f, "get", "k"])).stdout.toString(), "three");
    assertOk(await cli(["--store", f, "rm", "k", "--if-match", await etagOf()]));
    assertOneLineError(await cli(["--store", f, "get", "k"]), EXIT.notFound, /no value/);
    assertOneLineError(await cli(["--store", f, "rm", "a", "b", "--if-match", etag]), EXIT.usage, /exactly one key/);
  });

  it("read-only commands create nothing: ls, get and stat on a missing store say so", async () => {
    const missing = join(dir, "never-made");
    for (const args of [["ls"], ["ls", "-r"], ["get", "k"], ["stat", "k"]]) {
      assertOneLineError(await cli(["--store", `file:${missing}`, ...args]), EXIT.notFound, /never-made/);
    }
    assert.equal(existsSync(missing), false, "a read-only command created the store's directory");
  });

  it("--store wins over STOWAGE_STORE", async () => {
    const env = { STOWAGE_STORE: `file:${join(dir, "env")}` };
    assertOk(await cli(["put", "k"], { input: "env", env }));
    assertOk(await cli(["--store", `file:${join(dir, "flag")}`, "put", "k"], { input: "flag", env }));
    assert.equal((await cli(["get", "k"], { env })).stdout.toString(), "env");
    assert.equal((await cli(["get", "k", "--store", `file:${join(dir, "flag")}`], { env })).stdout.toString(), "flag");
  });

  it("exit codes: invalid input 2, not found 3, unsupported 5, failure 1 — one line each", async () => {
    const run = (args: string[], input?: string) => cli(["--store", store, ...args], { input });
    assertOneLineError(await run(["get", "missing"]), EXIT.notFound, /"missing"/);
    assertOneLineError(await run(["stat", "missing"]), EXIT.notFound, /"missing"/);
    assertOneLineError(await run(["put", "/abs"], "x"), EXIT.usage, /must not start with '\/'/);
    assertOneLineError(await run(["rm", "ok", "a/./b"]), EXIT.usage, /segment/);
    assertOneLineError(await cli(["--store", "bogus:thing", "ls"]), EXIT.usage, /unknown store scheme "bogus:"/);
    assertOneLineError(await cli(["--store", "not a url", "ls"]), EXIT.usage, /no scheme/);
    assertOneLineError(await run(["frobnicate"]), EXIT.usage, /unknown command 'frobnicate'/);
    assertOneLineError(await run(["get"]), EXIT.usage, /missing required argument 'key'/);
    assertOneLineError(await run(["ls", "--bogus"]), EXIT.usage, /unknown option '--bogus'/);
    assertOneLineError(await run(["put", "k", join(dir, "no-such-file")]), EXIT.usage, /cannot read ".*no-such-file": no such file/);
    assertOneLineError(await run(["put", "k", dir]), EXIT.usage, /is not a regular file/);
    assertOneLineError(await run(["put", "k", "-m", "novalue"], "x"), EXIT.usage, /expected name=value/);
    assertOneLineError(await run(["put", "k", "-m", "bad name=1"], "x"), EXIT.usage, /metadata name "bad name"/);
    assertOneLineError(await run(["versions", "k"]), EXIT.unsupported, /does not support versions/);
    assertOk(await run(["put", "k"], "x"));
    assertOneLineError(await run(["get", "k", "-o", join(dir, "no/such/folder/out")]), EXIT.failure, /cannot write .*its folder does not exist/);
    // The value the failed get opened is closed at once, not left to the garbage collector.
    if (existsSync("/proc/self/fd")) {
      const open = () => readdirSync("/proc/self/fd").length;
      const before = open();
      for (let i = 0; i < 20; i++) await run(["get", "k", "-o", join(dir, "no/such/folder/out")]);
      assert.ok(open() - before < 5, `open descriptors grew from ${before} to ${open()} over 20 failed gets`);
    }
    await writeFile(join(dir, "plain-file"), "x");
    assertOneLineError(await cli(["--store", `file:${join(dir, "plain-file", "store")}`, "ls"]), EXIT.failure, /^stowage: open: /);
  });

  it("secrets in the store URL stay out of messages", async () => {
    const pg = await cli(["--store", "postgres://me:hunter2@127.0.0.1:1/db", "ls"]);
    assertOneLineError(pg, EXIT.unavailable, /PostgreSQL/);
    assert.doesNotMatch(pg.stderr, /hunter2/);
  });

  it("--help documents the exit codes; --version prints the package version", async () => {
    const help = await cli(["--help"]);
    assertOk(help);
    assert.match(help.stdout.toString(), /Exit codes:[\s\S]*3 {2}not found[\s\S]*4 {2}backend unavailable/);
    assert.match(help.stdout.toString(), /STOWAGE_STORE/);
    const version = await cli(["--version"]);
    const pkg = JSON.parse(await readFile("package.json", "utf8")) as { version: string };
    assert.equal(version.stdout.toString(), `${pkg.version}\n`);
    const bare = await cli([]);
    assert.equal(bare.code, EXIT.usage, "no command: usage on stderr");
    assert.match(bare.stderr, /Usage: stowage/);
  });

  async function* slowBody(): AsyncGenerator<Buffer> {
    for (let i = 0; i < 8; i++) {
      await new Promise((r) => setTimeout(r, 150));
      yield Buffer.alloc(1024, i);
    }
  }

  it("draws a progress bar on a terminal for a long transfer, and never without one", async () => {
    const tty = await cli(["--store", store, "put", "slow"], { stdin: Readable.from(slowBody()), tty: true });
    assert.equal(tty.code, EXIT.ok);
    assert.match(tty.stderr, /put slow {2}\d+(\.\d)? (B|KiB) {2}/, "bytes so far (size unknown from a pipe)");
    const plain = await cli(["--store", store, "put", "slow2"], { stdin: Readable.from(slowBody()), tty: false });
    assertOk(plain);
  });

  it("refuses to read a value from an interactive terminal", async () => {
    const stdin = Readable.from([]) as Readable & { isTTY?: boolean };
    stdin.isTTY = true;
    assertOneLineError(await cli(["--store", store, "put", "k"], { stdin }), EXIT.usage, /no FILE given and stdin is a terminal/);
  });

  it("bench runs its four phases after the warm-up and leaves nothing behind", async () => {
    const s = `file:${join(dir, "bench")}?fsync=false`;
    assertOk(await cli(["--store", s, "put", "mine"], { input: "kept" }));
    const json = await cli(["--store", s, "bench", "--ops", "20", "--concurrency", "4", "--size", "2KiB", "--warmup", "150", "--json"]);
    assertOk(json);
    const report = JSON.parse(json.stdout.toString()) as { size: number; ops: number; warmup: number; results: { op: string; ops: number; opsPerSec: number; mbPerSec?: number }[] };
    assert.deepEqual([report.size, report.ops, report.warmup], [2048, 20, 150]);
    assert.deepEqual(report.results.map((r) => [r.op, r.ops]), [["put", 20], ["get", 20], ["list", 20], ["delete", 20]]);
    for (const r of report.results) assert.ok(r.opsPerSec > 0, `${r.op}: ${r.opsPerSec} ops/s`);
    assert.ok((report.results[0]?.mbPerSec ?? 0) > 0);
    // The phases' keys and the warm-up's (under a prefix of their own) are gone; the store's own key stays.
    assert.equal((await cli(["--store", s, "ls"])).stdout.toString(), "mine\n");
    const table = await cli(["--store", s, "bench", "--ops", "5"]);
    assertOk(table);
    assert.match(table.stdout.toString(), /^store file:.*value 1(\.0)? KiB {2}ops 5 {2}concurrency 16\n/);
    for (const row of ["put", "get", "list \\(5 keys\\)", "delete"]) assert.match(table.stdout.toString(), new RegExp(`^${row} `, "m"));
    assert.equal((await cli(["--store", s, "ls"])).stdout.toString(), "mine\n");
  });

  it("bench refuses bad sizes and counts with one line and exit 2", async () => {
    for (const args of [["--size", "0"], ["--size", "2GiB"], ["--size", "lots"], ["--ops", "0"], ["--warmup", "-1"], ["--concurrency", "1.5"]]) {
      assertOneLineError(await cli(["--store", store, "bench", ...args]), EXIT.usage, new RegExp(args[0] as string));
    }
  });
});

describe("stowage CLI versions (NATS)", async () => {
  const url = await sharedNats();
  const bucket = uniqueName("cli").replace(/[^-\w]/g, "_");
  after(async () => {
    if (!url) return;
    const nc = await connect({ servers: url });
    const jsm = await jetstreamManager(nc);
    for (const stream of [`KV_${bucket}`, `OBJ_${bucket}_large`]) await jsm.streams.delete(stream).catch(() => undefined);
    await nc.close();
  });

  it("lists versions and gets an older one", { skip: url ? false : "no NATS server" }, async () => {
    const store = `${url}/${bucket}?history=5`;
    for (const value of ["one", "two"]) assertOk(await cli(["--store", store, "put", "k"], { input: value }));
    const json = await cli(["--store", store, "versions", "--json", "k"]);
    assertOk(json);
    const versions = JSON.parse(json.stdout.toString()) as { version: string; size: number; deleted: boolean }[];
    assert.equal(versions.length, 2);
    assert.deepEqual(versions.map((v) => v.size), [3, 3]);
    const old = await cli(["--store", store, "get", "k", "--version-id", versions[0]!.version]);
    assertOk(old);
    assert.equal(old.stdout.toString(), "one");
    const text = await cli(["--store", store, "versions", "k"]);
    assert.equal(text.stdout.toString().trim().split("\n").length, 2);
  });
});
