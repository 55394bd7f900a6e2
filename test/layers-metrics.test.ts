import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { MemoryStore, openStore, StorageError } from "../src/index.js";
import { withCache, withMetrics } from "../src/layers/index.js";
import { assertKind, text } from "../src/testing/helpers.js";

/** Parses Prometheus text into { "name{labels}": value } (labels in their printed order). */
function samples(exposition: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of exposition.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    out.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return out;
}

/** The value of the sample `name` whose labels include all of `labels`. */
function value(all: Map<string, number>, name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const [series, v] of all) {
    const brace = series.indexOf("{");
    const seriesName = brace < 0 ? series : series.slice(0, brace);
    if (seriesName !== name) continue;
    const parts = brace < 0 ? [] : series.slice(brace + 1, -1).split(",");
    if (wanted.every((w) => parts.includes(w))) return v;
  }
  return undefined;
}

describe("metrics layer", () => {
  it("counts operations by outcome, errors by kind, bytes, and latency", async () => {
    const registry = new Registry();
    const store = withMetrics(new MemoryStore(), { registry, labels: { backend: "memory", bucket: "b1" } });
    await store.put("a", text("12345"));
    await store.put("b", text("xyz"));
    await store.get("a");
    await assertKind(store.get("missing"), "not_found");
    await assertKind(store.get("/bad"), "invalid"); // refused before the layer: not an operation
    await store.list("");
    await store.delete("a");
    const aborted = new AbortController();
    aborted.abort(new Error("stop"));
    await assert.rejects(store.get("b", { signal: aborted.signal }), /stop/);

    const all = samples(await registry.metrics());
    const base = { backend: "memory", bucket: "b1" };
    assert.equal(value(all, "stowage_operations_total", { ...base, op: "put", outcome: "ok" }), 2);
    assert.equal(value(all, "stowage_operations_total", { ...base, op: "get", outcome: "ok" }), 1);
    assert.equal(value(all, "stowage_operations_total", { ...base, op: "get", outcome: "not_found" }), 1);
    assert.equal(value(all, "stowage_operations_total", { ...base, op: "list", outcome: "ok" }), 1);
    assert.equal(value(all, "stowage_operations_total", { ...base, op: "delete", outcome: "ok" }), 1);
    assert.equal(value(all, "stowage_operations_total", { ...base, op: "get", outcome: "invalid" }), undefined);
    assert.equal(value(all, "stowage_errors_total", { ...base, op: "get", kind: "not_found" }), 1);
    assert.equal(value(all, "stowage_bytes_written_total", base), 8);
    assert.equal(value(all, "stowage_bytes_read_total", base), 5);
    assert.equal(value(all, "stowage_operation_duration_seconds_count", { ...base, op: "get" }), 2);
    assert.equal(value(all, "stowage_operation_duration_seconds_count", { ...base, op: "put" }), 2);
    assert.equal(value(all, "stowage_operation_duration_seconds_bucket", { ...base, op: "put", le: "+Inf" }), 2);
    assert.equal(value(all, "stowage_operation_duration_seconds_bucket", { ...base, op: "put", le: "0.00005" }) !== undefined, true, "buckets start at 50 µs");
    assert.equal(value(all, "stowage_operation_duration_seconds_bucket", { ...base, op: "put", le: "10" }), 2);
    assert.ok((value(all, "stowage_operation_duration_seconds_sum", { ...base, op: "put" }) ?? -1) >= 0);
  });

  it("counts an operation aborted in flight as aborted", async () => {
    const registry = new Registry();
    const store = withMetrics(new MemoryStore(), { registry });
    const controller = new AbortController();
    const big = new Uint8Array(1024);
    const put = store.putStream("k", (async function* () {
      yield big;
      controller.abort(new Error("caller gave up"));
      yield big;
    })(), { signal: controller.signal });
    await assert.rejects(put, /caller gave up/);
    await new Promise((r) => setTimeout(r, 10));
    const all = samples(await registry.metrics());
    assert.equal(value(all, "stowage_operations_total", { op: "putStream", outcome: "aborted" }), 1);
    assert.equal(value(all, "stowage_errors_total", { op: "putStream", kind: "aborted" }), 1);
  });

  it("exports the cache's hits, misses, evictions, entries and bytes beneath it", async () => {
    const registry = new Registry();
    const store = withMetrics(withCache(new MemoryStore(), { maxEntries: 2, strategy: "lru", invalidateFromWatch: false }), { registry, labels: { bucket: "c" } });
    await store.put("a", text("aa"));
    await store.get("a");
    await store.get("a");
    await store.put("b", text("bbb"));
    await store.put("c", text("cccc")); // evicts a
    await store.get("a"); // miss
    let all = samples(await registry.metrics());
    const base = { backend: "memory", bucket: "c" };
    assert.equal(value(all, "stowage_cache_hits_total", base), 2);
    assert.equal(value(all, "stowage_cache_misses_total", base), 1);
    assert.equal(value(all, "stowage_cache_evictions_total", base), 2, "a for c, then b for a");
    assert.equal(value(all, "stowage_cache_entries", base), 2);
    assert.equal(value(all, "stowage_cache_bytes", base), 4 + 2);
    assert.equal(value(all, "stowage_operations_total", { ...base, op: "get", outcome: "ok" }), 3, "hits are operations too");
    await store.get("a");
    all = samples(await registry.metrics());
    assert.equal(value(all, "stowage_cache_hits_total", base), 3, "counts advance between scrapes");
    await store.close();
  });

  it("lets several stores share a registry, told apart by labels", async () => {
    const registry = new Registry();
    const one = withMetrics(new MemoryStore(), { registry, labels: { bucket: "one" } });
    const two = withMetrics(new MemoryStore(), { registry, labels: { bucket: "two" } });
    await one.put("k", text("v"));
    await two.put("k", text("v"));
    await two.put("k", text("v"));
    const all = samples(await registry.metrics());
    assert.equal(value(all, "stowage_operations_total", { bucket: "one", op: "put" }), 1);
    assert.equal(value(all, "stowage_operations_total", { bucket: "two", op: "put" }), 2);
  });

  it("uses the prefix and refuses clashes and bad prefixes", async () => {
    const registry = new Registry();
    const store = withMetrics(new MemoryStore(), { registry, prefix: "app_storage_" });
    await store.put("k", text("v"));
    assert.match(await registry.metrics(), /^app_storage_operations_total\{.*op="put",outcome="ok"\} 1$/m);
    const clash = new Registry();
    clash.registerMetric(new (await import("prom-client")).Counter({ name: "stowage_operations_total", help: "someone else's", registers: [] }));
    assert.throws(() => withMetrics(new MemoryStore(), { registry: clash }), (e: unknown) => e instanceof StorageError && e.kind === "invalid");
    assert.throws(() => withMetrics(new MemoryStore(), { registry, prefix: "bad prefix" }), /prefix/);
  });

  it("openStore stacks metrics outermost with labels from the URL", async () => {
    const registry = new Registry();
    const store = await openStore("memory:", { cache: { invalidateFromWatch: false }, metrics: { registry } });
    await store.put("k", text("v"));
    await store.get("k");
    const all = samples(await registry.metrics());
    assert.equal(value(all, "stowage_cache_hits_total", { backend: "memory", bucket: "" }), 1);
    assert.equal(value(all, "stowage_operations_total", { backend: "memory", op: "get", outcome: "ok" }), 1);
    await store.close();
  });
});
