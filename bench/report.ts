/**
 * Turning results into things people read: console tables (one per case, as it finishes), the
 * JSON results file, the SVG charts in `docs/`, and the Markdown of BENCHMARKS.md.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { formatBytes, formatMs, type CaseResult, type ChartData, type CompetitorResult, type RunOptions, type TargetResult, WARMUP_MAX_MS } from "./harness.js";
import type { MachineDescription } from "./machine.js";
import { renderChart } from "./svg.js";

/** Everything one `npm run bench` produced: what the JSON file holds. */
export interface BenchResults {
  startedAt: string;
  finishedAt: string;
  command: string;
  options: RunOptions;
  filter: string[];
  machine: MachineDescription;
  cases: CaseResult[];
  skippedCases: { suite: string; name: string; reason: string }[];
  charts: ChartData[];
}

const fmtInt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

export function formatOps(ops: number | undefined): string {
  if (ops === undefined) return "–";
  if (ops >= 100) return fmtInt.format(ops);
  return ops.toPrecision(3);
}

/** A ratio rounded down, so a target missed by a hair never reads as met (0.996 → 0.99×, not 1.0×). */
export function formatRatio(r: number | undefined): string {
  if (r === undefined) return "–";
  // The epsilon keeps binary fractions from flooring a step too far (1.13 * 100 = 112.999…).
  if (r >= 10) return `${Math.floor(r + 1e-9)}×`;
  if (r >= 0.1) return `${(Math.floor(r * 100 + 1e-9) / 100).toFixed(2)}×`;
  return `${r.toPrecision(2)}×`;
}

function formatMb(mb: number | undefined): string {
  if (mb === undefined) return "–";
  return mb >= 100 ? fmtInt.format(mb) : mb.toPrecision(3);
}

/** The measured value of a target in its own unit. */
export function formatTargetValue(t: TargetResult): string {
  if (t.measured === undefined) return "not measured";
  if (t.description.includes("RSS")) return formatBytes(t.measured);
  if (t.description.includes(" p50 ") || t.description.includes(" p99 ")) return formatMs(t.measured);
  return formatRatio(t.measured);
}

export function targetLine(t: TargetResult): string {
  const verdict = t.met ? "MET" : "NOT MET";
  const reason = t.reason ? ` (${t.reason})` : "";
  return `${t.issue} ${t.description}: ${formatTargetValue(t)} ${verdict}${reason}`;
}

/** Aligns rows of cells into columns (first column left-aligned, the rest right-aligned). */
export function table(rows: string[][], indent = "  "): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, [...cell].length)));
  return rows
    .map((row) => indent + row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number))).join("  ").trimEnd())
    .join("\n");
}

/** Which optional columns a case's table has: results merged from older runs may lack CPU figures. */
interface Columns {
  cpu: boolean;
  memory: boolean;
}

function columnsOf(result: CaseResult): Columns {
  return {
    cpu: result.competitors.some((c) => c.cpuMsPerOp !== undefined),
    memory: result.competitors.some((c) => c.peakRssGrowthBytes !== undefined),
  };
}

function headerRow(result: CaseResult, columns: Columns): string[] {
  const header = ["competitor", "ops/s", "MB/s", "p50", "p99", `vs ${result.baseline ?? "baseline"}`];
  if (columns.cpu) header.push("CPU/op");
  if (columns.memory) header.push("peak RSS +");
  return header;
}

function competitorRow(c: CompetitorResult, columns: Columns): string[] {
  if (c.skipped) return [c.name, `skipped: ${c.skipped}`];
  if (c.failed) return [c.name, `FAILED ${c.failed}`];
  const row = [c.name, formatOps(c.opsPerSec), formatMb(c.mbPerSec), formatMs(c.latencyMs?.p50 ?? NaN), formatMs(c.latencyMs?.p99 ?? NaN), formatRatio(c.ratio)];
  if (columns.cpu) row.push(c.cpuMsPerOp === undefined ? "–" : formatMs(c.cpuMsPerOp));
  if (columns.memory) row.push(c.peakRssGrowthBytes === undefined ? "–" : formatBytes(c.peakRssGrowthBytes));
  return row;
}

/** How a case ran: "concurrency 1, 1 KiB/op<sep> median of 5 rounds × 1000 ms[ after a warm-up …]". */
function howRun(c: CaseResult, separator: string): string {
  const size = c.bytesPerOp !== undefined ? `, ${formatBytes(c.bytesPerOp)}/op` : "";
  const warmup = c.warmupOps ? ` after a warm-up of ${c.warmupOps.toLocaleString("en-US")} operations (at most ${WARMUP_MAX_MS / 1000} s) each` : "";
  return `concurrency ${c.concurrency}${size}${separator} median of ${c.rounds} rounds × ${c.roundMs} ms${warmup}`;
}

/** The console block of one case: heading, table, targets, note. */
export function formatCase(result: CaseResult): string {
  const columns = columnsOf(result);
  const measured = result.competitors.filter((c) => !c.skipped && !c.failed);
  const rows = [headerRow(result, columns), ...measured.map((c) => competitorRow(c, columns))];
  const lines = [`\n${result.suite} · ${result.name}  (${howRun(result, ",")})`, table(rows)];
  // Competitors that did not run go below the table, so a long reason does not stretch its columns.
  for (const c of result.competitors) if (c.skipped || c.failed) lines.push(`  ${c.name}: ${c.skipped ? `skipped — ${c.skipped}` : `FAILED — ${c.failed}`}`);
  for (const c of result.competitors) if (c.teardownError) lines.push(`  ! teardown of ${c.name} failed: ${c.teardownError}`);
  for (const t of result.targets) lines.push(`  target ${targetLine(t)}`);
  if (result.note) lines.push(`  note: ${result.note}`);
  return lines.join("\n");
}

/** Every target of the run, for the closing summary. */
export function formatTargetSummary(cases: CaseResult[]): string {
  const rows: string[][] = [["issue", "case", "target", "measured", "verdict"]];
  for (const c of cases) {
    for (const t of c.targets) rows.push([t.issue, `${c.suite} · ${c.name}`, t.description, formatTargetValue(t), t.met ? "MET" : `NOT MET${t.reason ? ` (${t.reason})` : ""}`]);
  }
  if (rows.length === 1) return "";
  return `\nTargets\n${table(rows)}`;
}

export function writeJson(path: string, results: BenchResults): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(results, null, 2) + "\n");
}

/** Writes each chart to `<dir>/bench-<id>.svg`; returns the paths written. */
export function writeCharts(dir: string, charts: ChartData[]): string[] {
  mkdirSync(dir, { recursive: true });
  return charts.map((chart) => {
    const path = join(dir, `bench-${chart.id}.svg`);
    writeFileSync(path, renderChart(chart));
    return path;
  });
}

function mdEscape(text: string): string {
  return text.replace(/\|/g, "\\|");
}

function mdTable(rows: string[][]): string {
  const [head, ...body] = rows;
  if (!head) return "";
  const cols = head.length;
  const line = (row: string[]) => `| ${Array.from({ length: cols }, (_, i) => mdEscape(row[i] ?? "")).join(" | ")} |`;
  return [line(head), `|${" --- |".repeat(cols)}`, ...body.map(line)].join("\n");
}

/** The Markdown tables of every case of one suite. */
export function markdownCases(cases: CaseResult[]): string {
  const out: string[] = [];
  for (const c of cases) {
    const columns = columnsOf(c);
    out.push(`#### ${c.name}\n\n_${howRun(c, ";")}_\n`);
    out.push(mdTable([headerRow(c, columns), ...c.competitors.map((x) => competitorRow(x, columns))]));
    if (c.targets.length) out.push("\n" + c.targets.map((t) => `- target ${t.issue}: ${t.description} — **${formatTargetValue(t)} ${t.met ? "MET" : "NOT MET"}**${t.reason ? ` (${t.reason})` : ""}`).join("\n"));
    if (c.note) out.push(`\n_${c.note}_`);
    out.push("");
  }
  return out.join("\n");
}

/** Every target as one Markdown table (the headline the README carries). */
export function markdownTargets(cases: CaseResult[]): string {
  const rows: string[][] = [["issue", "case", "target", "measured", "verdict"]];
  for (const c of cases) for (const t of c.targets) rows.push([t.issue, `${c.suite} · ${c.name}`, t.description, formatTargetValue(t), t.met ? "MET" : `**NOT MET**${t.reason ? ` (${t.reason})` : ""}`]);
  return rows.length > 1 ? mdTable(rows) : "_no targets measured_";
}

export function markdownMachine(m: MachineDescription): string {
  const rows = [
    ["CPU", `${m.cpuModel} × ${m.cpuCount}`],
    ...(m.cpuModels ? [["CPUs of the merged runs (same size, another machine each)", m.cpuModels.join("; ")]] : []),
    ["memory", formatBytes(m.memoryBytes)],
    ["OS", m.os],
    ["Node", m.node],
    ["load average (1 min): start / end / highest", typeof m.loadAverage === "object" ? `${m.loadAverage.start} / ${m.loadAverage.end} / ${m.loadAverage.max}` : String(m.loadAverage)],
    ...Object.entries(m.servers).map(([k, v]) => [`server: ${k}`, v]),
    ...Object.entries(m.packages).map(([k, v]) => [`package: ${k}`, v]),
  ];
  return mdTable([["", "version / value"], ...rows]);
}
