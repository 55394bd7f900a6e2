import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { compareKeys, keyProblem, prefixUpperBound, MAX_KEY_BYTES } from "../src/index.js";
import { INVALID_KEYS, ODD_KEYS } from "../src/testing/helpers.js";

const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
const sign = (n: number) => Math.sign(n);
// Well-formed strings over the whole Unicode range, astral characters included.
const unicodeText = fc.string({ unit: "grapheme", maxLength: 12 });

describe("keys", () => {
  it("accepts the odd keys and refuses the invalid ones with a reason", () => {
    for (const key of ODD_KEYS) assert.equal(keyProblem(key), undefined, JSON.stringify(key));
    for (const [label, key] of INVALID_KEYS) assert.match(keyProblem(key) ?? "", /\w/, label);
  });

  it("measures the limit in UTF-8 bytes, not characters", () => {
    assert.equal(keyProblem("€".repeat(341)), undefined); // 1023 bytes
    assert.match(keyProblem("€".repeat(342)) ?? "", /1026 UTF-8 bytes, the limit is 1024/);
    assert.equal(keyProblem("a".repeat(MAX_KEY_BYTES)), undefined);
  });

  it("compareKeys orders exactly as UTF-8 bytes do", () => {
    fc.assert(fc.property(unicodeText, unicodeText, (a, b) => sign(compareKeys(a, b)) === sign(byBytes(a, b))), { numRuns: 5000 });
    assert.ok(compareKeys("\u{1F600}", "\uffff") > 0, "astral sorts after the BMP, unlike UTF-16 order");
  });

  it("prefixUpperBound bounds exactly the keys with the prefix", () => {
    fc.assert(
      fc.property(unicodeText, unicodeText, (prefix, rest) => {
        const bound = prefixUpperBound(prefix);
        const key = prefix + rest;
        if (bound === undefined) return prefix === "" || [...prefix].every((c) => c === "\u{10ffff}");
        return compareKeys(key, bound) < 0 && compareKeys(bound, prefix) > 0;
      }),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(unicodeText, unicodeText, (prefix, other) => {
        // Anything at or above the bound does not start with the prefix.
        const bound = prefixUpperBound(prefix);
        if (bound === undefined || compareKeys(other, bound) < 0) return true;
        return !other.startsWith(prefix);
      }),
      { numRuns: 3000 },
    );
    assert.equal(prefixUpperBound(""), undefined);
    assert.equal(prefixUpperBound("a/b"), "a/c");
    assert.equal(prefixUpperBound("a\ud7ff"), "a\ue000");
  });
});
