// The HTTP gateway and the storage console: re-exports only.
export { createGateway } from "./gateway.js";
export type { Gateway, GatewayOptions, RequestHandler } from "./gateway.js";
export { startGateway, DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT } from "./server.js";
export type { StartGatewayOptions, ServerLimits, GatewayServer } from "./server.js";
export { serveConsole } from "./console-assets.js";
export type { TokenOptions } from "./auth.js";
