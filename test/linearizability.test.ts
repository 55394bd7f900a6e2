/** The history checker itself: it must accept what some order explains and refuse what none does. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { checkLinearizable } from "./fixtures/linearizability.js";
import { registerModel, type HistoryOp, type Input, type Output } from "./fixtures/history.js";

const op = (invoked: number, returned: number, input: Input, output: Output = {}, optional = false): HistoryOp => ({ client: 0, key: "k", invoked, returned, input, output, optional });
const get = (invoked: number, returned: number, value: string | null) => op(invoked, returned, { kind: "get" }, { value });
const put = (invoked: number, returned: number, write: string, optional = false) => op(invoked, returned, { kind: "put", write }, { applied: true }, optional);
const check = (ops: HistoryOp[]) => checkLinearizable(registerModel, ops).linearizable;

describe("linearizability checker (register model)", () => {
  it("accepts sequential histories and reads of concurrent writes either way", () => {
    assert.ok(check([put(0, 1, "a"), get(2, 3, "a")]));
    assert.ok(check([put(0, 10, "a"), get(1, 2, null)]));
    assert.ok(check([put(0, 10, "a"), get(1, 2, "a")]));
    assert.ok(check([put(0, 10, "a"), put(0, 10, "b"), get(11, 12, "a")]));
    assert.ok(check([put(0, 10, "a"), put(0, 10, "b"), get(11, 12, "b")]));
  });

  it("refuses a stale read and a read of a value never written", () => {
    assert.ok(!check([put(0, 1, "a"), put(2, 3, "b"), get(4, 5, "a")]));
    assert.ok(!check([put(0, 1, "a"), get(2, 3, "z")]));
    assert.ok(!check([put(0, 1, "a"), op(2, 3, { kind: "delete" }, { applied: true }), get(4, 5, "a")]));
  });

  it("a rejected write: bounded may land only within its call, unbounded at any time after", () => {
    // The late overwrite: a put that was rejected, then an acknowledged put, then the first one's value.
    const late = (returned: number) => [put(0, returned, "a", true), put(2, 3, "b"), get(4, 5, "a")];
    assert.ok(!check(late(1)), "bounded: the rejected write may not land after its call");
    assert.ok(check(late(Infinity)), "unbounded: it may");
    // It may also never land.
    assert.ok(check([put(0, 1, "a", true), get(2, 3, null)]));
    assert.ok(check([put(0, 1, "a", true), get(2, 3, "a")]));
  });

  it("conditional writes: one create wins; a compare-and-set needs the value it names", () => {
    const create = (i: number, r: number, write: string, applied: boolean) => op(i, r, { kind: "create", write }, { applied });
    const cas = (i: number, r: number, expect: string, write: string, applied: boolean) => op(i, r, { kind: "cas", expect, write }, { applied });
    assert.ok(check([create(0, 5, "a", true), create(0, 5, "b", false), get(6, 7, "a")]));
    assert.ok(!check([create(0, 5, "a", true), create(0, 5, "b", true)]), "two creates won");
    assert.ok(!check([create(0, 1, "a", false)]), "a conflict on an empty key");
    assert.ok(check([put(0, 1, "a"), cas(2, 3, "a", "b", true), cas(4, 5, "a", "c", false), get(6, 7, "b")]));
    assert.ok(!check([put(0, 1, "a"), cas(2, 3, "a", "b", true), cas(4, 5, "a", "c", true)]), "two updates from one value");
  });

  it("finds the order in a long, heavily concurrent history that is linearizable by construction", () => {
    // Eight writers and readers overlap by wide margins; the true order is by `at`.
    const ops: HistoryOp[] = [];
    let state: string | null = null;
    for (let i = 0; i < 300; i++) {
      const at = i * 10;
      const spread = 5 + ((i * 37) % 40);
      if (i % 3 === 0) ops.push(get(at - spread, at + spread, state));
      else {
        state = `w${i}`;
        ops.push(put(at - spread, at + spread, state));
      }
    }
    const result = checkLinearizable(registerModel, ops);
    assert.ok(result.linearizable && !result.exhausted, JSON.stringify(result));
  });
});
