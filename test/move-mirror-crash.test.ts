/**
 * The mirror process killed (SIGKILL) ten times at random moments while puts and deletes flow
 * into the source, and started again each time: once the writes stop, the destination holds
 * exactly what the source holds (no key lost, no delete missed).
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore, type Store } from "../src/index.js";
import { patterned } from "../src/testing/helpers.js";
import { natsServerBinary, startNatsServer, type NatsServerHandle } from "./fixtures/nats.js";
import { waitConverged } from "./fixtures/mirror.js";
import { dropStoreTables, findPostgres, storeUrl as postgresUrl, uniqueTable } from "./fixtures/postgres.js";
import { runStowage, type ServeProcess } from "./fixtures/serve-process.js";
import { unavailable } from "./fixtures/services.js";

const PUTS = 2000;
const DELETES = 200;
const KILLS = 10;

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

const noNats = natsServerBinary() ? undefined : unavailable("nats-server", "install nats-server to run the mirror crash test");
const pg = await findPostgres();

async function destinationUrl(kind: "file" | "postgres"): Promise<string> {
  if (kind === "file") {
    const dir = await mkdtemp(join(tmpdir(), "stowage-mirror-crash-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return `file:${dir}`;
  }
  if ("skip" in pg) throw new Error(pg.skip);
  const table = uniqueTable("stowage_mirror_crash");
  cleanups.push(() => dropStoreTables(pg.url, [table]));
  return postgresUrl(pg.url, { table });
}

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
}

/** Writes PUTS values and deletes DELETES of them, spread over about `spreadMs`. */
async function writeLoad(source: Store, spreadMs: number): Promise<void> {
  const pause = spreadMs / (PUTS / 20);
  for (let i = 0; i < PUTS; i++) {
    // Every fifth key is written twice: an overwrite with other bytes and metadata.
    await source.put(`load/${i % 1700}`, patterned(1024 + (i % 7), i), { metadata: { i: String(i) } });
    if (i % 10 === 9) await source.delete(`load/${Math.floor(i / 10) * 8}`);
    if (i % 20 === 19) await new Promise((resolve) => setTimeout(resolve, pause));
  }
}

for (const kind of ["postgres"] as const) {
  const skip = noNats ?? (kind === "postgres" && "skip" in pg ? pg.skip : false);
  describe(`mirror process killed ${KILLS} times: NATS -> ${kind}`, { skip }, () => {
    it(`${PUTS} puts and ${DELETES} deletes flow meanwhile; the destination converges to the source`, { timeout: 90_000 }, async () => {
      const nats: NatsServerHandle = await startNatsServer();
      cleanups.push(() => nats.destroy());
      const sourceUrl = `${nats.url}/MIRROR_CRASH`;
      const source = await openStore(sourceUrl);
      cleanups.push(() => source.close());
      const toUrl = await destinationUrl(kind);
      const args = ["mirror", "--from", sourceUrl, "--to", toUrl, "--prefix", "load/", "--deletes", "--name", "crash", "--status-interval", "1s", "--safety-margin", "2s"];

      const started = Date.now();
      const writing = writeLoad(source, 45_000).then(() => console.log(`writes done after ${Date.now() - started} ms`));
      let kills = 0;
      let running: ServeProcess | undefined;
      while (kills < KILLS) {
        const process = (running = runStowage(args));
        // A random moment: the first time and every other time once it follows the source
        // (so later starts resume from a checkpoint), else during start-up or the catch-up.
        if (kills === 0 || Math.random() < 0.5) await until(() => /^following /m.test(process.stdout()), 20_000);
        // The first one lives past its first checkpoint (written as it starts following), so the
        // last restart surely has one to resume from, however the random kills fall after it.
        await new Promise((resolve) => setTimeout(resolve, kills === 0 ? 3000 : Math.random() * 2000));
        process.child.kill("SIGKILL");
        await process.exited;
        kills++;
      }
      await writing;
      const deleted = Math.floor(PUTS / 10);
      assert.equal(deleted, DELETES);

      console.log(`kills done after ${Date.now() - started} ms`);
      running = runStowage(args);
      const destination = await openStore(toUrl);
      cleanups.push(() => destination.close());
      try {
        const keys = await waitConverged(source, "load/", destination, "load/", Math.max(5000, 80_000 - (Date.now() - started)));
        assert.ok(keys > 1000, `keys: ${keys}`);
        console.log(`converged after ${Date.now() - started} ms; stdout: ${running.stdout()}`);
      } catch (err) {
        const theirs = new Set(await source.list("load/"));
        const ours = new Set(await destination.list("load/"));
        const lost = [...theirs].filter((k) => !ours.has(k));
        const missed = [...ours].filter((k) => !theirs.has(k));
        assert.fail(`not converged: ${lost.length} keys lost (${lost.slice(0, 5).join(", ")}), ${missed.length} deletes missed (${missed.slice(0, 5).join(", ")}); ${(err as Error).message.slice(0, 300)}\nstderr: ${running.stderr().slice(-2000)}`);
      }
      assert.equal(await running.stop("SIGTERM"), 0, `a clean stop exits 0; stderr: ${running.stderr().slice(-1000)}`);
      assert.match(running.stdout(), /^catch-up copy: .*\nreconciled: .*\nfollowing /m, `the restart resumed from the checkpoint; stdout: ${running.stdout()}`);
      assert.ok(Date.now() - started < 90_000);
    });
  });
}
