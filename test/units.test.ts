import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseValueSize } from "../src/cli/commands/bench.js";
import { configJsonSchema, resolveConfig } from "../src/component/config.js";
import { parseDuration, parseSize, SIZE_PATTERN } from "../src/internal/units.js";

describe("sizes and durations (one rule for the configuration and the CLI)", () => {
  it("reads size units in any case: KB/MB/GB powers of ten, K/M/G and KiB/MiB/GiB powers of two", () => {
    const cases: [string | number, number][] = [
      [512, 512], ["512", 512], ["7B", 7], ["7 b", 7],
      ["1K", 1024], ["1k", 1024], ["1KiB", 1024], ["1kib", 1024], ["1KB", 1000], ["1kb", 1000],
      ["1M", 1024 ** 2], ["1MiB", 1024 ** 2], ["10MB", 1e7], ["1mb", 1e6],
      ["1G", 1024 ** 3], ["1GiB", 1024 ** 3], ["2GB", 2e9], ["1.5KiB", 1536], ["0.5", 0], [" 64MiB ", 64 * 1024 ** 2],
    ];
    for (const [text, bytes] of cases) assert.equal(parseSize(text), bytes, String(text));
  });

  it("refuses what is not a size, negative or past 2^53 - 1 bytes", () => {
    for (const text of ["", "MiB", "1 TiB", "-1", "1e3", "1MiBs", "1 iB", "0x10", "99999999999GiB"]) assert.equal(parseSize(text), undefined, text);
    for (const value of [-1, 1.5, Number.NaN, Infinity, 2 ** 53]) assert.equal(parseSize(value), undefined, String(value));
  });

  it("reads durations", () => {
    assert.equal(parseDuration("500ms"), 500);
    assert.equal(parseDuration("1.5s"), 1500);
    assert.equal(parseDuration("2h"), 7_200_000);
    assert.equal(parseDuration(250), 250);
    for (const text of ["5", "5 min", "-1s", ""]) assert.equal(parseDuration(text), undefined, text);
  });

  it("gives the configuration's JSON Schema the same pattern, without flags", () => {
    const text = JSON.stringify(configJsonSchema());
    assert.ok(text.includes(JSON.stringify(SIZE_PATTERN.source)), "the size pattern is in the JSON Schema");
    assert.equal(SIZE_PATTERN.flags, "");
  });

  it("the configuration and `stowage bench --size` read a size alike", () => {
    for (const text of ["1k", "64KiB", "1MB", "2m"]) {
      const config = resolveConfig({ max_value_size: text });
      assert.equal(config.maxValueBytes, parseValueSize(text), text);
    }
    assert.throws(() => resolveConfig({ max_value_size: "99999999999GiB" }), /max_value_size: must be at most 2\^53 - 1 bytes$/);
    assert.throws(() => resolveConfig({ max_value_size: "lots" }), /max_value_size: must be bytes or a size such as "512KiB", "1MiB", "10MB"$/);
    assert.throws(() => resolveConfig({ timeouts: { get: "soon" } }), /timeouts\.get: must be milliseconds or a duration such as "500ms"/);
  });
});
