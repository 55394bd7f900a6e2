// `stowage/testing`: the conformance suite and its helpers, for third-party backends.
export { testStore } from "./conformance.js";
export type { ConformanceOptions, TestRunner } from "./conformance.js";
export * from "./helpers.js";
