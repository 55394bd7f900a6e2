// `stowage/testing`: the conformance suite and its helpers, for third-party backends.
export { testStore } from "./conformance.js";
export type { ConformanceOptions } from "./conformance.js";
export * from "./helpers.js";
