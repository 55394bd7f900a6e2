/**
 * The storage component: a {@link Store} served over NATS ports (api, write, events), with a
 * lifecycle (idempotent start, graceful stop) and discovery (meta, ports, config schema,
 * health, real flow rates; registered as a NATS micro service).
 */
import { setMaxListeners } from "node:events";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Service } from "@nats-io/services";
import type { Registry } from "prom-client";
import { StorageError } from "../errors.js";
import { sleep } from "../internal/signal.js";
import { openStore, redactUrl } from "../open.js";
import type { Store } from "../types.js";
import { connectNats, redactedServers } from "../backends/nats/connect.js";
import { ApiHandler } from "./api.js";
import { createArchiveFn, type ArchivingOptions } from "./archiving.js";
import { configJsonSchema, resolveConfig, type ComponentConfig, type ComponentConfigInput, type PortInfo } from "./config.js";
import { EventPublisher } from "./events.js";
import { WorkBudget } from "./budget.js";
import { registerService, VERSION } from "./service.js";
import { startMetricsServer, stderrLogger, Telemetry, type ComponentState, type FlowMetrics, type Health, type Logger, type MetricsServer } from "./telemetry.js";
import { createWritePort, type WritePort } from "./write-port.js";
import { StreamHandler } from "./streams.js";
import { startClaimExpiry, type ClaimExpiry } from "./claims.js";
import { startMirrors, type Mirrors } from "./mirroring.js";
import { startRetention, type Retention } from "./retention.js";

/** The NATS default max_payload, used until the server says otherwise. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

export interface StorageComponentOptions {
  /** The configuration file's content (validated; see `stowage serve --print-schema`). */
  config?: ComponentConfigInput;
  /** Serve this store instead of opening `config.store`, as given (no `data_cache`). The caller closes it. */
  store?: Store;
  /** Use this connection instead of connecting per `config.nats`. The caller closes it. */
  nc?: NatsConnection;
  /** Key generator and metadata extractor for `store` requests and the write port. */
  archiving?: ArchivingOptions;
  /** Prometheus registry for the component's and the store's metrics (default: a fresh one). */
  registry?: Registry;
  /** Where operational messages go (default: JSON lines on stderr). */
  logger?: Logger;
}

/** Who the component is, as discovery reports it. */
export interface ComponentMeta {
  name: string;
  type: "storage";
  description: string;
  version: string;
}

/** Everything discovery tells, as `<api>.describe` answers it. */
export interface Discovery {
  meta: ComponentMeta;
  ports: { inputs: PortInfo[]; outputs: PortInfo[] };
  config_schema: Record<string, unknown>;
  health: Health;
  flow: FlowMetrics;
}

/**
 * @example
 * const component = new StorageComponent({ config: { name: "archive", store: "file:./data", nats: { servers: "nats://127.0.0.1:4222" } } });
 * await component.start();
 * // requests: nats req storage.archive.api '{"action":"get","key":"a/b"}'
 * await component.stop(5000);
 */
export class StorageComponent {
  /** The resolved configuration (secrets included: do not log it). */
  readonly config: ComponentConfig;
  readonly telemetry: Telemetry;
  readonly #options: StorageComponentOptions;
  readonly #logger: Logger;
  readonly #budget: WorkBudget;
  #abandon = new AbortController();
  #state: ComponentState = "stopped";
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #nc: NatsConnection | undefined;
  #store: Store | undefined;
  #ownsStore = false;
  #service: Service | undefined;
  #writePort: WritePort | undefined;
  #metricsServer: MetricsServer | undefined;
  #claimExpiry: ClaimExpiry | undefined;
  #mirrors: Mirrors | undefined;
  #retention: Retention | undefined;

  /** Validates the configuration: a bad one throws a StorageError of kind `invalid` naming the field. */
  constructor(options: StorageComponentOptions = {}) {
    this.config = resolveConfig(options.config ?? {});
    this.#options = options;
    this.#logger = options.logger ?? stderrLogger(this.config.name);
    this.telemetry = new Telemetry(this.config.name, options.registry);
    this.#budget = new WorkBudget({ maxCount: this.config.maxInFlight, maxBytes: this.config.maxInFlightBytes }, (n) => this.telemetry.setInFlight(n));
  }

  get state(): ComponentState {
    return this.#state;
  }

  /** The store being served (after start). */
  get store(): Store | undefined {
    return this.#store;
  }

  /** `http://host:port/metrics` when a metrics port is configured and the component runs. */
  get metricsUrl(): string | undefined {
    return this.#metricsServer?.url;
  }

  /** Connects, opens the store, subscribes the ports and registers the service. Idempotent. */
  start(): Promise<void> {
    if (this.#state === "running") return Promise.resolve();
    if (this.#stopping) return Promise.reject(new StorageError("fatal", "the component is stopping", { op: "start" }));
    this.#starting ??= this.#start().finally(() => (this.#starting = undefined));
    return this.#starting;
  }

  async #start(): Promise<void> {
    this.#state = "starting";
    this.#abandon = new AbortController();
    // Every store call in flight listens to it: hundreds at once are expected, not a leak.
    setMaxListeners(0, this.#abandon.signal);
    const config = this.config;
    try {
      const nc = (this.#nc = this.#options.nc ?? (await this.#connect()));
      this.#store = await this.#openStore();
      const store = this.#store;
      const events = new EventPublisher(nc, config.events.subject, config.name);
      const archive = createArchiveFn(store, config.keyPrefix, this.#options.archiving);
      const common = { config, store, events, telemetry: this.telemetry, budget: this.#budget, logger: this.#logger, archive, abandon: this.#abandon.signal };
      const maxPayload = () => nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
      const api = new ApiHandler({
        ...common,
        maxPayload,
        streams: new StreamHandler({ ...common, nc, maxPayload }),
        // Requests delivered before intake stopped are still served while stopping (that is the drain).
        stopping: () => this.#state === "stopped",
      });
      this.#service = await registerService({
        nc,
        config,
        api,
        describe: () => this.describe(),
        statsData: () => ({ health: this.health(), flow: this.flowMetrics() }),
        storeScheme: config.store.split(":")[0] ?? "",
      });
      this.#writePort = createWritePort({ ...common, nc });
      await this.#writePort.start();
      // Subscriptions are sent asynchronously: once the server has them, requests find us.
      await nc.flush();
      if (config.claims.ttlMs !== undefined) {
        const { prefix, ttlMs, expireIntervalMs: intervalMs } = config.claims;
        this.#claimExpiry = startClaimExpiry({ store, instance: config.name, prefix, ttlMs, intervalMs, logger: this.#logger });
      }
      if (config.mirrors.length > 0) this.#mirrors = startMirrors({ store, mirrors: config.mirrors, registry: this.telemetry.registry, logger: this.#logger });
      if (config.retention.length > 0) {
        this.#retention = startRetention({ store, rules: config.retention, intervalMs: config.retentionIntervalMs, component: config.name, registry: this.telemetry.registry, logger: this.#logger });
      }
      if (config.metricsPort !== undefined) {
        this.#metricsServer = await startMetricsServer(this.telemetry.registry, config.metricsHost, config.metricsPort);
      }
      this.#state = "running";
      this.telemetry.health.started();
      this.#logger.info("started", {
        api: config.api.subject,
        write: `${config.write.subject} (${config.write.type})`,
        events: config.events.subject,
        store: shownStoreUrl(config.store),
        metrics: this.#metricsServer?.url,
      });
    } catch (err) {
      await this.#release();
      this.#state = "stopped";
      throw err instanceof StorageError ? err : new StorageError("fatal", `could not start: ${err instanceof Error ? err.message : String(err)}`, { op: "start", cause: err });
    }
  }

  async #connect(): Promise<NatsConnection> {
    const n = this.config.nats;
    const tls = n.tls && { caFile: n.tls.caFile, certFile: n.tls.certFile, keyFile: n.tls.keyFile, handshakeFirst: n.tls.handshakeFirst };
    const options = { servers: n.servers, name: n.connectionName ?? `stowage-${this.config.name}`, user: n.user, pass: n.pass, token: n.token, nkeySeed: n.nkeySeed, credsFile: n.credsFile, tls };
    try {
      return await connectNats(options, "start");
    } catch (cause) {
      if (cause instanceof StorageError) throw cause;
      // The client's message may echo the URL; name the servers ourselves, redacted.
      throw new StorageError("transient", `cannot connect to NATS at ${redactedServers(n.servers)}: ${cause instanceof Error ? cause.name : "error"}`, { op: "start", cause });
    }
  }

  async #openStore(): Promise<Store> {
    const { dataCache } = this.config;
    const cache = dataCache.enabled ? { strategy: dataCache.strategy, maxEntries: dataCache.maxEntries, maxBytes: dataCache.maxBytes, ttlMs: dataCache.ttlMs } : undefined;
    const given = this.#options.store;
    if (given) {
      // Served as given: a cache layer would close the caller's store with itself.
      if (cache) this.#logger.warn("data_cache is ignored for a store passed in: wrap it with withCache yourself");
      return given;
    }
    this.#ownsStore = true;
    const metrics = this.config.metricsPort !== undefined || this.#options.registry ? { registry: this.telemetry.registry } : undefined;
    if (sharesComponentConnection(this.config)) {
      // The store inherits the component's server list, credentials and TLS; the connection
      // stays ours (the store leaves it open), closed after the store in #release.
      return openStore(this.config.store, { cache, metrics, nats: { connection: this.#nc } });
    }
    try {
      return await openStore(this.config.store, { cache, metrics });
    } catch (err) {
      // Say why nats.servers did not help: the URL asked for a connection of its own.
      if (!(err instanceof StorageError && err.kind === "transient") || !/^(nats|tls):/i.test(this.config.store)) throw err;
      throw new StorageError(err.kind, `store ${redactUrl(this.config.store)}: ${err.message} (the store URL names a server, credentials or TLS of its own, so the store connects on its own rather than through nats.servers; write nats:///BUCKET or a server of nats.servers to share the component's connection)`, { op: "start", cause: err });
    }
  }

  /**
   * Stops intake (unsubscribes the api, drains the write port), waits up to `timeoutMs` for
   * requests and messages in flight, then closes the store and the connection it opened.
   * Idempotent; resolves once stopped.
   */
  stop(timeoutMs = 10_000): Promise<void> {
    if (this.#state === "stopped" && !this.#starting) return Promise.resolve();
    this.#stopping ??= this.#stop(timeoutMs).finally(() => (this.#stopping = undefined));
    return this.#stopping;
  }

  async #stop(timeoutMs: number): Promise<void> {
    await this.#starting?.catch(() => undefined);
    if (this.#state === "stopped") return;
    const deadline = Date.now() + timeoutMs;
    this.#state = "stopping";
    this.#logger.info("stopping", { inFlight: this.#budget.count, timeoutMs });
    const left = () => Math.max(0, deadline - Date.now());
    const intake = Promise.allSettled([this.#service?.stop(), this.#writePort?.stopIntake()]);
    await Promise.race([intake, sleep(left())]);
    const drained = await Promise.race([this.#budget.idle().then(() => true), sleep(left()).then(() => false)]);
    if (!drained) {
      this.#logger.warn("stop: gave up waiting for work in flight", { inFlight: this.#budget.count, timeoutMs });
      // The store calls still running are told to give up, so they settle before the store closes.
      this.#abandon.abort(new StorageError("transient", "the component is stopping", { op: "stop" }));
    }
    await this.#release(drained ? undefined : 1000);
    this.telemetry.health.stopped();
    this.#state = "stopped";
    this.#logger.info("stopped", { drained });
  }

  /**
   * Releases whatever start acquired (also after a failed start). `closeWithinMs`: how long the
   * store may take to close when work was abandoned in it (a hung backend may never finish).
   */
  async #release(closeWithinMs?: number): Promise<void> {
    const service = this.#service;
    this.#service = undefined;
    await service?.stop().catch(() => undefined);
    const writePort = this.#writePort;
    this.#writePort = undefined;
    await writePort?.stopIntake().catch(() => undefined);
    const metrics = this.#metricsServer;
    this.#metricsServer = undefined;
    await metrics?.close();
    const expiry = this.#claimExpiry;
    this.#claimExpiry = undefined;
    await expiry?.stop();
    const moves = [this.#mirrors, this.#retention];
    this.#mirrors = this.#retention = undefined;
    await Promise.allSettled(moves.map((m) => m?.stop()));
    // The store first: it may be using the component's connection.
    const store = this.#store;
    this.#store = undefined;
    if (store && this.#ownsStore) {
      const closing = store.close().catch((err: unknown) => this.#logger.warn("closing the store failed", { error: String(err) }));
      const closed = closeWithinMs === undefined ? await closing.then(() => true) : await Promise.race([closing.then(() => true), sleep(closeWithinMs).then(() => false)]);
      if (!closed) this.#logger.warn("stop: the store did not close in time (work abandoned in it); going on", { waitedMs: closeWithinMs });
    }
    const nc = this.#nc;
    this.#nc = undefined;
    if (nc && !nc.isClosed()) {
      if (this.#options.nc) await nc.flush().catch(() => undefined);
      else await nc.drain().catch(() => nc.close());
    }
  }

  meta(): ComponentMeta {
    return { name: this.config.name, type: "storage", description: this.config.description, version: VERSION };
  }

  inputPorts(): PortInfo[] {
    return [{ ...this.config.api }, { ...this.config.write }];
  }

  outputPorts(): PortInfo[] {
    return [{ ...this.config.events }];
  }

  /** The JSON Schema of the configuration file. */
  configSchema(): Record<string, unknown> {
    return configJsonSchema();
  }

  health(): Health {
    const nc = this.#nc;
    const storeOpen = this.#store !== undefined && (this.#store as { closed?: boolean }).closed !== true;
    const health = this.telemetry.health.report(this.#state, nc !== undefined && !nc.isClosed(), storeOpen);
    if (this.#mirrors) health.mirrors = this.#mirrors.report();
    if (this.#retention) health.retention = this.#retention.report();
    return health;
  }

  /** Rates over the last minute (messages/s, bytes/s, errors/s, error rate) and totals. */
  flowMetrics(): FlowMetrics {
    return this.telemetry.flow.snapshot();
  }

  describe(): Discovery {
    return {
      meta: this.meta(),
      ports: { inputs: this.inputPorts(), outputs: this.outputPorts() },
      config_schema: this.configSchema(),
      health: this.health(),
      flow: this.flowMetrics(),
    };
  }
}

/**
 * Whether a `nats://`/`tls://` store rides on the component's own NATS connection (`true`)
 * rather than opening its own.
 *
 * It does when the store URL adds nothing to what `nats` already says: no server of its own
 * (`nats:///BUCKET`) or one of `nats.servers` (compared as written: host and port, port 4222
 * when absent), and no credentials or TLS files of its own. The store then inherits the
 * component's whole server list (so it fails over with it and starts when any listed server
 * is up) and its credentials and TLS. A URL naming another server, or other credentials,
 * means a different NATS system or identity for the data: the store connects on its own, as
 * the URL says.
 */
export function sharesComponentConnection(config: ComponentConfig): boolean {
  let url: URL;
  try {
    url = new URL(config.store);
  } catch {
    return false; // openStore reports the bad URL
  }
  const scheme = url.protocol.slice(0, -1).toLowerCase();
  if (scheme !== "nats" && scheme !== "tls") return false;
  if (url.username !== "" || url.password !== "") return false;
  if (CONNECTION_PARAMS.some((p) => url.searchParams.has(p))) return false;
  // tls:// asks for an encrypted connection: only share one that is.
  if (scheme === "tls" && config.nats.tls === undefined && !config.nats.servers.some((s) => /^tls:\/\//i.test(s))) return false;
  if (url.host === "") return true;
  const target = hostPort(url);
  return config.nats.servers.some((server) => serverHostPort(server) === target);
}

/** Query parameters of a NATS store URL that set who or how the store connects. */
const CONNECTION_PARAMS = ["token", "nkey", "creds", "caFile", "certFile", "keyFile", "name"] as const;

function serverHostPort(server: string): string | undefined {
  try {
    return hostPort(new URL(server.includes("://") ? server : `nats://${server}`));
  } catch {
    return undefined;
  }
}

function hostPort(url: URL): string {
  return `${url.hostname.toLowerCase()}:${url.port === "" ? "4222" : url.port}`;
}

/**
 * The store URL for the log: as the operator wrote it (`file:./data`, not `file:///data`), or
 * redacted when it holds a secret.
 */
function shownStoreUrl(store: string): string {
  const redacted = redactUrl(store);
  let normalized: string | undefined;
  try {
    normalized = new URL(store).href;
  } catch {
    // Unparseable: only the redacted form is safe.
  }
  return redacted === normalized ? store : redacted;
}
