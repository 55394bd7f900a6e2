import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { keyProblem } from "../src/keys.js";
import { decodeKey, decodeSegment, encodeKey, prefixFilter, tryDecodeKey } from "../src/backends/nats/key-codec.js";

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

  it("turns a prefix into a filter matching exactly the keys under its complete segments", () => {
    fc.assert(
      fc.property(validKey, validKey, fc.nat(), (key, other, cut) => {
        const prefix = key.slice(0, cut % (key.length + 1));
        const filter = prefixFilter(prefix);
        // Every key starting with the prefix matches the filter (no false negatives)...
        assert.ok(subjectMatches(filter, encodeKey(key)), `${JSON.stringify(key)} under ${JSON.stringify(prefix)}`);
        // ...and a key matching the filter starts with the prefix's complete segments.
        const complete = prefix.slice(0, prefix.lastIndexOf("/") + 1);
        if (subjectMatches(filter, encodeKey(other))) assert.ok(other.startsWith(complete));
      }),
      { numRuns: 2000 },
    );
  });

  it("encodes the worst key within the subject budget", () => {
    const worst = "€".repeat(341); // 1023 bytes, every byte escaped
    assert.ok(encodeKey(worst).length <= 3 * 1024);
    assert.equal(decodeKey(encodeKey(worst)), worst);
  });

  it("reads ASCII keys as they are and marks empty segments", () => {
    assert.equal(encodeKey("events/sensors/temp-123"), "events.sensors.temp-123");
    assert.equal(encodeKey("a//b/"), "a.=.b.=");
    assert.equal(encodeKey("x.y/*/>"), "x=2Ey.=2A.=3E");
    assert.equal(prefixFilter("a/b/c"), "a.b.>");
    assert.equal(prefixFilter("abc"), ">");
  });

  it("refuses keys it did not write (foreign or non-canonical)", () => {
    for (const token of ["=41", "=zz", "a=", "=C3", "*"]) assert.throws(() => decodeSegment(token), /token/);
    assert.equal(tryDecodeKey("a.=4"), undefined);
  });
});
