import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { StorageComponent, configJsonSchema, resolveConfig, stderrLogger, type ComponentConfigInput } from "../../component/index.js";
import type { CliContext } from "../context.js";
import { STORE_ENV } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { serveConsole } from "../../http/console-assets.js";
import { componentWithGateway, gatewayOnly, gatewayOptions, HTTP_TOKEN_ENV, type HttpFlags, type Served } from "../serve-http.js";

interface ServeOptions extends HttpFlags {
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
  deadLetterStream?: string;
  keyPrefix?: string;
  timeout?: string;
  maxValueSize?: string;
  maxInFlight?: string;
  maxInFlightBytes?: string;
  cache?: boolean;
  cacheMaxSize?: string;
  cacheTtl?: string;
  metricsPort?: string;
  metricsHost?: string;
  claimsPrefix?: string;
  claimsTtl?: string;
  claimsExpireInterval?: string;
  drainTimeout: string;
  printSchema?: boolean;
}

/** Secrets may come from the environment so they stay out of `ps` output and shell history. */
const SECRET_ENV = { pass: "STOWAGE_NATS_PASS", token: "STOWAGE_NATS_TOKEN", nkeySeed: "STOWAGE_NATS_NKEY_SEED" } as const;

export function register(program: Command, context: CliContext): void {
  program
    .command("serve")
    .description("serve the store over NATS (api, write and events ports, as a NATS micro service) and/or over HTTP (--http: the gateway and console)")
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
    .option("--dead-letter-stream <name>", "jetstream write mode: the stream created to keep dead letters when none captures their subject (default STOWAGE_<NAME>_DEAD)")
    .option("--key-prefix <prefix>", "first part of keys made for stored messages (default messages)")
    .option("--timeout <duration>", 'deadline per request, e.g. 5s or 500ms (default 5s)')
    .option("--max-value-size <size>", "largest value accepted, e.g. 512KiB (default: what fits one NATS message)")
    .option("--max-in-flight <n>", "requests and messages in flight at once, until the store has finished them (default 256); more are answered busy")
    .option("--max-in-flight-bytes <size>", "payload bytes in flight at once, e.g. 64MiB (the default); more are answered busy")
    .option("--cache", "cache values read (data_cache)")
    .option("--cache-max-size <n>", "cache entries (default 1000)")
    .option("--cache-ttl <duration>", "cache time to live (default 1h)")
    .option("--metrics-port <port>", "serve Prometheus metrics at http://127.0.0.1:PORT/metrics")
    .option("--metrics-host <host>", "address for the metrics server (default 127.0.0.1)")
    .option("--claims-prefix <prefix>", "key prefix of claims (streamed puts with claim: true, expiry); default claims/")
    .option("--claims-ttl <duration>", "delete claims older than this under the claims prefix, on a schedule, e.g. 7d (default: no expiry)")
    .option("--claims-expire-interval <duration>", "how often claim expiry runs (default 10m)")
    .option("--http <host:port>", "also serve the store over HTTP (docs/http.md), e.g. 127.0.0.1:8080; without --nats (or nats in the config file), HTTP only")
    .option("--http-token <token>", `bearer token that may read and write (better: $${HTTP_TOKEN_ENV.token}); needed to bind a non-loopback address`)
    .option("--http-read-token <token>", `bearer token that may only read (better: $${HTTP_TOKEN_ENV.readToken})`)
    .option("--http-cert <file>", "TLS certificate (PEM) for --http")
    .option("--http-key <file>", "TLS private key (PEM) for --http")
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
      const http = options.http === undefined ? undefined : gatewayOptions({ ...options, http: options.http }, context.io.env);
      // Validation happens here: a bad config is refused before anything connects.
      const served = planServe(config, http);
      const stopRequested = waitForStop(context.signal);
      // A signal that arrived while the program was loading (module loading can hold the main
      // thread) is still queued: one turn of the event loop delivers it before anything connects.
      await new Promise((resolve) => setImmediate(resolve));
      try {
        // A stop asked for before or during start-up is a stop: nothing more is started.
        if (!stopRequested.requested()) await Promise.race([stopRequested.promise, served.start()]);
        await stopRequested.promise;
      } finally {
        stopRequested.dispose();
      }
      await served.stop(drainMs);
    });
}

/**
 * NATS is served unless only HTTP was asked for: `--http` without any NATS flag and without
 * `nats` in the config file runs the gateway alone; both run in one process otherwise.
 */
function planServe(config: ComponentConfigInput, http: ReturnType<typeof gatewayOptions> | undefined): Served {
  const resolved = resolveConfig(config);
  if (http !== undefined && (config as Record<string, unknown>).nats === undefined) return gatewayOnly(resolved.store, http, stderrLogger(resolved.name), serveConsole);
  return componentWithGateway(new StorageComponent({ config }), http, stderrLogger(resolved.name), serveConsole);
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
  set(["write", "dead_letter_stream"], options.deadLetterStream);
  set(["write", "key_prefix"], options.keyPrefix);
  set(["timeouts", "default"], options.timeout);
  set(["max_value_size"], options.maxValueSize);
  set(["max_in_flight"], number(options.maxInFlight));
  set(["max_in_flight_bytes"], options.maxInFlightBytes);
  if (options.cache) set(["data_cache", "enabled"], true);
  set(["data_cache", "max_size"], number(options.cacheMaxSize));
  set(["data_cache", "ttl"], options.cacheTtl);
  set(["claims", "prefix"], options.claimsPrefix);
  set(["claims", "ttl"], options.claimsTtl);
  set(["claims", "expire_interval"], options.claimsExpireInterval);
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
function waitForStop(signal: AbortSignal | undefined): { promise: Promise<void>; requested(): boolean; dispose(): void } {
  let resolve!: () => void;
  let requested = false;
  const promise = new Promise<void>((r) => (resolve = r));
  const onSignal = () => {
    requested = true;
    resolve();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  signal?.addEventListener("abort", onSignal, { once: true });
  if (signal?.aborted) onSignal();
  return {
    promise,
    requested: () => requested,
    dispose() {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      signal?.removeEventListener("abort", onSignal);
    },
  };
}
