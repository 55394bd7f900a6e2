/**
 * Faults on S3:
 * - an s3rver of the test's own (child process) stopped and started again on the same port
 *   and directory (behind a proxy that drops the connections first) in the middle of a sustained write load: every put resolves (and
 *   its value is then readable) or rejects with a `transient` error, 0 acknowledged writes
 *   lost, the store recovers by itself;
 * - a multipart upload whose part requests the network keeps dropping (a proxy in front of
 *   moto that resets every connection carrying part 2, so the SDK's retries fail too): the put
 *   rejects `transient`, no object is visible and no upload (with its parts) is left behind.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect, type Socket } from "node:net";
import { ListMultipartUploadsCommand } from "@aws-sdk/client-s3";
import { openStore, StorageError, type Store } from "../src/index.js";
import { assertKind } from "../src/testing/helpers.js";
import {
  adminClient,
  createBucket,
  deleteBucket,
  motoAvailable,
  startMotoServer,
  startRestartableS3Server,
  storeUrl,
  uniqueBucket,
  type S3ServerHandle,
} from "./fixtures/s3.js";
import { freePort, isCI } from "./fixtures/services.js";
import { startTcpProxy } from "./fixtures/tcp-proxy.js";
import { assertOnlyTransient, describeReport, runWriteLoad, verifyAcknowledged, waitUntilWorks } from "./fixtures/write-load.js";

const cleanup: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
});

describe("faults: S3 server stopped and restarted under write load", { timeout: 240_000 }, () => {
  it("transient-only failures, 0 acknowledged writes lost, the store recovers by itself", async () => {
    const server = await startRestartableS3Server();
    cleanup.push(() => server.stop());
    const bucket = uniqueBucket("faults");
    await createBucket(bucket, { server });
    // s3rver writes an object as three files, not atomically: stopped while a PUT is half
    // written, it keeps a torn object its listing then fails on (HTTP 500), which real S3 and
    // MinIO never do. So the network goes first (connections reset, new ones refused, as a
    // server going down looks to a client), then the server stops once its writes finished.
    const proxy = await startTcpProxy("127.0.0.1", Number(new URL(server.endpoint).port));
    cleanup.push(() => proxy.close());
    const store = await openStore(storeUrl({ ...server, endpoint: `http://127.0.0.1:${proxy.port}` }, bucket));
    cleanup.push(() => store.close());
    const report = await runWriteLoad(store, {
      count: 800,
      concurrency: 16,
      prefix: "load",
      fault: {
        afterAcks: 250,
        run: async () => {
          proxy.refuse(true);
          proxy.cut();
          await new Promise((r) => setTimeout(r, 300));
          await server.kill();
          await new Promise((r) => setTimeout(r, 500));
          await server.start();
          proxy.refuse(false);
        },
      },
    });
    assertOnlyTransient(report, "s3 restart");
    await waitUntilWorks("the S3 store", () => store.get("load/000000"));
    const verified = await verifyAcknowledged(store, report, "load");
    console.log(`# ${describeReport("s3rver restart", report, verified)}`);
  });
});

const motoSkip = !motoAvailable() && !isCI ? "moto_server is not installed (pip install 'moto[server]')" : undefined;

describe("faults: a multipart upload the network keeps failing", { skip: motoSkip, timeout: 120_000 }, () => {
  it("rejects transient, leaves no visible object and no upload in progress", async () => {
    const server = await startMotoServer();
    cleanup.push(() => server.stop());
    const proxy = await partDroppingProxy(new URL(server.endpoint).port, 2);
    cleanup.push(() => proxy.close());
    const bucket = uniqueBucket("faults-mp");
    await createBucket(bucket, { server });
    cleanup.push(() => deleteBucket(bucket, { server }));
    const proxied: S3ServerHandle = { ...server, endpoint: `http://127.0.0.1:${proxy.port}` };
    const store: Store = await openStore(storeUrl(proxied, bucket));
    cleanup.push(() => store.close());

    // 12 MiB in 5 MiB parts: parts 1 and 3 go through, every attempt at part 2 is reset.
    const value = new Uint8Array(12 * 1024 * 1024).fill(7);
    const err = await assertKind(store.put("big/object", value), "transient", "multipart put through a failing network");
    assert.ok(err instanceof StorageError);
    assert.ok(proxy.dropped >= 2, `part 2 was attempted (and retried) ${proxy.dropped} times`);
    await assertKind(store.get("big/object"), "not_found", "the failed upload is not visible");
    assert.deepEqual(await store.list("big/"), []);
    const uploads = await adminClient(server).send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    assert.equal(uploads.Uploads?.length ?? 0, 0, "no multipart upload (and so no orphaned part) is left");
    // The same store works once the network does.
    proxy.heal();
    await store.put("big/object", value);
    assert.equal((await store.get("big/object")).byteLength, value.byteLength);
    console.log(`# s3 multipart: part 2 dropped ${proxy.dropped} times; put rejected (${err.kind}: ${err.message}); 0 objects, 0 uploads left`);
  });
});

/**
 * A proxy to 127.0.0.1:`port` that resets any connection whose request uploads part `part`
 * (`?partNumber=N&uploadId=` in the request line) until `heal()`. The SDK retries on a fresh
 * connection; those attempts are reset too, so the part fails for good.
 */
async function partDroppingProxy(port: string, part: number): Promise<{ port: number; dropped: number; heal(): void; close(): Promise<void> }> {
  const listen = await freePort();
  const sockets = new Set<Socket>();
  let healed = false;
  const state = { port: listen, dropped: 0, heal: () => (healed = true), close: async () => undefined as unknown as void };
  const marker = new RegExp(`^PUT [^ ]*[?&]partNumber=${part}(&|\\s)`, "m");
  const server = createServer((client) => {
    const upstream = connect({ host: "127.0.0.1", port: Number(port) });
    sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.on("data", (chunk: Buffer) => {
      if (!healed && marker.test(chunk.subarray(0, 2048).toString("latin1"))) {
        state.dropped++;
        client.resetAndDestroy();
        upstream.destroy();
        return;
      }
      upstream.write(chunk);
    });
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(listen, "127.0.0.1", resolve));
  state.close = () => {
    for (const s of sockets) s.destroy();
    return new Promise((resolve) => server.close(() => resolve()));
  };
  return state;
}
