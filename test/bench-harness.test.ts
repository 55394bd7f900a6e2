// The benchmark harness's arithmetic and drawing (not timing): statistics on known inputs,
// ratios and target verdicts, and the SVG charts being well-formed documents.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { median, percentile, ratio, summarizeLatencies } from "../src/cli/bench-stats.js";
import { checkTarget, formatBytes, runCase, type CaseResult, type CompetitorResult } from "../bench/harness.js";
import type { MachineDescription } from "../bench/machine.js";
import { mergeInto } from "../bench/merge.js";
import { escapeXml, formatTick, makeScale, renderChart } from "../bench/svg.js";
import { formatCase, formatRatio, type BenchResults } from "../bench/report.js";

describe("bench statistics", () => {
  it("computes medians and interpolated percentiles", () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(percentile([1, 2, 3, 4, 5], 0), 1);
    assert.equal(percentile([1, 2, 3, 4, 5], 100), 5);
    assert.equal(percentile([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 90), 91);
    const hundred = Array.from({ length: 101 }, (_, i) => 100 - i); // 0..100 reversed
    assert.equal(percentile(hundred, 99), 99);
    assert.ok(Number.isNaN(median([])));
    assert.throws(() => percentile([1], 101), RangeError);
  });

  it("summarizes latencies without being fooled by order", () => {
    const s = summarizeLatencies([5, 1, 4, 2, 3]);
    assert.deepEqual(s, { p50: 3, p99: 4.96, min: 1, max: 5, count: 5 });
  });

  it("computes ratios only between real measurements", () => {
    assert.equal(ratio(500, 100), 5);
    assert.equal(ratio(90, 100), 0.9);
    assert.equal(ratio(undefined, 100), undefined);
    assert.equal(ratio(100, 0), undefined);
    assert.equal(ratio(100, NaN), undefined);
  });

  it("judges targets honestly, and says why an unmeasured one is not met", () => {
    const results: CompetitorResult[] = [
      { name: "ours", opsPerSec: 4500, latencyMs: { p50: 0.0015, p99: 0.01, min: 0, max: 1, count: 9 }, peakRssGrowthBytes: 40 * 1024 * 1024 },
      { name: "seed", opsPerSec: 500 },
      { name: "raw", opsPerSec: 5100 },
      { name: "peer", skipped: "cannot load" },
    ];
    const seed = checkTarget({ issue: "#3", kind: "ratio", of: "ours", vs: "seed", atLeast: 5 }, results);
    assert.equal(seed.measured, 9);
    assert.equal(seed.met, true);
    const raw = checkTarget({ issue: "#3", kind: "ratio", of: "ours", vs: "raw", atLeast: 0.9 }, results);
    assert.ok(Math.abs((raw.measured ?? 0) - 4500 / 5100) < 1e-12);
    assert.equal(raw.met, false);
    const peer = checkTarget({ issue: "#4", kind: "ratio", of: "ours", vs: "peer", atLeast: 1 }, results);
    assert.equal(peer.met, false);
    assert.match(peer.reason ?? "", /peer skipped: cannot load/);
    // Against the slower of two sides, as measured in this run; unmeasured sides make it not met.
    const slower = checkTarget({ issue: "#23", kind: "ratio", of: "ours", vs: ["seed", "raw"], atLeast: 0.9 }, results);
    assert.equal(slower.measured, 9);
    assert.match(slower.description, /here seed/);
    const unknown = checkTarget({ issue: "#23", kind: "ratio", of: "ours", vs: ["raw", "peer"], atLeast: 0.9 }, results);
    assert.equal(unknown.met, false);
    assert.match(unknown.reason ?? "", /peer skipped/);
    assert.equal(checkTarget({ issue: "#5", kind: "latency", of: "ours", stat: "p50", atMostMs: 0.002 }, results).met, true);
    const rss = checkTarget({ issue: "#3", kind: "memory", of: "ours", belowBytes: 32 * 1024 * 1024 }, results);
    assert.equal(rss.met, false);
    assert.equal(rss.measured, 40 * 1024 * 1024);
  });

  it("runs a case: skipped and failing competitors are reported, never dropped", async () => {
    let ops = 0;
    const result = await runCase("t", {
      name: "tiny",
      rounds: 2,
      roundMs: 5,
      warmupMs: 1,
      baseline: "fine",
      competitors: [
        { name: "fine", op: async () => void ops++ },
        { name: "broken", op: async () => { throw new Error("boom"); } },
        { name: "absent", op: async () => {}, skip: "not installed" },
      ],
    }, { quick: true, rounds: 2, roundMs: 5, warmupMs: 1 });
    const [fine, broken, absent] = result.competitors;
    assert.ok(ops > 0);
    assert.equal(fine?.ratio, 1);
    assert.equal(fine?.roundOpsPerSec?.length, 2);
    assert.match(broken?.failed ?? "", /warm-up: boom/);
    assert.equal(absent?.skipped, "not installed");
  });

  it("warms up by operation count before the rounds when a case asks for it", async () => {
    let ops = 0;
    let atFirstRound = -1;
    const result = await runCase("t", {
      name: "warm",
      rounds: 1,
      roundMs: 5,
      warmupMs: 1,
      warmupOps: 3000,
      competitors: [{ name: "counted", op: () => new Promise<void>((resolve) => setImmediate(() => resolve(void ops++))), beforeRound: async () => void (atFirstRound < 0 && ops >= 3000 && (atFirstRound = ops)) }],
    }, { quick: false, rounds: 1, roundMs: 5, warmupMs: 1 });
    // beforeRound runs before each warm-up window and before the round: it first sees 3000 ops done.
    assert.ok(atFirstRound >= 3000, `ops before the round: ${atFirstRound}`);
    assert.equal(result.warmupOps, 3000);
    assert.match(formatCase(result), /warm-up of 3,000 operations/);
  });

  it("measures the process's CPU time per operation apart from its wall time", async () => {
    // Spins until this process has used `ms` of CPU (not wall time: a loaded machine may
    // deschedule it).
    const spin = (ms: number) => {
      const start = process.cpuUsage();
      for (;;) {
        const used = process.cpuUsage(start);
        if ((used.user + used.system) / 1000 >= ms) return;
      }
    };
    const result = await runCase("t", {
      name: "cpu",
      rounds: 3,
      roundMs: 30,
      warmupMs: 1,
      competitors: [
        { name: "busy", op: async () => spin(2) },
        { name: "waiting", op: () => new Promise((resolve) => setTimeout(resolve, 5)) },
      ],
    }, { quick: true, rounds: 3, roundMs: 30, warmupMs: 1 });
    const [busy, waiting] = result.competitors;
    // The process's other threads (GC, compiler) add to both; the spin's 2 ms must show as the difference.
    assert.ok((busy?.cpuMsPerOp ?? 0) >= 2, `busy: ${busy?.cpuMsPerOp} ms CPU per 2 ms spin`);
    assert.ok((waiting?.cpuMsPerOp ?? Infinity) <= (busy?.cpuMsPerOp ?? 0) - 1, `waiting: ${waiting?.cpuMsPerOp} ms CPU per 5 ms wait, busy ${busy?.cpuMsPerOp}`);
    assert.match(formatCase(result), /CPU\/op/);
  });

  it("formats sizes", () => {
    assert.equal(formatBytes(1024), "1 KiB");
    assert.equal(formatBytes(64 * 1024 * 1024), "64 MiB");
    assert.equal(formatTick(20_000, "count"), "20k");
    assert.equal(formatTick(0.5, "ms"), "500 µs");
  });

  it("formats ratios rounded down: a missed target never reads as met", () => {
    assert.equal(formatRatio(0.996), "0.99×");
    assert.equal(formatRatio(1.13), "1.13×");
    assert.equal(formatRatio(4.999), "4.99×");
    assert.equal(formatRatio(10.9), "10×");
    assert.equal(formatRatio(0.0123), "0.012×");
    assert.equal(formatRatio(undefined), "–");
  });
});

/** True when every tag opened is closed in order (enough to catch broken markup we write). */
function balanced(xml: string): boolean {
  const stack: string[] = [];
  for (const m of xml.matchAll(/<(\/?)([a-zA-Z][\w:-]*)[^>]*?(\/?)>/g)) {
    const [, closing, name, selfClosing] = m;
    if (selfClosing) continue;
    if (closing) {
      if (stack.pop() !== name) return false;
    } else stack.push(name as string);
  }
  return stack.length === 0;
}

describe("bench results merge", () => {
  const machine = (cpuModel: string, servers: Record<string, string>): MachineDescription => ({
    cpuModel,
    cpuCount: 2,
    memoryBytes: 1,
    os: "linux",
    node: "v20",
    loadAverage: { start: 0, end: 0, max: 0 },
    servers,
    packages: {},
  });
  const caseOf = (suite: string, name: string, opsPerSec: number): CaseResult => ({
    suite,
    name,
    at: "2026-01-01T00:00:00Z",
    concurrency: 1,
    rounds: 1,
    roundMs: 1,
    competitors: [{ name: "ours", opsPerSec }],
    targets: [],
  });
  const results = (cpuModel: string, servers: Record<string, string>, cases: CaseResult[], command: string): BenchResults => ({
    startedAt: "2026-01-01T00:00:00Z",
    finishedAt: "2026-01-01T01:00:00Z",
    command,
    options: { quick: false, rounds: 1, roundMs: 1, warmupMs: 1 },
    filter: [],
    machine: machine(cpuModel, servers),
    cases,
    skippedCases: [],
    charts: [],
  });

  it("replaces re-measured cases in place, keeps the rest, and remembers every machine the rows came from", () => {
    const dir = mkdtempSync(join(tmpdir(), "stowage-bench-merge-"));
    try {
      const path = join(dir, "latest.json");
      writeFileSync(path, JSON.stringify(results("AMD EPYC", { PostgreSQL: "15" }, [caseOf("nats", "get", 1), caseOf("s3", "get", 2)], "npm run bench")));
      const merged = mergeInto(path, results("Intel Xeon", { s3rver: "3.7" }, [caseOf("s3", "get", 3), caseOf("s3", "put", 4)], "npm run bench -- s3 --merge"));
      assert.deepEqual(merged.cases.map((c) => [c.suite, c.name, c.competitors[0]?.opsPerSec]), [["nats", "get", 1], ["s3", "get", 3], ["s3", "put", 4]]);
      assert.equal(merged.command, "npm run bench; npm run bench -- s3 --merge");
      assert.deepEqual(merged.machine.servers, { PostgreSQL: "15", s3rver: "3.7" });
      assert.equal(merged.machine.cpuModel, "Intel Xeon");
      assert.deepEqual(merged.machine.cpuModels, ["AMD EPYC", "Intel Xeon"]);
      writeFileSync(path, JSON.stringify(merged));
      const again = mergeInto(path, results("Intel Xeon", {}, [caseOf("s3", "put", 5)], "npm run bench -- s3 put --merge"));
      assert.deepEqual(again.machine.cpuModels, ["AMD EPYC", "Intel Xeon"], "the list is kept and not repeated");
      assert.equal(mergeInto(join(dir, "missing.json"), merged), merged, "a missing file merges into nothing");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("bench charts", () => {
  it("renders a well-formed SVG document with axes, series and legend", () => {
    const svg = renderChart({
      id: "t",
      title: "list <time> & size",
      x: { label: "keys in store", unit: "count", log: true },
      y: { label: "ms per list", unit: "ms", log: true },
      series: [
        { name: "stowage", points: [{ x: 1000, y: 0.5 }, { x: 10000, y: 0.6 }, { x: 100000, y: 0.7 }] },
        { name: "seed", points: [{ x: 1000, y: 12 }, { x: 10000, y: 130 }, { x: 100000, y: 1400 }] },
      ],
    });
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.ok(svg.trimEnd().endsWith("</svg>"));
    assert.ok(balanced(svg), "tags balance");
    assert.ok(svg.includes("list &lt;time&gt; &amp; size"), "title escaped");
    assert.equal((svg.match(/<polyline /g) ?? []).length, 2);
    assert.ok(svg.includes(">1k<") && svg.includes(">100k<"), "log ticks at powers of ten");
    assert.ok(!/NaN|undefined|Infinity/.test(svg));
  });

  it("maps log scales monotonically onto pixels", () => {
    const s = makeScale([1024, 64 * 1024 * 1024], { label: "size", unit: "bytes", log: true }, 0, 100);
    assert.ok(s.map(1024) <= s.map(1024 * 1024) && s.map(1024 * 1024) <= s.map(64 * 1024 * 1024));
    assert.equal(s.map(s.ticks[0] as number), 0);
    assert.equal(s.map(s.ticks[s.ticks.length - 1] as number), 100);
    assert.equal(escapeXml(`a"b'<>&`), "a&quot;b&apos;&lt;&gt;&amp;");
  });
});
