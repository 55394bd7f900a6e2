/**
 * The stowage the benchmarks measure: the built package (dist/, what an application that
 * installs stowage runs), not the TypeScript sources through tsx. tsx's esbuild transform keeps
 * function names by wrapping closures as they are made, which cost 5–10% of a 1 KiB S3 get
 * here, while every competitor is plain JavaScript from node_modules. `npm run bench` builds
 * dist/ first.
 */
export { ClaimCheck, copy, MemoryStore, NatsStore, openStore, silentLogger, startGateway, StorageComponent, withCache, withMetrics } from "../dist/index.js";
export type { CachedStore } from "../dist/index.js";
