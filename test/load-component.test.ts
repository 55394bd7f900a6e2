/**
 * Load: `stowage serve` (a real process, memory store) under 64 api requests in flight for
 * ~10 s on the shared NATS (loopback): 0 lost responses, no error answers, RSS of the serving
 * process flat (reported at start and end), p99 latency reported. The 60 s (or longer) version
 * is `npm run soak` (bench/soak.ts).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { formatSoak, soakComponent } from "../bench/soak.js";
import { sharedNats } from "./fixtures/nats.js";

const url = await sharedNats();
const DURATION_MS = Number(process.env.LOAD_DURATION_MS ?? 10_000);

describe("load: the component under 64 requests in flight", { skip: url === undefined ? "no NATS" : undefined, timeout: 180_000 }, () => {
  it(`answers every request for ${DURATION_MS / 1000} s with flat memory`, async () => {
    const report = await soakComponent({ natsUrl: url!, durationMs: DURATION_MS, inFlight: 64, warmupMs: 3000 });
    console.log(`# load: ${formatSoak(report)}`);
    assert.equal(report.lost, 0, "responses lost");
    assert.equal(report.answered, report.sent);
    assert.deepEqual(report.errors, {}, "no request failed");
    assert.ok(report.answered > 1000, `${report.answered} requests answered: the load ran`);
    if (report.rssStartMiB !== undefined && report.rssEndMiB !== undefined) {
      // Generous for a loaded 2-core machine: a leak per request (~100k requests) would pass this by far.
      assert.ok(report.rssEndMiB - report.rssStartMiB < 64, `RSS grew from ${report.rssStartMiB} to ${report.rssEndMiB} MiB`);
    }
  });
});
