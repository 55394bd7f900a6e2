import type { Store } from "../types.js";

/**
 * The test functions the suite declares itself with. node:test and mocha have these names;
 * for vitest and jest pass `{ describe, it, before: beforeAll, after: afterAll }`.
 */
export interface TestRunner {
  describe(name: string, body: () => void): unknown;
  it(name: string, body: (...args: never[]) => unknown): unknown;
  before(body: () => unknown): unknown;
  after(body: () => unknown): unknown;
}

/** Marks the running test skipped where the runner can (node:test, vitest, mocha), then returns. */
export type Skip = (why: string) => void;

/** What every section of the suite shares: the runner, the stores it opened, fresh namespaces. */
export interface SuiteContext {
  describe: (name: string, body: () => void) => void;
  /** Declares a test; its body gets a `skip` for tests gated on a capability. */
  it: (name: string, body: (skip: Skip) => Promise<void>) => void;
  /** A key prefix of its own for every test, so tests sharing the store never see each other. */
  ns: () => string;
  /** Opens another empty store, closed after the suite. */
  fresh: () => Promise<Store>;
  /** Runs `use` with the shared store once the suite opened it. */
  onSetUp: (use: (store: Store) => void) => void;
  setUp: () => Promise<void>;
  tearDown: () => Promise<void>;
}

export function suiteContext(runner: TestRunner, open: () => Promise<Store>): SuiteContext {
  const opened: Store[] = [];
  const users: ((store: Store) => void)[] = [];
  let n = 0;
  const fresh = async () => {
    const store = await open();
    opened.push(store);
    return store;
  };
  return {
    describe: (name, body) => void runner.describe(name, body),
    it: (name, body) =>
      // A rest parameter keeps the function's length 0: jest and mocha would take a declared
      // first parameter for a `done` callback and wait for it.
      void runner.it(name, function (this: unknown, ...args: unknown[]) {
        const context = args[0] as { skip?: (why?: string) => void } | undefined;
        const self = this as { skip?: () => void } | undefined;
        const skip: Skip = (why) => {
          if (typeof context?.skip === "function") context.skip(why);
          else if (typeof self?.skip === "function") self.skip();
        };
        return body(skip);
      } as (...args: never[]) => unknown),
    ns: () => `t${++n}-${Math.random().toString(36).slice(2, 6)}/`,
    fresh,
    onSetUp: (use) => void users.push(use),
    setUp: async () => {
      const store = await fresh();
      for (const use of users) use(store);
    },
    tearDown: async () => {
      for (const store of opened) await store.close().catch(() => undefined);
    },
  };
}
