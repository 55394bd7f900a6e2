import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { StorageComponent, configJsonSchema, type ComponentConfigInput } from "../../component/index.js";
import type { CliContext } from "../context.js";
import { STORE_ENV } from "../context.js";
import { CliError, EXIT } from "../errors.js";

interface ServeOptions {
  config?: string;
  name?: string;
  nats?: string[];
  natsUser?: string;
  natsPass?: string;
  natsToken?: string;
  natsNkeySeed?: string;
  natsCreds?: string;
  natsTls?: boolean;
  natsTlsCa?: string;
  natsTlsCert?: string;
  natsTlsKey?: string;
  queueGroup?: string;
  writeMode?: string;
  stream?: string;
  streamReplicas?: string;
  streamStorage?: string;
  durable?: string;
  maxDeliver?: string;
  deadLetterSubject?: string;
  keyPrefix?: string;
  timeout?: string;
  maxValueSize?: string;
  maxInFlight?: string;
  cache?: boolean;
  cacheMaxSize?: string;
  cacheTtl?: string;
  metricsPort?: string;
  metricsHost?: string;
  drainTimeout: string;
  printSchema?: boolean;
}

/** Secrets may come from the environment so they stay out of `ps` output and shell history. */
const SECRET_ENV = { pass: "STOWAGE_NATS_PASS", token: "STOWAGE_NATS_TOKEN", nkeySeed: "STOWAGE_NATS_NKEY_SEED" } as const;

export function register(program: Command, context: CliContext): void {
  program
    .command("serve")
    .description("serve the store over NATS: api (request/reply), write (messages stored through the archiver) and events ports, as a NATS micro service")
    .option("-c, --config <file>", "JSON configuration file (see --print-schema); flags override it")
    .option("--name <name>", "component name; subjects default to storage.<name>.api|write|events (default objectstore)")
    .option("--nats <url...>", "NATS server URL(s) (default nats://127.0.0.1:4222)")
    .option("--nats-user <user>", "NATS user")
    .option("--nats-pass <password>", `NATS password (better: $${SECRET_ENV.pass})`)
    .option("--nats-token <token>", `NATS token (better: $${SECRET_ENV.token})`)
    .option("--nats-nkey-seed <seed>", `NATS NKey seed (better: $${SECRET_ENV.nkeySeed})`)
    .option("--nats-creds <file>", "NATS credentials file (JWT + seed)")
    .option("--nats-tls", "require TLS")
    .option("--nats-tls-ca <file>", "CA certificate file (implies --nats-tls)")
    .option("--nats-tls-cert <file>", "client certificate file (implies --nats-tls)")
    .option("--nats-tls-key <file>", "client key file (implies --nats-tls)")
    .option("--queue-group <group>", "queue group shared by instances (default stowage)")
    .option("--write-mode <mode>", "write port: subscribe (plain) or jetstream (durable consumer)")
    .option("--stream <name>", "jetstream write mode: stream name (default STOWAGE_<NAME>)")
    .option("--stream-replicas <n>", "jetstream write mode: replicas of the stream when it is created (1-5; default the server's, 1)")
    .option("--stream-storage <type>", "jetstream write mode: storage of the stream when it is created: file or memory (default file)")
    .option("--durable <name>", "jetstream write mode: durable consumer name (default stowage-<name>)")
    .option("--max-deliver <n>", "jetstream write mode: deliveries before dead-lettering (default 5)")
    .option("--dead-letter-subject <subject>", "jetstream write mode: where failing messages go (default storage.<name>.write.dead)")
    .option("--key-prefix <prefix>", "first part of keys made for stored messages (default messages)")
    .option("--timeout <duration>", 'deadline per request, e.g. 5s or 500ms (default 5s)')
    .option("--max-value-size <size>", "largest value accepted, e.g. 512KiB (default: what fits one NATS message)")
    .option("--max-in-flight <n>", "requests handled at once (default 256)")
    .option("--cache", "cache values read (data_cache)")
    .option("--cache-max-size <n>", "cache entries (default 1000)")
    .option("--cache-ttl <duration>", "cache time to live (default 1h)")
    .option("--metrics-port <port>", "serve Prometheus metrics at http://127.0.0.1:PORT/metrics")
    .option("--metrics-host <host>", "address for the metrics server (default 127.0.0.1)")
    .option("--drain-timeout <duration>", "on SIGINT/SIGTERM, wait this long for requests in flight", "10s")
    .option("--print-schema", "print the configuration's JSON Schema and exit")
    .addHelpText(
      "after",
      `
The store is --store (global), else the config file's "store", else $${STORE_ENV}, else file:./.stowage.
SIGINT or SIGTERM: stop taking requests, finish those in flight, close the store, exit 0.
Wire formats, subjects and discovery: docs/component.md.`,
    )
    .action(async (options: ServeOptions) => {
      if (options.printSchema) {
        context.io.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
        return;
      }
      const config = buildConfig(options, program.opts<{ store?: string }>().store, context.io.env);
      const drainMs = durationMs(options.drainTimeout, "--drain-timeout");
      // Validation happens here: a bad config is refused before anything connects.
      const component = new StorageComponent({ config });
      const stopRequested = waitForStop(context.signal);
      await component.start();
      await stopRequested.promise;
      stopRequested.dispose();
      await component.stop(drainMs);
    });
}

/** The config file, then the flags over it (flags that were not given leave the file's value). */
function buildConfig(options: ServeOptions, storeFlag: string | undefined, env: Record<string, string | undefined>): ComponentConfigInput {
  const config = options.config === undefined ? {} : readConfigFile(options.config);
  const set = (path: string[], value: unknown) => {
    if (value === undefined) return;
    let node = config;
    for (const part of path.slice(0, -1)) {
      const next = node[part];
      node = next !== null && typeof next === "object" && !Array.isArray(next) ? (next as Record<string, unknown>) : (node[part] = {});
    }
    node[path.at(-1)!] = value;
  };
  set(["store"], storeFlag ?? (config.store === undefined ? nonEmpty(env[STORE_ENV]) : undefined));
  set(["name"], options.name);
  set(["nats", "servers"], options.nats);
  set(["nats", "user"], options.natsUser);
  set(["nats", "pass"], options.natsPass ?? nonEmpty(env[SECRET_ENV.pass]));
  set(["nats", "token"], options.natsToken ?? nonEmpty(env[SECRET_ENV.token]));
  set(["nats", "nkey_seed"], options.natsNkeySeed ?? nonEmpty(env[SECRET_ENV.nkeySeed]));
  set(["nats", "creds_file"], options.natsCreds);
  if (options.natsTls || options.natsTlsCa || options.natsTlsCert || options.natsTlsKey) {
    set(["nats", "tls", "ca_file"], options.natsTlsCa);
    set(["nats", "tls", "cert_file"], options.natsTlsCert);
    set(["nats", "tls", "key_file"], options.natsTlsKey);
    set(["nats", "tls"], (config.nats as Record<string, unknown> | undefined)?.tls ?? {});
  }
  set(["queue_group"], options.queueGroup);
  if (options.writeMode !== undefined) setWriteMode(config, options.writeMode);
  set(["write", "stream"], options.stream);
  set(["write", "replicas"], number(options.streamReplicas));
  set(["write", "storage"], options.streamStorage);
  set(["write", "durable"], options.durable);
  set(["write", "max_deliver"], number(options.maxDeliver));
  set(["write", "dead_letter_subject"], options.deadLetterSubject);
  set(["write", "key_prefix"], options.keyPrefix);
  set(["timeouts", "default"], options.timeout);
  set(["max_value_size"], options.maxValueSize);
  set(["max_in_flight"], number(options.maxInFlight));
  if (options.cache) set(["data_cache", "enabled"], true);
  set(["data_cache", "max_size"], number(options.cacheMaxSize));
  set(["data_cache", "ttl"], options.cacheTtl);
  set(["metrics_port"], number(options.metricsPort));
  set(["metrics_host"], options.metricsHost);
  return config as ComponentConfigInput;
}

/** `--write-mode` sets the type of the write port, adding the port when the file has none. */
function setWriteMode(config: Record<string, unknown>, mode: string): void {
  const ports = (config.ports ??= {}) as { inputs?: { name?: string; type?: string; subject?: string }[] };
  const inputs = (ports.inputs ??= []);
  const write = inputs.find((p) => p.name === "write");
  if (write) write.type = mode;
  else {
    const name = typeof config.name === "string" ? config.name : "objectstore";
    inputs.push({ name: "write", type: mode, subject: `storage.${name}.write` });
  }
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    throw new CliError(EXIT.usage, `cannot read config file ${path}: ${(cause as NodeJS.ErrnoException).code ?? "error"}`, { cause });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new CliError(EXIT.usage, `config file ${path} is not valid JSON: ${cause instanceof Error ? cause.message : ""}`, { cause });
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new CliError(EXIT.usage, `config file ${path} must hold a JSON object`);
  return parsed as Record<string, unknown>;
}

/** A flag's number, or the text itself so validation names the field when it is not one. */
function number(text: string | undefined): number | string | undefined {
  if (text === undefined) return undefined;
  return /^\d+$/.test(text) ? Number(text) : text;
}

function durationMs(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m)?$/.exec(text.trim());
  if (!match) throw new CliError(EXIT.usage, `${flag} must be a duration such as 10s or 500ms, got ${JSON.stringify(text)}`);
  return Math.round(Number(match[1]) * { ms: 1, s: 1000, m: 60_000 }[match[2] ?? "ms"]!);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value;
}

/** Resolves on SIGTERM, SIGINT (the CLI's signal) or an aborted signal. */
function waitForStop(signal: AbortSignal | undefined): { promise: Promise<void>; dispose(): void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  const onSignal = () => resolve();
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  signal?.addEventListener("abort", onSignal, { once: true });
  if (signal?.aborted) resolve();
  return {
    promise,
    dispose() {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      signal?.removeEventListener("abort", onSignal);
    },
  };
}
