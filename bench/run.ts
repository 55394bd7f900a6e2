/**
 * `npm run bench [-- [--quick] [--out FILE] [--write-docs] [suite…] [case words…]]`
 *
 * Runs the suites in `bench/cases/*.ts` and `bench/*.bench.ts`. Arguments that name a suite
 * select suites (`nats`, `postgres`…); any other word selects the cases whose name contains it
 * (`list`, `1 KiB`, `get`). `npm run bench -- nats list` runs the NATS list cases only.
 *
 * A full run (no filter, no --quick) writes bench/results/latest.json, the charts in docs/ and
 * BENCHMARKS.md; other runs write bench/results/partial.json unless --out/--write-docs say otherwise.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createContext, FULL_OPTIONS, QUICK_OPTIONS, type CaseResult, type ChartData, type Sink, type Suite } from "./harness.js";
import { mergeInto } from "./merge.js";
import { describeMachine, noteLoad } from "./machine.js";
import { formatCase, formatTargetSummary, writeCharts, writeJson, type BenchResults } from "./report.js";
import { writeBenchmarksMarkdown } from "./benchmarks-md.js";

const benchDir = fileURLToPath(new URL(".", import.meta.url));
const rootDir = join(benchDir, "..");

interface Args {
  quick: boolean;
  out?: string;
  writeDocs: boolean;
  merge: boolean;
  reportOnly: boolean;
  words: string[];
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, writeDocs: false, merge: false, reportOnly: false, words: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "--quick") args.quick = true;
    else if (a === "--write-docs") args.writeDocs = true;
    else if (a === "--merge") args.merge = true;
    else if (a === "--report-only") args.reportOnly = true;
    else if (a === "--out") args.out = argv[++i];
    else if (a === "--help" || a === "-h") {
      console.log("usage: npm run bench -- [--quick] [--out FILE] [--write-docs] [--merge] [--report-only] [suite…] [case words…]\n  --merge: replace these cases in bench/results/latest.json (keeping the others) and rewrite the docs from it");
      process.exit(0);
    } else if (a.startsWith("--")) {
      console.error(`unknown option ${a}; see --help`);
      process.exit(2);
    } else args.words.push(a);
  }
  return args;
}

/** Suite modules: bench/cases/*.ts, then bench/*.bench.ts. */
function suiteFiles(): string[] {
  const cases = readdirSync(join(benchDir, "cases")).filter((f) => f.endsWith(".ts")).sort().map((f) => join(benchDir, "cases", f));
  const others = readdirSync(benchDir).filter((f) => f.endsWith(".bench.ts")).sort().map((f) => join(benchDir, f));
  return [...cases, ...others];
}

/** Loads every suite; one that cannot load (a missing package…) is reported, and the rest run. */
async function loadSuites(): Promise<{ suites: Suite[]; broken: { file: string; reason: string }[] }> {
  const suites: Suite[] = [];
  const broken: { file: string; reason: string }[] = [];
  for (const file of suiteFiles()) {
    let mod: { default?: Suite };
    try {
      mod = (await import(pathToFileURL(file).href)) as { default?: Suite };
    } catch (err) {
      const reason = err instanceof Error ? err.message.split("\n")[0] ?? "" : String(err);
      broken.push({ file: relative(rootDir, file), reason });
      continue;
    }
    if (!mod.default || typeof mod.default.body !== "function") {
      console.error(`! ${relative(rootDir, file)} has no default export from defineSuite(); not run`);
      continue;
    }
    suites.push(mod.default);
  }
  return { suites, broken };
}

/** A one-line status on stderr, on a terminal only (a log file gets just the tables). */
function makeProgress(): (text: string) => void {
  if (!process.stderr.isTTY) return () => {};
  return (text) => {
    const width = (process.stderr.columns ?? 80) - 1;
    process.stderr.write(`\r\x1b[2K${text.slice(0, width)}`);
  };
}

function clearProgress(): void {
  if (process.stderr.isTTY) process.stderr.write("\r\x1b[2K");
}

/** Rewrites the charts and BENCHMARKS.md from the saved results, measuring nothing. */
function reportOnly(): void {
  const results = JSON.parse(readFileSync(join(benchDir, "results", "latest.json"), "utf8")) as BenchResults;
  for (const path of writeCharts(join(rootDir, "docs"), results.charts)) console.log(`chart: ${relative(process.cwd(), path)}`);
  writeBenchmarksMarkdown(join(rootDir, "BENCHMARKS.md"), results);
  console.log("report: BENCHMARKS.md");
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.reportOnly) return reportOnly();
  const options = args.quick ? QUICK_OPTIONS : FULL_OPTIONS;
  const { suites, broken } = await loadSuites();
  const suiteNames = new Set(suites.map((s) => s.name.toLowerCase()));
  const suiteWords = args.words.filter((w) => suiteNames.has(w.toLowerCase())).map((w) => w.toLowerCase());
  const caseWords = args.words.filter((w) => !suiteNames.has(w.toLowerCase())).map((w) => w.toLowerCase());
  const selected = suites.filter((s) => suiteWords.length === 0 || suiteWords.includes(s.name.toLowerCase()));
  const wants = (name: string) => caseWords.length === 0 || caseWords.some((w) => name.toLowerCase().includes(w));
  const full = args.words.length === 0 && !args.quick;
  if (!(globalThis as { gc?: unknown }).gc) console.warn("! run with --expose-gc (npm run bench does) for steadier peak-RSS figures");

  const startedAt = new Date().toISOString();
  const cases: CaseResult[] = [];
  const skippedCases: BenchResults["skippedCases"] = broken.map((b) => ({ suite: b.file, name: "(suite)", reason: `cannot load: ${b.reason}` }));
  for (const b of broken) console.log(`! ${b.file} cannot load, not run: ${b.reason}`);
  const charts = new Map<string, ChartData>();
  const servers: Record<string, string> = {};
  const progress = makeProgress();
  const sink: Sink = {
    caseDone(result) {
      clearProgress();
      noteLoad();
      cases.push(result);
      console.log(formatCase(result));
    },
    caseSkipped(suite, name, reason) {
      clearProgress();
      skippedCases.push({ suite, name, reason });
      console.log(`\n${suite} · ${name}: SKIPPED — ${reason}`);
    },
    point(chart, series, x, y) {
      let data = charts.get(chart.id);
      if (!data) charts.set(chart.id, (data = { ...chart, series: [] }));
      let s = data.series.find((x) => x.name === series);
      if (!s) data.series.push((s = { name: series, points: [] }));
      s.points.push({ x, y });
    },
    server(name, version) {
      servers[name] = version;
    },
    progress,
  };

  console.log(`stowage benchmarks${args.quick ? " (quick)" : ""}: ${selected.map((s) => s.name).join(", ") || "no suite selected"}${caseWords.length ? `; cases matching ${caseWords.map((w) => JSON.stringify(w)).join(" or ")}` : ""}`);
  for (const suite of selected) {
    const started = Date.now();
    try {
      await suite.body(createContext(suite.name, options, wants, sink));
    } catch (err) {
      clearProgress();
      const reason = err instanceof Error ? (err.stack ?? err.message) : String(err);
      skippedCases.push({ suite: suite.name, name: "(suite)", reason: `suite failed: ${reason.split("\n")[0]}` });
      console.log(`\n${suite.name}: SUITE FAILED — ${reason}`);
    }
    clearProgress();
    console.log(`\n(${suite.name}: ${((Date.now() - started) / 1000).toFixed(1)} s)`);
  }
  console.log(formatTargetSummary(cases));

  const results: BenchResults = {
    startedAt,
    finishedAt: new Date().toISOString(),
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`,
    options,
    filter: args.words,
    machine: describeMachine(servers),
    cases,
    skippedCases,
    charts: [...charts.values()],
  };
  const latest = join(benchDir, "results", "latest.json");
  const merged = args.merge ? mergeInto(latest, results) : results;
  const out = args.out ?? (full || args.merge ? latest : join(benchDir, "results", "partial.json"));
  writeJson(out, merged);
  console.log(`\nresults: ${relative(process.cwd(), out)}${args.merge ? " (merged)" : ""}`);
  if (full || args.writeDocs || args.merge) {
    const written = writeCharts(join(rootDir, "docs"), merged.charts);
    for (const path of written) console.log(`chart: ${relative(process.cwd(), path)}`);
    writeBenchmarksMarkdown(join(rootDir, "BENCHMARKS.md"), merged);
    console.log("report: BENCHMARKS.md");
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    clearProgress();
    console.error(err);
    process.exit(1);
  },
);
