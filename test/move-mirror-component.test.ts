/**
 * Mirror and retention run by the storage component from its configuration: a file store at
 * the edge (polled) mirrored into PostgreSQL, old keys aged out locally; health and metrics
 * report the mirror's lag and the last prune, and never the destination's password.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore, StorageComponent, resolveConfig, type Logger, type Store } from "../src/index.js";
import { sharedNats } from "./fixtures/nats.js";
import { waitConverged } from "./fixtures/mirror.js";
import { dropStoreTables, findPostgres, storeUrl as postgresUrl, uniqueTable } from "./fixtures/postgres.js";
import { uniqueName, waitFor } from "./fixtures/services.js";

const nats = await sharedNats();
const pg = await findPostgres();
const skip = nats === undefined ? "no NATS server" : "skip" in pg ? pg.skip : false;
const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

const enc = (text: string) => new TextEncoder().encode(text);

describe("component: mirror and retention from the configuration", { skip }, () => {
  it("mirrors the served store into PostgreSQL and prunes old keys; health and metrics show lag and the last prune", { timeout: 60_000 }, async () => {
    if (nats === undefined || "skip" in pg) return;
    const dir = await mkdtemp(join(tmpdir(), "stowage-edge-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const table = uniqueTable("stowage_mirror_component");
    cleanups.push(() => dropStoreTables(pg.url, [table]));
    // Trust authentication ignores the password: it is there to be kept out of health and logs.
    const cloud = new URL(postgresUrl(pg.url, { table }));
    cloud.password = "s3cret-pw";
    const logged: string[] = [];
    const logger: Logger = {
      info: (msg, fields) => logged.push(`${msg} ${JSON.stringify(fields)}`),
      warn: (msg, fields) => logged.push(`${msg} ${JSON.stringify(fields)}`),
      error: (msg, fields) => logged.push(`${msg} ${JSON.stringify(fields)}`),
    };
    const name = uniqueName("edge").replace(/[^-\w]/g, "_");
    const component = new StorageComponent({
      config: {
        name,
        store: `file:${dir}`,
        nats: { servers: nats },
        metrics_port: 0,
        mirror: [{ to: cloud.href, prefix: "messages/", deletes: true, interval: "200ms" }],
        retention: [{ prefix: "scratch/", max_age: "2s" }],
        retention_interval: "1s",
      },
      logger,
    });
    cleanups.push(() => component.stop(2000));
    await component.start();
    const edge = component.store!;
    const destination: Store = await openStore(postgresUrl(pg.url, { table }));
    cleanups.push(() => destination.close());

    for (let i = 0; i < 20; i++) await edge.put(`messages/2026/${i}`, enc(`message ${i}`), { metadata: { i: String(i) } });
    await edge.put("scratch/old", enc("aged out"));
    await waitConverged(edge, "messages/", destination, "messages/");
    await edge.delete("messages/2026/3");
    await waitConverged(edge, "messages/", destination, "messages/");
    await waitFor("retention to delete scratch/old", async () => (await edge.list("scratch/")).length === 0, 15_000);
    // The key goes before the prune's run ends; health, metrics and the log follow at its end.
    await waitFor("the prune's run to end", async () => logged.some((line) => line.includes("retention: pruned")), 15_000);

    const health = component.health();
    const mirror = health.mirrors?.[0];
    assert.equal(mirror?.name, `${name}-0`);
    assert.equal(mirror?.state, "following");
    assert.ok(mirror !== undefined && mirror.lagSeconds < 5, `lag ${mirror?.lagSeconds}`);
    assert.match(mirror!.to, /postgres:\/\/[^@]*\*\*\*@/);
    const prune = health.retention?.[0];
    assert.equal(prune?.prefix, "scratch/");
    assert.ok(prune?.lastRun !== undefined);
    assert.equal(component.describe().health.mirrors?.length, 1);

    const metrics = await (await fetch(component.metricsUrl!)).text();
    assert.match(metrics, new RegExp(`stowage_mirror_lag_seconds\\{mirror="${name}-0"\\} \\d`));
    assert.match(metrics, new RegExp(`stowage_retention_last_run_timestamp_seconds\\{component="${name}",prefix="scratch/"\\} \\d`));
    assert.match(metrics, new RegExp(`stowage_retention_deleted_total\\{component="${name}",prefix="scratch/"\\} 1`));

    for (const text of [JSON.stringify(component.describe()), logged.join("\n"), metrics]) assert.doesNotMatch(text, /s3cret-pw/);
    await component.stop(2000);
    assert.ok((await destination.stat(`.stowage/mirror/${name}-0`)).size > 0, "the mirror's checkpoint is in the destination");
  });

  it("refuses mirrors that share a name, and too short intervals", () => {
    assert.throws(() => resolveConfig({ mirror: [{ to: "memory:", name: "a" }, { to: "memory:", name: "a" }] }), /mirror\[1\]\.name/);
    assert.throws(() => resolveConfig({ retention: [{ prefix: "x/", max_age: "1d" }], retention_interval: "10ms" }), /retention_interval/);
    assert.throws(() => resolveConfig({ retention: [{ prefix: "x/", max_age: "soon" }] }), /retention\[0\]\.max_age/);
  });
});
