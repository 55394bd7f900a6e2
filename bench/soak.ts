/**
 * Soak: `stowage serve` (a real process, memory store by default) under N api requests in
 * flight for a while, loopback only. Reports requests sent and answered (lost = sent −
 * answered), errors by kind, latency percentiles and the server process's RSS at the start
 * (after a warm-up) and at the end. Exits 1 when a response was lost or RSS grew past the bound.
 *
 *   npm run soak                                   # 64 in flight for 60 s on nats://127.0.0.1:4222
 *   npm run soak -- --duration 10m --in-flight 128 --nats nats://127.0.0.1:4222 --store file:/tmp/soak
 *   npm run soak -- claims                          # the claim check's 256 MiB cases on every store
 *
 * `test/load-component.test.ts` runs the same load for ~10 s inside `npm test`.
 */
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { spawn } from "node:child_process";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { runStowage, type ServeProcess } from "../test/fixtures/serve-process.js";

export interface SoakOptions {
  natsUrl: string;
  /** Store URL for the served component (default `memory:`). */
  store?: string;
  durationMs: number;
  inFlight: number;
  /** Measured RSS starts after this warm-up (default 2 s). */
  warmupMs?: number;
  /** Bytes per value put (default 1 KiB). */
  valueBytes?: number;
  /** Distinct keys written and read (default 1000): bounds what a memory store holds. */
  keys?: number;
}

export interface SoakReport {
  durationMs: number;
  inFlight: number;
  sent: number;
  answered: number;
  lost: number;
  /** Answers that were errors, by kind. */
  errors: Record<string, number>;
  requestsPerSecond: number;
  latencyMs: { p50: number; p99: number; max: number };
  /** The serving process's resident memory, MiB (undefined where /proc is missing). */
  rssStartMiB: number | undefined;
  rssEndMiB: number | undefined;
  rssPeakMiB: number | undefined;
}

/** RSS of process `pid` in MiB (Linux /proc), or undefined. */
export function rssMiB(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Starts `stowage serve` on `natsUrl`, runs the load, stops it; resolves with the figures. */
export async function soakComponent(options: SoakOptions): Promise<SoakReport> {
  const name = `soak_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const serve: ServeProcess = runStowage(["--store", options.store ?? "memory:", "serve", "--name", name, "--nats", options.natsUrl, "--max-in-flight", String(options.inFlight * 4)]);
  let nc: NatsConnection | undefined;
  try {
    await serve.started;
    nc = await connect({ servers: options.natsUrl });
    return await drive(nc, `storage.${name}.api`, serve.child.pid, options);
  } finally {
    await nc?.close();
    await serve.stop("SIGTERM");
  }
}

async function drive(nc: NatsConnection, api: string, pid: number | undefined, options: SoakOptions): Promise<SoakReport> {
  const keys = options.keys ?? 1000;
  const value = Buffer.alloc(options.valueBytes ?? 1024, "v").toString("base64");
  const warmupMs = options.warmupMs ?? 2000;
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let sent = 0;
  let answered = 0;
  let rssStart: number | undefined;
  let rssPeak = 0;
  let n = 0;
  // Every key exists before the load: gets and stats answer values, not not_found.
  for (let k = 0; k < keys; k += 100) {
    await Promise.all(Array.from({ length: Math.min(100, keys - k) }, (_, j) => nc.request(api, JSON.stringify({ action: "put", key: `soak/${k + j}`, data_base64: value }), { timeout: 30_000 })));
  }
  const started = performance.now();
  const measureFrom = started + warmupMs;
  const end = measureFrom + options.durationMs;
  const sampler = setInterval(() => {
    const rss = rssMiB(pid);
    if (rss !== undefined && performance.now() >= measureFrom) {
      rssStart ??= rss;
      rssPeak = Math.max(rssPeak, rss);
    }
  }, 250);

  const request = (i: number): string => {
    const key = `soak/${Math.floor(i / 10) % keys}`;
    switch (i % 10) {
      case 0:
        return JSON.stringify({ action: "list", prefix: `soak/${i % 10}`, limit: 20 });
      case 1:
        return JSON.stringify({ action: "stat", key });
      case 2:
      case 3:
      case 4:
      case 5:
        return JSON.stringify({ action: "put", key, data_base64: value });
      default:
        return JSON.stringify({ action: "get", key });
    }
  };

  async function worker(): Promise<void> {
    while (performance.now() < end) {
      const i = n++;
      const t0 = performance.now();
      sent++;
      try {
        const reply = await nc.request(api, request(i), { timeout: 30_000 });
        answered++;
        const kind = reply.headers?.get("Stowage-Error-Kind");
        if (kind) errors[kind] = (errors[kind] ?? 0) + 1;
      } catch {
        // No answer within 30 s: lost.
        continue;
      }
      if (t0 >= measureFrom) latencies.push(performance.now() - t0);
    }
  }
  await Promise.all(Array.from({ length: options.inFlight }, worker));
  clearInterval(sampler);
  const rssEnd = rssMiB(pid);
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  const round = (x: number) => Math.round(x * 100) / 100;
  return {
    durationMs: options.durationMs,
    inFlight: options.inFlight,
    sent,
    answered,
    lost: sent - answered,
    errors,
    requestsPerSecond: Math.round(answered / ((performance.now() - started) / 1000)),
    latencyMs: { p50: round(at(0.5)), p99: round(at(0.99)), max: round(latencies.at(-1) ?? NaN) },
    rssStartMiB: rssStart === undefined ? undefined : round(rssStart),
    rssEndMiB: rssEnd === undefined ? undefined : round(rssEnd),
    rssPeakMiB: rssPeak === 0 ? undefined : round(rssPeak),
  };
}

/** One line for logs. */
export function formatSoak(r: SoakReport): string {
  const errors = Object.entries(r.errors).map(([k, v]) => `${v} ${k}`).join(", ") || "none";
  return (
    `${r.inFlight} in flight for ${r.durationMs / 1000} s: ${r.sent} sent, ${r.answered} answered, ${r.lost} lost, errors: ${errors}; ` +
    `${r.requestsPerSecond} req/s, latency p50 ${r.latencyMs.p50} ms p99 ${r.latencyMs.p99} ms max ${r.latencyMs.max} ms; ` +
    `RSS start ${r.rssStartMiB ?? "n/a"} MiB, end ${r.rssEndMiB ?? "n/a"} MiB, peak ${r.rssPeakMiB ?? "n/a"} MiB`
  );
}

function duration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text);
  if (!match) throw new Error(`not a duration: ${text} (e.g. 60s, 10m)`);
  return Number(match[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? "s"]!;
}

/** `npm run soak -- claims`: the claim check's 256 MiB cases on every store (the suite runs one). */
function soakClaims(): Promise<number> {
  const child = spawn(process.execPath, ["--expose-gc", "--import", "tsx", "--test", "--test-timeout=1800000", "test/claims-nats.test.ts"], {
    stdio: "inherit",
    env: { ...process.env, STOWAGE_CLAIMS_SOAK: "1" },
  });
  return new Promise((resolve) => child.on("exit", (code) => resolve(code ?? 1)));
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === "claims") return soakClaims();
  const args = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) args.set(argv[i]!.replace(/^--/, ""), argv[i + 1] ?? "");
  const report = await soakComponent({
    natsUrl: args.get("nats") ?? process.env.NATS_URL ?? "nats://127.0.0.1:4222",
    store: args.get("store"),
    durationMs: duration(args.get("duration") ?? "60s"),
    inFlight: Number(args.get("in-flight") ?? 64),
    warmupMs: duration(args.get("warmup") ?? "5s"),
  });
  const maxGrowth = Number(args.get("max-rss-growth-mib") ?? 64);
  console.log(`soak: ${formatSoak(report)}`);
  console.log(JSON.stringify(report));
  const growth = (report.rssEndMiB ?? 0) - (report.rssStartMiB ?? 0);
  if (report.lost > 0) console.error(`soak: FAIL: ${report.lost} responses lost`);
  if (growth > maxGrowth) console.error(`soak: FAIL: RSS grew ${growth.toFixed(1)} MiB (bound ${maxGrowth} MiB)`);
  return report.lost > 0 || growth > maxGrowth ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`soak: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(2);
    },
  );
}
