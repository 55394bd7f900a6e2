/**
 * Mirror lag (issue #23), part of `npm run bench -- move`: a steady 500 puts/s of 1 KiB go into
 * a nats: store, mirrored into a postgres: table. Each operation is a probe: one more put of
 * 1 KiB into the source, timed until the mirror reports it applied to PostgreSQL, so the
 * operation's latency is the lag of a change under that load (the probes add about one put per
 * lag to the 500/s). The p99 target is 1 s.
 */
import { Mirror, openStore } from "../../dist/index.js";
import type { Store } from "../../src/types.js";
import pg from "pg";
import { defineSuite, KiB } from "../harness.js";
import { removeStreams } from "../nats-clients.js";
import { pattern } from "../standard.js";
import { connect } from "@nats-io/transport-node";

const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const DATABASE_URL = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
const OURS = "stowage mirror (watch -> postgres)";
const RATE = 500;

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export default defineSuite("move", async (b) => {
  const name = `move mirror lag at ${RATE} puts/s x 1 KiB nats -> postgres`;
  if (!b.wants(name)) return;
  const marker = `bench${process.pid}m${Math.random().toString(36).slice(2, 7)}`;
  const table = `${marker}_mirror`;
  let nc;
  try {
    nc = await connect({ servers: NATS_URL, timeout: 3000 });
  } catch (err) {
    b.skip(name, `no NATS server at ${NATS_URL}: ${message(err)}`);
    return;
  }
  const admin = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
  try {
    await admin.query("SELECT 1");
  } catch (err) {
    await nc.close();
    await admin.end();
    b.skip(name, `no PostgreSQL at ${DATABASE_URL.replace(/:[^:@/]*@/, ":***@")}: ${message(err)} (set DATABASE_URL)`);
    return;
  }
  const stores: Store[] = [];
  const stop = new AbortController();
  let load: Promise<void> | undefined;
  try {
    const source = await openStore(`${NATS_URL.replace(/\/$/, "")}/${marker}_mirror`);
    const destination = await openStore(`${DATABASE_URL}${DATABASE_URL.includes("?") ? "&" : "?"}table=${table}`);
    stores.push(source, destination);
    const waiting = new Map<string, () => void>();
    const mirror = new Mirror(source, destination, {
      prefix: "lag/",
      concurrency: Number(process.env.MIRROR_CONCURRENCY ?? 16),
      signal: stop.signal,
      onEvent: (event) => {
        if (event.type === "applied") waiting.get(event.key)?.();
      },
    });
    const running = mirror.run();
    running.catch(() => undefined);
    while (mirror.status().phase !== "following") await new Promise((resolve) => setTimeout(resolve, 50));

    // The steady load: RATE puts/s, paced by the clock (a late put is sent at once, not skipped).
    const value = pattern(KiB, 1);
    load = (async () => {
      const start = performance.now();
      for (let i = 0; !stop.signal.aborted; i++) {
        const due = start + (i * 1000) / RATE;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        void source.put(`lag/load/${i % 5000}`, value).catch(() => undefined);
      }
    })();
    let maxLag = 0;
    const sampler = setInterval(() => (maxLag = Math.max(maxLag, mirror.lagSeconds())), 100);
    const probe = pattern(KiB, 2);
    const result = await b.run({
      name,
      bytesPerOp: KiB,
      rounds: b.scale(4, 2),
      roundMs: b.scale(5000, 1500),
      warmupMs: 1000,
      competitors: [
        {
          name: OURS,
          op: async (i) => {
            const key = `lag/probe/${i}`;
            const applied = new Promise<void>((resolve) => waiting.set(key, resolve));
            await source.put(key, probe);
            await applied;
            waiting.delete(key);
          },
        },
      ],
      targets: [{ issue: "#23", kind: "latency", of: OURS, stat: "p99", atMostMs: 1000 }],
      note: `While ${RATE} puts/s of 1 KiB flow into NATS (a paced loop), each operation puts one more key and waits until the mirror has written it to PostgreSQL: its latency is the lag of one change. Mirror defaults (16 appliers, each change: stat and read from NATS, stat, compare and write in PostgreSQL).`,
    });
    clearInterval(sampler);
    if (result) console.log(`  largest stowage_mirror_lag_seconds seen: ${maxLag.toFixed(3)} s`);
    stop.abort();
    await load;
    await running;
  } finally {
    stop.abort();
    await load?.catch(() => undefined);
    for (const store of stores) await store.close().catch(() => undefined);
    await admin.query(`DROP TABLE IF EXISTS "${table}", "${table}_versions", "${table}_chunks" CASCADE; DROP SEQUENCE IF EXISTS "${table}_version_seq"`).catch(() => undefined);
    await admin.end();
    await removeStreams(nc, marker).catch(() => undefined);
    await nc.close();
  }
});
