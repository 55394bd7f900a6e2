/**
 * The mirror's destination (PostgreSQL) behind a TCP proxy the test controls: cut off for 20 s
 * while puts and deletes flow into the source (NATS), then its replies held past the store's
 * deadline and delayed; each time the mirror keeps every change and catches up once the
 * destination answers again.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { openStore, type Store } from "../src/index.js";
import { patterned } from "../src/testing/helpers.js";
import { startMirror, waitConverged } from "./fixtures/mirror.js";
import { dropNatsBucket, sharedNats } from "./fixtures/nats.js";
import { dropStoreTables, findPostgres, storeUrl as postgresUrl, uniqueTable } from "./fixtures/postgres.js";
import { uniqueName } from "./fixtures/services.js";
import { startTcpProxy } from "./fixtures/tcp-proxy.js";

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

const pg = await findPostgres();
const nats = await sharedNats();
const skip = "skip" in pg ? pg.skip : nats === undefined ? "no NATS server" : false;

/** Puts (and every fourth time deletes) keys under `prefix` for `ms`, a few per 100 ms. */
async function flow(source: Store, prefix: string, ms: number): Promise<number> {
  const end = Date.now() + ms;
  let i = 0;
  while (Date.now() < end) {
    await source.put(`${prefix}${i % 150}`, patterned(512 + (i % 5), i), { metadata: { i: String(i) } });
    if (i % 4 === 3) await source.delete(`${prefix}${(i * 7) % 150}`);
    i++;
    if (i % 5 === 0) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return i;
}

describe("mirror: the destination behind a proxy", { skip }, () => {
  it("cut off for 20 s while puts flow, then held past its deadline and delayed: the mirror catches up each time", { timeout: 150_000 }, async () => {
    if ("skip" in pg || nats === undefined) return;
    const pgUrl = new URL(pg.url);
    const proxy = await startTcpProxy(pgUrl.hostname, Number(pgUrl.port || 5432));
    cleanups.push(() => proxy.close());
    const table = uniqueTable("stowage_mirror_proxy");
    cleanups.push(() => dropStoreTables(pg.url, [table]));
    pgUrl.host = `127.0.0.1:${proxy.port}`;
    // A deadline per call: a held reply fails the call (transient) instead of hanging the mirror.
    const destination = await openStore(postgresUrl(pgUrl.href, { table }), { timeout: 2000 });
    cleanups.push(() => destination.close());
    const bucket = uniqueName("stowage_mirror_proxy").replace(/[^-\w]/g, "_");
    cleanups.push(() => dropNatsBucket(nats, bucket));
    const source = await openStore(`${nats}/${bucket}`);
    cleanups.push(() => source.close());

    const running = startMirror(source, destination, { prefix: "p/", deletes: true, name: "proxy", safetyMarginMs: 2000 });
    cleanups.push(() => running.stop());
    await running.following;
    await flow(source, "p/", 1000);
    await waitConverged(source, "p/", destination, "p/");

    // Cut off: every connection dropped, new ones refused, for 20 s of writes.
    proxy.refuse(true);
    proxy.cut();
    const written = await flow(source, "p/", 20_000);
    assert.ok(written > 50, `writes during the outage: ${written}`);
    const behind = running.mirror.status();
    assert.ok(behind.lagSeconds > 5, `lag during the outage: ${behind.lagSeconds}`);
    assert.ok(behind.lastError !== undefined, "the outage is reported");
    proxy.refuse(false);
    await waitConverged(source, "p/", destination, "p/", 30_000);

    // Replies held past the 2 s deadline while writes go on, then released.
    proxy.hold("down");
    await flow(source, "p/", 4000);
    proxy.release();
    await waitConverged(source, "p/", destination, "p/", 30_000);

    // Every byte delayed by 100 ms each way: slower, but it keeps up (checked without the delay,
    // which would slow the comparison more than the mirror).
    proxy.delay("both", 100);
    await flow(source, "p/", 3000);
    const deadline = Date.now() + 30_000;
    while (running.mirror.status().pending > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    proxy.delay("both", 0);
    await waitConverged(source, "p/", destination, "p/", 30_000);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.ok(running.mirror.lagSeconds() < 2, `caught up: lag ${running.mirror.lagSeconds()}`);
    const summary = await running.stop();
    assert.equal(summary.failed, 0);
    assert.ok(running.events.some((e) => e.type === "retrying"), "retries while the destination was away");
  });
});
