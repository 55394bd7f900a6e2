// The test runner's wrapper repeats failures above the summary, and the summary stays last.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
// @ts-expect-error: a plain ESM script without type declarations
import { tapRecap } from "../scripts/tap-recap.mjs";

function recap(input: string): string[] {
  const out: string[] = [];
  const r = tapRecap((line: string) => out.push(line));
  for (const line of input.split("\n")) r.line(line);
  r.end();
  return out;
}

const TAP = `TAP version 13
# Subtest: store
    # Subtest: keeps bytes
    ok 1 - keeps bytes
      ---
      duration_ms: 1
      ...
    # Subtest: loses none
    not ok 2 - loses none
      ---
      duration_ms: 2
      failureType: 'testCodeFailure'
      error: 'lost 5 keys'
      ...
    1..2
not ok 1 - store
  ---
  duration_ms: 3
  failureType: 'subtestsFailed'
  error: '1 subtest failed'
  ...
# tests 2
# suites 1
# pass 1
# fail 1
# duration_ms 9`;

describe("tap recap", () => {
  it("lists each failed test with its path and error just above the summary, which stays last", () => {
    const out = recap(TAP);
    const at = out.indexOf("# 1 failed:");
    assert.ok(at > out.indexOf("1..2"), "the recap follows the tests");
    assert.deepEqual(out.slice(at, at + 5), [
      "# 1 failed:",
      "# - store > loses none",
      "#     duration_ms: 2",
      "#     failureType: 'testCodeFailure'",
      "#     error: 'lost 5 keys'",
    ]);
    assert.deepEqual(out.slice(-5), ["# tests 2", "# suites 1", "# pass 1", "# fail 1", "# duration_ms 9"]);
    assert.equal(out.length, TAP.split("\n").length + 5, "every input line is passed through once");
  });

  it("does not repeat a failing TODO test, which does not fail the run", () => {
    const input = TAP.replace("not ok 2 - loses none", "not ok 2 - loses none # TODO not yet").replace("not ok 1 - store", "ok 1 - store");
    assert.equal(recap(input).filter((line) => line.includes("failed:")).length, 0);
  });

  it("adds nothing when every test passed, and passes a test's own comments through in place", () => {
    const input = TAP.replace(/not ok 2[\s\S]*?\.\.\.\n/, "ok 2 - loses none\n").replace(/not ok 1[\s\S]*?\.\.\.\n/, "ok 1 - store\n");
    const withComment = input.replace("# tests 2", "# RSS growth 1 MiB\n# tests 2");
    assert.deepEqual(recap(withComment), withComment.split("\n"));
  });
});
