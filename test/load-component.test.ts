/**
 * Load on `stowage serve` (a real process) over the shared NATS (loopback):
 *
 * - 64 api requests in flight for ~10 s on a memory store: 0 lost responses, no error answers,
 *   RSS of the serving process flat (reported at start and end), p99 latency reported. The 60 s
 *   (or longer) version is `npm run soak` (bench/soak.ts).
 * - A store that hangs: PostgreSQL behind a TCP proxy that holds every byte, `--timeout 300ms`,
 *   64 clients putting 256 KiB values for 60 s (each waits 250 ms after an error answer, as a
 *   client backing off would). Every put that got a share of the budget is answered "timed out"
 *   and keeps its share while PostgreSQL holds it; every later one is answered "busy" at once;
 *   the serving process's RSS stays under {@link HUNG_RSS_BOUND_MIB}. Once the proxy lets the
 *   bytes through, the component stores again.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, headers } from "@nats-io/transport-node";
import { formatSoak, rssMiB, soakComponent } from "../bench/soak.js";
import { sharedNats } from "./fixtures/nats.js";
import { dropStoreTables, findPostgres, storeUrl, uniqueTable } from "./fixtures/postgres.js";
import { runStowage } from "./fixtures/serve-process.js";
import { uniqueName, waitFor } from "./fixtures/services.js";
import { startTcpProxy } from "./fixtures/tcp-proxy.js";

const url = await sharedNats();
const postgres = await findPostgres();
const DURATION_MS = Number(process.env.LOAD_DURATION_MS ?? 10_000);
const HUNG_DURATION_MS = Number(process.env.LOAD_HUNG_DURATION_MS ?? 60_000);
/**
 * The bound for the serving process while the store hangs: the default budget (64 MiB of
 * values in flight) and what the process holds anyway (Node, tsx, the clients' buffers). A
 * component that queued every timed-out put grew past 1 GiB in 20 s of this load.
 */
const HUNG_RSS_BOUND_MIB = 400;

describe("load: the component under 64 requests in flight", { skip: url === undefined ? "no NATS" : undefined, timeout: 180_000 }, () => {
  it(`answers every request for ${DURATION_MS / 1000} s with flat memory`, async () => {
    const report = await soakComponent({ natsUrl: url!, durationMs: DURATION_MS, inFlight: 64, warmupMs: 3000 });
    console.log(`# load: ${formatSoak(report)}`);
    assert.equal(report.lost, 0, "responses lost");
    assert.equal(report.answered, report.sent);
    assert.deepEqual(report.errors, {}, "no request failed");
    assert.ok(report.answered > 1000, `${report.answered} requests answered: the load ran`);
    if (report.rssStartMiB !== undefined && report.rssEndMiB !== undefined) {
      // Room for V8's heap to size itself (Node 24's grows by about 100 MiB here before it
      // settles); a leak of 2 KiB per request (over 100k requests here) would fail it.
      assert.ok(report.rssEndMiB - report.rssStartMiB < 160, `RSS grew from ${report.rssStartMiB} to ${report.rssEndMiB} MiB`);
    }
  });
});

const hungSkip = url === undefined ? "no NATS" : "skip" in postgres ? postgres.skip : false;

describe("load: a store that hangs", { skip: hungSkip, timeout: HUNG_DURATION_MS + 180_000 }, () => {
  it(`64 clients of 256 KiB puts for ${HUNG_DURATION_MS / 1000} s against PostgreSQL that holds every byte: busy answers, RSS under ${HUNG_RSS_BOUND_MIB} MiB`, async () => {
    const direct = (postgres as { url: string }).url;
    const target = new URL(direct);
    const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    const table = uniqueTable("stowage_hung");
    const viaProxy = new URL(storeUrl(direct, { table }));
    viaProxy.hostname = "127.0.0.1";
    viaProxy.port = String(proxy.port);
    const name = uniqueName("hung").replace(/[^\w-]/g, "_");
    const serve = runStowage(["--store", viaProxy.href, "serve", "--name", name, "--nats", url!, "--timeout", "300ms"]);
    const nc = await connect({ servers: url! });
    try {
      await serve.started;
      const api = `storage.${name}.api`;
      const value = new Uint8Array(256 * 1024).fill(7);
      const failed = (answer: { headers?: { get(name: string): string } }) => (answer.headers?.get("Stowage-Error-Kind") ?? "") !== "";
      const put = (key: string, timeout = 5000) => {
        const h = headers();
        h.set("Stowage-Action", "put");
        h.set("Stowage-Key", key);
        return nc.request(api, value, { headers: h, timeout });
      };
      // The pool has its connections before they hang. A first put on a cold process may pass
      // the 300 ms deadline (connections opening, code compiling): warm up until 20 have landed.
      const warmFailures: string[] = [];
      for (let stored = 0; stored < 20; ) {
        const answer = await put(`warm/${stored}`);
        if (!failed(answer)) stored++;
        else warmFailures.push(answer.headers?.get("Nats-Service-Error") ?? "");
        assert.ok(warmFailures.length <= 20, `the store works before it hangs: ${warmFailures.slice(-3).join("; ")}`);
      }
      if (warmFailures.length > 0) console.log(`# warm-up: ${warmFailures.length} puts failed first: ${warmFailures[0]}`);
      const rssBefore = rssMiB(serve.child.pid);

      proxy.hold("both");
      const outcomes = { ok: 0, timedOut: 0, busy: 0, other: 0, unanswered: 0 };
      const others: string[] = [];
      let peak = rssBefore ?? 0;
      let overBound = false;
      const startedAt = Date.now();
      const end = startedAt + HUNG_DURATION_MS;
      const sampler = setInterval(() => {
        const rss = rssMiB(serve.child.pid) ?? 0;
        peak = Math.max(peak, rss);
        // Stop early rather than let a leak take the machine's memory.
        if (rss > HUNG_RSS_BOUND_MIB) overBound = true;
      }, 500);
      let n = 0;
      const client = async () => {
        while (Date.now() < end && !overBound) {
          let answer;
          try {
            answer = await put(`hung/${n++ % 1000}`, 10_000);
          } catch {
            outcomes.unanswered++;
            continue;
          }
          const message = answer.headers?.get("Nats-Service-Error") ?? "";
          if (!failed(answer)) outcomes.ok++;
          else if (/timed out after 300 ms/.test(message)) outcomes.timedOut++;
          else if (/^request: busy: /.test(message)) outcomes.busy++;
          else {
            outcomes.other++;
            if (others.length < 5) others.push(message);
          }
          await new Promise((r) => setTimeout(r, 250));
        }
      };
      await Promise.all(Array.from({ length: 64 }, client));
      clearInterval(sampler);
      const rssEnd = rssMiB(serve.child.pid);
      console.log(
        `# hung store: ${n} puts of 256 KiB in ${((Date.now() - startedAt) / 1000).toFixed(0)} s: ${outcomes.timedOut} timed out, ${outcomes.busy} busy, ${outcomes.ok} ok, ${outcomes.other} other, ${outcomes.unanswered} unanswered; RSS ${rssBefore?.toFixed(0)} MiB before, peak ${peak.toFixed(0)}, end ${rssEnd?.toFixed(0)} MiB (bound ${HUNG_RSS_BOUND_MIB})`,
      );
      assert.ok(!overBound && peak < HUNG_RSS_BOUND_MIB, `RSS reached ${peak.toFixed(0)} MiB`);
      assert.deepEqual(others, [], "every answer was 'timed out' or 'busy'");
      assert.equal(outcomes.unanswered, 0, "every request answered");
      assert.ok(outcomes.busy > outcomes.timedOut, `past the budget requests are answered busy (${outcomes.busy} busy, ${outcomes.timedOut} timed out)`);
      // The default budget: 256 requests or 64 MiB in flight, whichever comes first.
      assert.ok(outcomes.timedOut <= 256, `${outcomes.timedOut} puts reached the hung store`);

      // The store answers again: the held puts land and the component stores new ones.
      proxy.release();
      await waitFor("the component storing again", async () => !failed(await put("after/hang")), 60_000);
      assert.equal(await serve.stop("SIGTERM"), 0, serve.stderr().slice(-500));
    } finally {
      await nc.close();
      await serve.stop("SIGKILL");
      await proxy.close();
      await dropStoreTables(direct, [table]).catch(() => undefined);
    }
  });
});
