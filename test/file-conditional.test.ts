/**
 * The file backend's etags, conditional writes across processes, commit locks, and writes that
 * are aborted: what the conformance suite cannot see from one process.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync, readlinkSync } from "node:fs";
import { lstat, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setImmediate as turn, setTimeout as sleep } from "node:timers/promises";
import { FileStore, StorageError } from "../src/index.js";
import { Lease, machineOf, withKeyLock } from "../src/backends/file/lock.js";
import { assertKind, text } from "../src/testing/helpers.js";
import type { RaceJob, RaceResult } from "./fixtures/file-writer.js";

const base = await mkdtemp(join(tmpdir(), "stowage-file-cond-"));
let dirs = 0;
const freshDir = () => join(base, `store-${++dirs}`);
after(() => rm(base, { recursive: true, force: true }));

/** Starts a racer process (test/fixtures/file-writer.ts) and waits until its store is open. */
async function startRacer(job: RaceJob): Promise<{ go: () => void; result: Promise<RaceResult> }> {
  const child = spawn(process.execPath, ["--import", "tsx", "test/fixtures/file-writer.ts", "race", JSON.stringify(job)], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const exited = once(child, "exit");
  const ready = await lines.next();
  assert.equal(ready.value, "ready", "the racer did not start");
  return {
    go: () => child.stdin!.end("go\n"),
    result: (async () => {
      const line = await lines.next();
      const [code] = (await exited) as [number | null];
      assert.equal(code, 0, "the racer failed");
      return JSON.parse(String(line.value)) as RaceResult;
    })(),
  };
}

/** The value file of a one-segment key in a readable-names store. */
const valueFile = (root: string, key: string) => join(root, `${key}.v`);

/** The value file's bytes as text, or "absent". */
function onDisk(path: string): string {
  try {
    return readFileSync(path, "latin1");
  } catch {
    return "absent";
  }
}

describe("file backend: etags", () => {
  it("an etag never repeats over overwrites, deletes and re-creations with the same bytes", async () => {
    const store = await FileStore.open({ root: freshDir(), fsync: false });
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      await store.put("k", text("same bytes"));
      seen.add((await store.stat("k")).etag);
      if (i % 2) await store.delete("k");
    }
    // The inode is reused after a delete and mtime has a coarse clock: a tag made of them repeats.
    assert.equal(seen.size, 100, `${100 - seen.size} etags repeated`);
    await store.close();
  });

  it("reads value files of format 1 (no etag): a stable etag that ifMatch takes; the next put writes format 2", async () => {
    const root = freshDir();
    const store = await FileStore.open({ root, names: "readable" });
    const metadata = Buffer.from('{"a":"b"}');
    const header = Buffer.alloc(20);
    header.write("STOWAGE\u0001", 0, "latin1");
    header.writeUInt32BE(metadata.length, 8);
    header.writeBigUInt64BE(5n, 12);
    await writeFile(valueFile(root, "old"), Buffer.concat([header, metadata, Buffer.from("hello")]));
    assert.equal(Buffer.from(await store.get("old")).toString(), "hello");
    assert.equal(Buffer.from(await store.get("old", { range: { offset: 1, length: 3 } })).toString(), "ell");
    const info = await store.stat("old");
    assert.deepEqual(info.metadata, { a: "b" });
    assert.equal((await store.stat("old")).etag, info.etag, "a format 1 etag changed without a write");
    await assertKind(store.put("old", text("x"), { ifMatch: "not-it" }), "conflict");
    await store.put("old", text("new"), { ifMatch: info.etag });
    assert.notEqual((await store.stat("old")).etag, info.etag);
    assert.equal((await readFile(valueFile(root, "old")))[7], 2);
    await store.close();
  });
});

describe("file backend: conditional writes across processes", () => {
  it("of 50 ifNoneMatch creators in three processes exactly one wins, for each of 4 keys", async () => {
    const root = freshDir();
    const store = await FileStore.open({ root });
    const keys = ["k1", "dir/k2", "dir/deeper/k3", "k4"];
    const racers = await Promise.all(["a", "b"].map((label) => startRacer({ root, op: "create", keys, count: 20, label })));
    const local: RaceResult = { won: {}, conflicts: 0, errors: [] };
    racers.forEach((r) => r.go());
    await Promise.all(
      keys.flatMap((key) =>
        Array.from({ length: 10 }, async (_, i) => {
          try {
            await store.put(key, text(`local-${i}`), { ifNoneMatch: "*" });
            (local.won[key] ??= []).push(`local-${i}`);
          } catch (err) {
            assert.ok(err instanceof StorageError && err.kind === "conflict", String(err));
            local.conflicts++;
          }
        }),
      ),
    );
    const results = [local, ...(await Promise.all(racers.map((r) => r.result)))];
    assert.deepEqual(results.flatMap((r) => r.errors), []);
    for (const key of keys) {
      const winners = results.flatMap((r) => r.won[key] ?? []);
      assert.equal(winners.length, 1, `${key}: ${winners.length} creators won (${winners.join(", ")})`);
      assert.equal(Buffer.from(await store.get(key)).toString(), winners[0]);
    }
    assert.equal(results.reduce((n, r) => n + r.conflicts, 0), keys.length * 49);
    await store.close();
  });

  it("of 20 ifMatch updaters from one etag in two processes exactly one wins", async () => {
    const root = freshDir();
    const store = await FileStore.open({ root });
    const keys = ["u1", "u/2"];
    const etags: Record<string, string> = {};
    for (const key of keys) {
      await store.put(key, text("base"));
      etags[key] = (await store.stat(key)).etag;
    }
    const racers = await Promise.all(["a", "b"].map((label) => startRacer({ root, op: "update", keys, count: 10, label, etags })));
    racers.forEach((r) => r.go());
    const results = await Promise.all(racers.map((r) => r.result));
    assert.deepEqual(results.flatMap((r) => r.errors), []);
    for (const key of keys) {
      const winners = results.flatMap((r) => r.won[key] ?? []);
      assert.equal(winners.length, 1, `${key}: ${winners.length} updaters won`);
      assert.equal(Buffer.from(await store.get(key)).toString(), winners[0]);
    }
    await store.close();
  });

  it("three processes incrementing counters by read and ifMatch lose no increment", async () => {
    const root = freshDir();
    const store = await FileStore.open({ root, fsync: false });
    const keys = ["count", "nested/count"];
    for (const key of keys) await store.put(key, text("0"));
    const racers = await Promise.all(["a", "b", "c"].map((label) => startRacer({ root, op: "increment", keys, count: 40, label })));
    racers.forEach((r) => r.go());
    const results = await Promise.all(racers.map((r) => r.result));
    assert.deepEqual(results.flatMap((r) => r.errors), []);
    for (const key of keys) assert.equal(Buffer.from(await store.get(key)).toString(), "120", `${key}: increments were lost`);
    assert.ok(results.reduce((n, r) => n + r.conflicts, 0) > 0, "the processes never contended: the test proves nothing");
    assert.deepEqual((await readdir(root, { recursive: true })).filter((p) => String(p).endsWith(".lock")), [], "a lock was left behind");
    await store.close();
  });
});

describe("file backend: commit locks", () => {
  /** The lock text of a process on this machine (or another), as file/lock.ts writes it (see docs/file.md). */
  function ownerOf(pid: number, host = hostname()): string {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const machine = machineOf(host, readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim(), readlinkSync("/proc/self/ns/pid"));
    return `${machine} ${pid} ${stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]} test.1`;
  }

  it("a put waits while a live process holds the key's lock, and takes the lock once that process died", async () => {
    const root = freshDir();
    const store = await FileStore.open({ root, names: "readable" });
    await store.put("k", text("old"));
    const holder = spawn("sleep", ["30"]);
    await once(holder, "spawn");
    await symlink(ownerOf(holder.pid!), `${valueFile(root, "k")}.lock`);
    let landed = false;
    const put = store.put("k", text("new")).then(() => (landed = true));
    await sleep(300);
    assert.equal(landed, false, "the put did not wait for the lock");
    assert.equal(Buffer.from(await store.get("k")).toString(), "old");
    const killedAt = Date.now();
    holder.kill("SIGKILL");
    await once(holder, "exit");
    await put;
    assert.ok(Date.now() - killedAt < 2000, `the dead holder's lock was taken after ${Date.now() - killedAt} ms`);
    assert.equal(Buffer.from(await store.get("k")).toString(), "new");
    await assert.rejects(lstat(`${valueFile(root, "k")}.lock`), { code: "ENOENT" });
    await store.close();
  });

  it("a lock whose holder cannot be checked is taken once older than staleLockMs", async () => {
    const root = freshDir();
    const store = await FileStore.open({ root, names: "readable", staleLockMs: 400 });
    await symlink(ownerOf(process.pid, "another-machine"), `${valueFile(root, "k")}.lock`);
    const started = Date.now();
    await store.put("k", text("v"), { ifNoneMatch: "*" });
    const waited = Date.now() - started;
    assert.ok(waited >= 300 && waited < 5000, `waited ${waited} ms for a 400 ms stale lock`);
    assert.equal(Buffer.from(await store.get("k")).toString(), "v");
    await store.close();
  });

  it("where symbolic links are refused, locks are files made with O_EXCL: a live holder's is waited for, a dead one's taken", async () => {
    const dir = freshDir();
    await mkdir(dir);
    const path = join(dir, "k.v.lock");
    const holder = spawn("sleep", ["30"]);
    await once(holder, "spawn");
    await writeFile(path, ownerOf(holder.pid!));
    let kind = "";
    const locked = withKeyLock(path, { staleMs: 30_000, links: { symlinks: false } }, async () => {
      kind = (await lstat(path)).isFile() ? "file" : "other";
    });
    await sleep(300);
    assert.equal(kind, "", "the lock of a live holder was not waited for");
    holder.kill("SIGKILL");
    await once(holder, "exit");
    await locked;
    assert.equal(kind, "file");
    await assert.rejects(lstat(path), { code: "ENOENT" }, "the lock was not released");
    await withKeyLock(path, { staleMs: 30_000, links: { symlinks: true } }, async () => {
      assert.ok((await lstat(path)).isSymbolicLink());
    });
  });

  it("a lock held past half of staleLockMs is given up (transient), not committed", async () => {
    const lease = new Lease(join(freshDir(), "x.v.lock"), 100);
    lease.check("put", "k");
    await sleep(70);
    assert.throws(() => lease.check("put", "k"), (err) => err instanceof StorageError && err.kind === "transient");
  });

  it("refuses a file that is not a lock at a lock's name", async () => {
    const root = freshDir();
    const store = await FileStore.open({ root, names: "readable" });
    await writeFile(`${valueFile(root, "k")}.lock`, "not a lock");
    await assertKind(store.put("k", text("v")), "fatal");
    await store.close();
  });
});

describe("file backend: a write whose call rejected never lands later", () => {
  it("a write past its deadline is refused (transient) and writes nothing", async () => {
    const root = freshDir();
    const store = await FileStore.open({ root, names: "readable" });
    await store.put("k", text("old"));
    await assertKind(store.put("k", text("late"), { deadline: Date.now() - 1 }), "transient");
    await assertKind(store.delete("k", { deadline: Date.now() - 1 }), "transient");
    assert.equal(Buffer.from(await store.get("k")).toString(), "old");
    assert.deepEqual((await readdir(root)).sort(), [".stowage.json", "k.v"]);
    await store.close();
  });

  // Each write is aborted at a point swept from its start to past its usual end, so the abort
  // falls on every stage: making the temp file, writing, fsync, waiting for the lock, the
  // rename, the directory fsync. The value file is read synchronously the moment the call
  // rejects, and again once every file operation has settled: a rejected write must show at
  // neither.
  for (const op of ["put", "putStream", "putMany", "delete"] as const) {
    it(`${op}: aborted at every stage, a rejected call leaves the old value, then and later`, async () => {
      const root = freshDir();
      const store = await FileStore.open({ root, names: "readable" });
      const next = text("NEW-VALUE".repeat(2000));
      const write = (key: string, signal?: AbortSignal) =>
        op === "put" ? store.put(key, next, { signal })
        : op === "putStream" ? store.putStream(key, [next.subarray(0, 9000), next.subarray(9000)], { signal })
        : op === "putMany" ? store.putMany([{ key, data: next }], { signal })
        : store.delete(key, { signal });
      // How long a write takes while the loop below spins the event loop (much longer than alone).
      const durations: number[] = [];
      for (let i = 0; i < 5; i++) {
        await store.put(`warm${i}`, text("OLD-VALUE"));
        const t0 = performance.now();
        let done = false;
        const written = write(`warm${i}`).finally(() => (done = true));
        while (!done) await turn();
        await written;
        durations.push(performance.now() - t0);
      }
      const usual = durations.sort((a, b) => a - b)[2]!;
      const steps = 60;
      let rejected = 0;
      let resolved = 0;
      // Past the schedule (a machine whose load rose since the calibration), abort ever later
      // until some write finishes first, so both outcomes are checked.
      for (let step = 0; step < steps || (resolved === 0 && step < steps * 3); step++) {
        const key = `k${step}`;
        const path = valueFile(root, key);
        await store.put(key, text("OLD-VALUE"));
        const reason = new Error("stop");
        const controller = new AbortController();
        const started = performance.now();
        const outcome = write(key, controller.signal).then(
          () => ({ ok: true, disk: onDisk(path) }),
          (err: unknown) => ({ ok: false, disk: onDisk(path), err }),
        );
        const abortAt = step < steps ? (usual * 1.5 * step) / (steps - 1) : usual * (1.5 + (step - steps + 1) * 0.25);
        while (performance.now() - started < abortAt) await turn();
        controller.abort(reason);
        const settled = await outcome;
        await sleep(20); // every file operation of the call has finished
        const later = onDisk(path);
        const changed = (disk: string) => (op === "delete" ? disk === "absent" : disk.includes("NEW-VALUE"));
        if (settled.ok) {
          resolved++;
          assert.ok(changed(later), `step ${step}: resolved but the write is not there`);
        } else {
          rejected++;
          assert.equal((settled as { err: unknown }).err, reason, `step ${step}: rejected with something else`);
          assert.ok(!changed(settled.disk), `step ${step}: rejected, yet the write had landed`);
          assert.ok(!changed(later), `step ${step}: rejected, and the write landed afterwards`);
        }
      }
      assert.ok(rejected > 0 && resolved > 0, `the aborts missed the write's stages: ${rejected} rejected, ${resolved} resolved`);
      const left = (await readdir(root, { recursive: true })).map(String).filter((p) => p.endsWith(".tmp") || p.endsWith(".lock"));
      assert.deepEqual(left, [], "temp files or locks left behind");
      await store.close();
    });
  }

  it("putMany stops at a failed condition, and nothing lands after it rejected", async () => {
    const root = freshDir();
    const store = await FileStore.open({ root, fsync: false });
    await store.put("batch/050", text("taken"));
    const entries = Array.from({ length: 200 }, (_, i) => ({ key: `batch/${String(i).padStart(3, "0")}`, data: text("v"), ifNoneMatch: "*" as const }));
    const err = await assertKind(store.putMany(entries), "conflict");
    assert.equal(err.key, "batch/050");
    const atRejection = await store.list("batch/");
    await sleep(50);
    assert.deepEqual(await store.list("batch/"), atRejection, "entries landed after the call rejected");
    assert.ok(atRejection.length < 200, "every entry was written despite the failure");
    await store.close();
  });
});
