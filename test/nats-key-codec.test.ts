import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { keyProblem } from "../src/keys.js";
import { decodeKey, encodeKey, prefixFilter, tryDecodeKey } from "../src/backends/nats/key-codec.js";

/** Valid store keys drawn from segments rich in the characters that matter to subjects. */
const segment = fc.oneof(
  fc.string({ unit: fc.constantFrom("a", "Z", "0", "-", "_", ".", "*", ">", "=", " ", "%", "+", "~", "é", "€", "😀", "\u00a0"), maxLength: 6 }),
  fc.string({ unit: "grapheme", maxLength: 4 }),
);
const validKey = fc
  .array(segment, { minLength: 1, maxLength: 5 })
  .map((segments) => segments.join("/"))
  .filter((key) => keyProblem(key) === undefined);

const KV_KEY = /^[-/_=.A-Za-z0-9]+$/;

/** NATS subject matching of a filter with `>` (what the server does for a consumer's filter). */
function subjectMatches(filter: string, subject: string): boolean {
  const f = filter.split(".");
  const s = subject.split(".");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === ">") return s.length > i;
    if (f[i] !== "*" && f[i] !== s[i]) return false;
  }
  return f.length === s.length;
}

describe("nats key codec", () => {
  it("round-trips every valid key", () => {
    fc.assert(fc.property(validKey, (key) => decodeKey(encodeKey(key)) === key), { numRuns: 2000 });
  });

  it("writes only KV key characters, never an empty token or a wildcard", () => {
    fc.assert(
      fc.property(validKey, (key) => {
        const encoded = encodeKey(key);
        assert.match(encoded, KV_KEY);
        for (const token of encoded.split(".")) {
          assert.ok(token.length > 0 && token !== "*" && token !== ">", `token ${JSON.stringify(token)} of ${JSON.stringify(key)}`);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("turns a prefix into a filter matching exactly the keys starting with it", () => {
    fc.assert(
      fc.property(validKey, validKey, fc.nat(), (key, other, cut) => {
        const chars = [...key];
        const prefix = chars.slice(0, cut % (chars.length + 1)).join("");
        const { filter, exact } = prefixFilter(prefix);
        // Every key starting with the prefix matches the filter (no false negatives)...
        assert.ok(subjectMatches(filter, encodeKey(key)), `${JSON.stringify(key)} under ${JSON.stringify(prefix)}`);
        // ...and an exact filter matches no other key.
        if (exact && subjectMatches(filter, encodeKey(other))) assert.ok(other.startsWith(prefix), `${JSON.stringify(other)} is not under ${JSON.stringify(prefix)}`);
      }),
      { numRuns: 3000 },
    );
  });

  it("is exact for a prefix that ends inside a segment or with '/'", () => {
    assert.deepEqual(prefixFilter("k/01999"), { filter: "k./.0.1.9.9.9.>", exact: true });
    assert.deepEqual(prefixFilter("a/"), { filter: "a./.>", exact: true });
    assert.deepEqual(prefixFilter(""), { filter: ">", exact: true });
    // A trailing escaped run may continue in the key's token: left to the wildcard.
    assert.deepEqual(prefixFilter("a b"), { filter: "a.=20.b.>", exact: true });
    assert.deepEqual(prefixFilter("a "), { filter: "a.>", exact: false });
  });

  it("encodes the worst keys within the subject budget", () => {
    const worstCases = ["€".repeat(341), " ".repeat(1024), "a ".repeat(512), "aé".repeat(341), "/".repeat(1023) + "a"];
    for (const worst of worstCases) {
      assert.ok(encodeKey(worst).length <= 3 * Buffer.byteLength(worst) + 2, `${JSON.stringify(worst.slice(0, 8))}: ${encodeKey(worst).length}`);
      assert.equal(decodeKey(encodeKey(worst)), worst);
    }
    fc.assert(fc.property(validKey, (key) => encodeKey(key).length <= 3 * Buffer.byteLength(key) + 2), { numRuns: 2000 });
  });

  it("writes ASCII keys one character per token, runs of other characters as one escaped token", () => {
    assert.equal(encodeKey("events/t-1"), "e.v.e.n.t.s./.t.-.1.=");
    assert.equal(encodeKey("a//b/"), "a././.b./.=");
    assert.equal(encodeKey("x.y/*/>"), "x.=2E.y./.=2A./.=3E.=");
    assert.equal(encodeKey("a é b"), "a.=20=C3=A9=20.b.=");
  });

  it("refuses keys it did not write (foreign, layout 1 or non-canonical)", () => {
    for (const kvKey of ["events.sensors", "ab.=", "a.=41.=", "a.=2F.=", "=20.=20.=", "=C3.=", "a.b", "=", "a.*.=", "a.=zz.="]) {
      assert.equal(tryDecodeKey(kvKey), undefined, kvKey);
      assert.throws(() => decodeKey(kvKey), /stowage key|UTF-8|plain|empty/);
    }
  });
});
