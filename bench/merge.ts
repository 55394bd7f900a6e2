/**
 * `npm run bench -- … --merge`: one run's results merged into the results file, so a suite can
 * be measured again without re-running the others.
 */
import { readFileSync } from "node:fs";
import type { CaseResult, ChartData } from "./harness.js";
import type { MachineDescription } from "./machine.js";
import type { BenchResults } from "./report.js";

/** The CPU models of both descriptions, when there is more than one. */
function cpuModelsOf(previous: MachineDescription, current: MachineDescription): { cpuModels?: string[] } {
  const models = [...new Set([...(previous.cpuModels ?? [previous.cpuModel]), ...(current.cpuModels ?? [current.cpuModel])])];
  return models.length > 1 ? { cpuModels: models } : {};
}

/**
 * The results file at `path` with this run's cases in place of the same (suite, case) ones,
 * its charts' series replaced by this run's where this run drew them, and this run's machine
 * description (server versions of both kept). A missing file merges into nothing.
 */
export function mergeInto(path: string, run: BenchResults): BenchResults {
  let previous: BenchResults;
  try {
    previous = JSON.parse(readFileSync(path, "utf8")) as BenchResults;
  } catch {
    return run;
  }
  const id = (c: { suite: string; name: string }) => `${c.suite}\u0000${c.name}`;
  const fresh = new Set([...run.cases, ...run.skippedCases].map(id));
  // Same place as before for a case measured again (the report keeps its order); new ones last.
  const byId = new Map(run.cases.map((c) => [id(c), c]));
  const kept = previous.cases.flatMap((c) => (byId.has(id(c)) ? [byId.get(id(c)) as CaseResult] : fresh.has(id(c)) ? [] : [c]));
  const keptIds = new Set(kept.map(id));
  const charts = new Map(previous.charts.map((c) => [c.id, c]));
  for (const chart of run.charts) charts.set(chart.id, mergeChart(charts.get(chart.id), chart));
  return {
    ...run,
    startedAt: previous.startedAt < run.startedAt ? previous.startedAt : run.startedAt,
    command: `${previous.command}; ${run.command}`,
    machine: { ...run.machine, servers: { ...previous.machine.servers, ...run.machine.servers }, ...cpuModelsOf(previous.machine, run.machine) },
    cases: [...kept, ...run.cases.filter((c) => !keptIds.has(id(c)))],
    skippedCases: [...previous.skippedCases.filter((c) => !fresh.has(id(c))), ...run.skippedCases],
    charts: [...charts.values()],
  };
}

/** `fresh`'s points replace `old`'s at the same x of the same series; the other points stay. */
export function mergeChart(old: ChartData | undefined, fresh: ChartData): ChartData {
  const series = (old?.series ?? []).map((s) => ({ name: s.name, points: [...s.points] }));
  for (const s of fresh.series) {
    let target = series.find((x) => x.name === s.name);
    if (!target) series.push((target = { name: s.name, points: [] }));
    const xs = new Set(s.points.map((p) => p.x));
    target.points = [...target.points.filter((p) => !xs.has(p.x)), ...s.points].sort((a, b) => a.x - b.x);
  }
  return { ...fresh, series };
}
