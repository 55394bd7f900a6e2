/**
 * Crash safety of the file backend: a child process writing in a loop is killed with SIGKILL
 * at random moments; after every kill each key must hold a complete value that an acknowledged
 * or the in-flight operation wrote (never a torn or mixed one), no temp file may be listed, and
 * the store must open fine.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileStore, StorageError, compareKeys } from "../src/index.js";
import { CRASH_KEYS, checkValue } from "./fixtures/file-writer.js";
import { setTimeout as sleep } from "node:timers/promises";

const MIN_KILLS = 20;
const MAX_KILLS = 30;
const BUDGET_MS = 40_000;
const WARM_WRITERS = 3;

interface Op {
  seq: number;
  op: "put" | "del";
  key: number;
  ended: boolean;
}

/** The operations the child logged, in order; the last may be unfinished. */
async function readLog(path: string): Promise<Op[]> {
  const ops: Op[] = [];
  const bySeq = new Map<number, Op>();
  for (const line of (await readFile(path, "utf8").catch(() => "")).split("\n")) {
    const [word, seq, op, key] = line.split(" ");
    if (word === "begin") {
      const entry: Op = { seq: Number(seq), op: op as Op["op"], key: Number(key), ended: false };
      ops.push(entry);
      bySeq.set(entry.seq, entry);
    } else if (word === "end") {
      bySeq.get(Number(seq))!.ended = true;
    }
  }
  return ops;
}

/** What each key may hold now: the result of its last finished operation, or of the one in flight. */
function allowedStates(ops: Op[]): Set<number | "absent">[] {
  const allowed = CRASH_KEYS.map(() => new Set<number | "absent">());
  const last: (number | "absent")[] = CRASH_KEYS.map(() => "absent");
  for (const op of ops) if (op.ended) last[op.key] = op.op === "put" ? op.seq : "absent";
  last.forEach((state, i) => allowed[i]!.add(state));
  for (const op of ops) if (!op.ended) allowed[op.key]!.add(op.op === "put" ? op.seq : "absent");
  return allowed;
}

async function locksUnder(dir: string): Promise<number> {
  return (await readdir(dir, { recursive: true })).filter((p) => String(p).endsWith(".lock")).length;
}

async function tempFilesUnder(dir: string): Promise<number> {
  return (await readdir(dir, { recursive: true })).filter((p) => String(p).endsWith(".tmp")).length;
}

describe("file backend crash safety", () => {
  it(`SIGKILLs a writing child at least ${MIN_KILLS} times; every key stays complete`, async (t) => {
    const base = await mkdtemp(join(tmpdir(), "stowage-crash-"));
    const root = join(base, "store");
    const log = join(base, "ops.log");
    const started = Date.now();
    let kills = 0;
    let killedMidOperation = 0;
    let keysVerified = 0;
    let torn = 0;
    let opsFinished = 0;
    let nextSeq = 1;
    let waitedForWriters = 0;
    let checking = 0;
    const warm: { process: ChildProcess }[] = [];
    const startWriter = () => ({
      process: spawn(process.execPath, ["--import", "tsx", "test/fixtures/file-writer.ts", root, log], { stdio: ["pipe", "ignore", "inherit"] }),
    });
    try {
      while (kills < MAX_KILLS && (kills < MIN_KILLS || Date.now() - started < BUDGET_MS)) {
        // The first seq is given at "go" time: earlier writers may have used any before it.
        // Writers start up (slowly: node + tsx) while earlier ones run; a few in reserve keep kills frequent.
        while (warm.length < WARM_WRITERS + 1) warm.push(startWriter());
        const child = warm.shift()!;
        const exited = once(child.process, "exit");
        child.process.stdin!.end(`${nextSeq}\n`);
        // Let it start writing, then kill it somewhere in its loop.
        const deadline = Date.now() + 20_000;
        const goAt = Date.now();
        while ((await readLog(log)).every((op) => op.seq < nextSeq) && Date.now() < deadline) await sleep(10);
        waitedForWriters += Date.now() - goAt;
        await sleep(Math.random() * 300);
        child.process.kill("SIGKILL");
        const [code, signal] = (await exited) as [number | null, string | null];
        assert.equal(signal, "SIGKILL", `the writer ended on its own (exit code ${code}) instead of being killed`);
        kills++;

        const ops = await readLog(log);
        assert.ok(ops.length > 0, "the writer never started");
        nextSeq = ops[ops.length - 1]!.seq + 1;
        opsFinished = ops.filter((op) => op.ended).length;
        if (ops.some((op) => !op.ended)) killedMidOperation++;

        const checkAt = Date.now();
        const store = await FileStore.open({ root, sweepOnOpen: false });
        const allowed = allowedStates(ops);
        const present: string[] = [];
        for (const [i, key] of CRASH_KEYS.entries()) {
          let state: number | "absent";
          try {
            const seq = checkValue(await store.get(key));
            if (seq === undefined) {
              torn++;
              assert.fail(`torn value at ${key} after kill ${kills}`);
            }
            state = seq;
            present.push(key);
          } catch (err) {
            if (!(err instanceof StorageError && err.kind === "not_found")) throw err;
            state = "absent";
          }
          assert.ok(allowed[i]!.has(state), `${key} holds ${state}, expected one of ${[...allowed[i]!].join(", ")} (kill ${kills})`);
          keysVerified++;
        }
        const listed = await store.list();
        assert.deepEqual(listed, present.sort(compareKeys), "listing differs from the keys that hold values");
        assert.ok(listed.every((k) => !k.includes(".tmp")), "a temp file was listed");
        await store.close();
        checking += Date.now() - checkAt;
      }
      // Abandoned temp files are swept by age; with age 0 every one goes.
      const store = await FileStore.open({ root, sweepOnOpen: false });
      const swept = await store.sweepTempFiles(0);
      assert.equal(await tempFilesUnder(root), 0);
      // A writer killed while holding a key's commit lock left the lock: its process is dead, so
      // the next write of the key takes it at once (well within staleLockMs).
      const locksLeft = await locksUnder(root);
      const writesAt = Date.now();
      for (const key of CRASH_KEYS) await store.put(key, Buffer.from("after"), { signal: AbortSignal.timeout(5000) });
      assert.ok(Date.now() - writesAt < 5000);
      assert.equal(await locksUnder(root), 0, "a lock outlived the writes of its key");
      await store.close();
      t.diagnostic(
        `kills=${kills} killed-mid-operation=${killedMidOperation} operations-finished=${opsFinished} keys-verified=${keysVerified} ` +
          `torn=${torn} temp-files-left-by-kills=${swept} (swept) locks-left-by-kills=${locksLeft} (taken) seconds=${((Date.now() - started) / 1000).toFixed(1)} ` +
          `(waiting for writers to start ${(waitedForWriters / 1000).toFixed(1)} s, checking ${(checking / 1000).toFixed(1)} s)`,
      );
      assert.ok(kills >= MIN_KILLS);
      assert.equal(torn, 0);
    } finally {
      for (const child of warm) child.process.kill("SIGKILL");
      await Promise.all(warm.map((child) => (child.process.exitCode === null ? once(child.process, "exit") : undefined)));
      await rm(base, { recursive: true, force: true });
    }
  });
});
