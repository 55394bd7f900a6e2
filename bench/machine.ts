/**
 * The machine and software a benchmark ran on, kept with the results so a figure is never
 * read without its context.
 */
import { readFileSync } from "node:fs";
import { arch, cpus, loadavg, platform, release, totalmem } from "node:os";
import { createRequire } from "node:module";

export interface MachineDescription {
  cpuModel: string;
  /**
   * Every CPU model of the runs merged into one results file (`--merge`), when they differ:
   * the rows of a merged file may come from different machines of the same size.
   */
  cpuModels?: string[];
  cpuCount: number;
  memoryBytes: number;
  os: string;
  node: string;
  /** 1-minute load averages at the start and the end of the run: other work on the machine skews every figure. */
  loadAverage: { start: number; end: number; max: number };
  /** Server versions the suites saw ("nats-server", "PostgreSQL", "s3rver"). */
  servers: Record<string, string>;
  /** Versions of the client and peer libraries measured. */
  packages: Record<string, string>;
}

const MEASURED_PACKAGES = [
  "@nats-io/transport-node",
  "@nats-io/kv",
  "@nats-io/obj",
  "pg",
  "@aws-sdk/client-s3",
  "unstorage",
  "flydrive",
  "keyv",
  "@keyv/postgres",
  "opendal",
  "s3rver",
];

/** The installed version of `name`, or "not installed". */
export function packageVersion(name: string): string {
  const require = createRequire(import.meta.url);
  try {
    // Resolve the package's entry, then walk up to its package.json: some packages do not
    // export "./package.json".
    let dir = require.resolve(name);
    for (let i = 0; i < 8; i++) {
      dir = dir.slice(0, dir.lastIndexOf("/"));
      try {
        const pkg = JSON.parse(readFileSync(`${dir}/package.json`, "utf8")) as { name?: string; version?: string };
        if (pkg.name === name && pkg.version) return pkg.version;
      } catch {
        // not here: keep walking up
      }
    }
  } catch {
    return "not installed";
  }
  return "unknown";
}

function currentLoad(): number {
  return Number((loadavg()[0] ?? 0).toFixed(2));
}

/** Taken when this module loads, i.e. when the run starts. */
const loadAtStart = currentLoad();
let maxLoad = loadAtStart;

/** Samples the load average (the runner calls it after every case); returns it. */
export function noteLoad(): number {
  const now = currentLoad();
  maxLoad = Math.max(maxLoad, now);
  return now;
}

export function describeMachine(servers: Record<string, string>): MachineDescription {
  const cpu = cpus();
  return {
    cpuModel: cpu[0]?.model.trim() ?? "unknown",
    cpuCount: cpu.length,
    memoryBytes: totalmem(),
    os: `${platform()} ${release()} ${arch()}`,
    node: process.version,
    loadAverage: { start: loadAtStart, end: noteLoad(), max: maxLoad },
    servers: { ...servers },
    packages: Object.fromEntries(MEASURED_PACKAGES.map((name) => [name, packageVersion(name)])),
  };
}
