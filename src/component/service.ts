/**
 * Registration as a NATS micro service (`@nats-io/services`), so `nats micro ls`, `$SRV.PING`,
 * `$SRV.INFO` and `$SRV.STATS` find the component. Endpoints (all in the component's queue group):
 *
 * - `api` on the api subject itself (`storage.<name>.api`): the Go component's JSON requests, the
 *   action in the body (or a `Stowage-Action` header in raw mode);
 * - one endpoint per action on `<api subject>.<action>` (`storage.<name>.api.get`...): the
 *   same requests, the action implied by the subject;
 * - `describe` on `<api subject>.describe`: the discovery document (meta, ports, config
 *   schema, health, flow).
 *
 * STATS: `num_requests` per endpoint is exact; handlers are asynchronous, so the library's own
 * timing and error counts do not see them; each endpoint's `data` holds the component's
 * real figures (health and flow rates).
 */
import { readFileSync } from "node:fs";
import type { NatsConnection } from "@nats-io/transport-node";
import { Svcm, type Service } from "@nats-io/services";
import type { ApiHandler } from "./api.js";
import { ACTIONS, type ComponentConfig } from "./config.js";

/** The package version, reported as the service version. */
export const VERSION = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;

export interface ServiceDeps {
  nc: NatsConnection;
  config: ComponentConfig;
  api: ApiHandler;
  /** The discovery document (answered on `<api>.describe`). */
  describe(): unknown;
  /** What each endpoint's STATS `data` holds. */
  statsData(): unknown;
  /** Store URL scheme, for the service metadata (never the URL: it may hold secrets). */
  storeScheme: string;
}

export async function registerService(deps: ServiceDeps): Promise<Service> {
  const { nc, config, api } = deps;
  const service = await new Svcm(nc).add({
    name: config.name,
    version: VERSION,
    description: config.description,
    queue: config.queueGroup,
    metadata: {
      "stowage.store": deps.storeScheme,
      "stowage.api": config.api.subject,
      "stowage.write": config.write.subject,
      "stowage.write_mode": config.write.type,
      "stowage.events": config.events.subject,
    },
    statsHandler: async () => deps.statsData(),
  });
  service.addEndpoint("api", {
    subject: config.api.subject,
    handler: (_err, msg) => void api.handle(msg),
    metadata: { actions: ACTIONS.join(","), modes: "json,raw" },
  });
  const group = service.addGroup(config.api.subject);
  for (const action of ACTIONS) {
    group.addEndpoint(action, { handler: (_err, msg) => void api.handle(msg, action), metadata: { action } });
  }
  group.addEndpoint("describe", {
    handler: (_err, msg) => {
      msg.respond(JSON.stringify(deps.describe()));
    },
    metadata: { discovery: "meta, ports, config_schema, health, flow" },
  });
  return service;
}
