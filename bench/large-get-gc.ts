/**
 * Probe: what V8's collector costs a 1 MiB get, before and after the process's first full
 * mark-compact. Gets 1 MiB objects from an s3rver with stowage's s3: store, with OpenDAL, and
 * with two bare readers (below), two rounds each; forces one full GC; runs three more rounds.
 * Prints ops/s, the process's CPU per get (every thread) and the collections by kind
 * (PerformanceObserver "gc").
 *
 *   npm run build && node --expose-gc --import tsx bench/large-get-gc.ts [roundMs]
 *   npm run build && node --expose-gc --initial-old-space-size=256 --import tsx bench/large-get-gc.ts
 *   (add --trace-incremental-marking to see why each marking starts)
 *
 * The bare readers ask which allocation sets the collector off. Both sign each GetObject with
 * the SDK's signer and read the response over one keep-alive socket into one reused 64 KiB
 * buffer (`net.connect({ onread })`), so Node allocates nothing per socket read. "bare reader"
 * then copies the body into a fresh 1 MiB Uint8Array, as any get must; "bare, reused result"
 * copies it into the same Uint8Array every time (wrong for a store, here only as a control).
 * They handle exactly the answers s3rver gives here (200, Content-Length), nothing else.
 *
 * What it found, and why (V8 counts JavaScript-made ArrayBuffers against the old generation's
 * limit; OpenDAL's native buffers count as external memory), is in docs/deployment.md, "Large
 * values and V8's garbage collector".
 */
import { connect, type Socket } from "node:net";
import { PerformanceObserver } from "node:perf_hooks";
import { Sha256 } from "@smithy/core/checksum";
import { SignatureV4 } from "@smithy/signature-v4";
import { openStore } from "./stowage.js";
import { createBucket, deleteBucket, startS3Server, storeUrl, type S3ServerHandle } from "../test/fixtures/s3.js";
import { gc, MiB } from "./harness.js";
import { opendalOperator } from "./cases/s3.js";

if (!gc) throw new Error("run with node --expose-gc");
const roundMs = Number(process.argv[2] ?? 2000);
const GC_KINDS: Record<number, string> = { 1: "scavenge", 2: "minor mark-compact", 4: "mark-compact", 8: "incremental marking", 16: "weak callbacks" };
const collections = new Map<string, number>();
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = GC_KINDS[((entry as { detail?: { kind?: number } }).detail)?.kind ?? 0] ?? "other";
    collections.set(kind, (collections.get(kind) ?? 0) + 1);
  }
}).observe({ entryTypes: ["gc"] });

async function round(label: string, get: (key: string) => Promise<Uint8Array>): Promise<void> {
  collections.clear();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < roundMs) {
    const value = await get(`big/${n++ % 5}`);
    if (value.byteLength !== MiB) throw new Error(`${label}: got ${value.byteLength} bytes`);
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const gcs = [...collections].map(([kind, count]) => `${count} ${kind}`).join(", ");
  console.log(`${label.padEnd(28)} ${(n / seconds).toFixed(0).padStart(4)} gets/s, ${((cpu.user + cpu.system) / n / 1000).toFixed(2)} ms CPU per get; ${gcs}`);
}

/**
 * Signed GetObject requests over one keep-alive socket whose reads all land in one reused
 * buffer. The socket is opened again when the server has closed it (s3rver closes one idle
 * for 5 s, as it is while the other competitors run).
 */
class BareReader {
  readonly #readBuffer = Buffer.allocUnsafe(64 * 1024);
  readonly #signer: SignatureV4;
  readonly #url: URL;
  #socket: Socket | undefined;
  #onRead: ((bytes: Buffer) => void) | undefined;
  #onClose: (() => void) | undefined;
  #reused: Uint8Array | undefined;

  constructor(
    server: S3ServerHandle,
    readonly bucket: string,
    readonly reuseResult: boolean,
  ) {
    this.#url = new URL(server.endpoint);
    this.#signer = new SignatureV4({
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
      region: server.region,
      service: "s3",
      sha256: Sha256,
    });
  }

  async #connected(): Promise<Socket> {
    if (this.#socket && !this.#socket.destroyed && this.#socket.writable) return this.#socket;
    const onread = { buffer: this.#readBuffer, callback: (n: number) => (this.#onRead?.(this.#readBuffer.subarray(0, n)), true) };
    const socket = connect({ host: this.#url.hostname, port: Number(this.#url.port), onread });
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    socket.on("error", () => socket.destroy()).on("close", () => this.#onClose?.());
    this.#socket = socket;
    return socket;
  }

  async get(key: string): Promise<Uint8Array> {
    const path = `/${this.bucket}/${key}`;
    const signed = await this.#signer.sign({ method: "GET", protocol: "http:", hostname: this.#url.hostname, port: Number(this.#url.port), path, query: {}, headers: { host: this.#url.host } });
    const socket = await this.#connected();
    let head = `GET ${path} HTTP/1.1\r\n`;
    for (const [name, value] of Object.entries(signed.headers)) head += `${name}: ${value}\r\n`;
    return new Promise((resolve, reject) => {
      this.#onClose = () => reject(new Error("the server closed the connection mid-answer"));
      let header = Buffer.alloc(0);
      let body: Uint8Array | undefined;
      let received = 0;
      this.#onRead = (bytes) => {
        if (!body) {
          header = Buffer.concat([header, bytes]);
          const end = header.indexOf("\r\n\r\n");
          if (end < 0) return;
          const fields = header.toString("latin1", 0, end);
          const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(fields)?.[1]);
          if (!fields.startsWith("HTTP/1.1 200 ") || !Number.isSafeInteger(length)) return reject(new Error(`unexpected answer: ${fields.split("\r\n")[0]}`));
          body = this.reuseResult ? (this.#reused ??= new Uint8Array(length)) : new Uint8Array(length);
          bytes = header.subarray(end + 4);
        }
        body.set(bytes, received);
        received += bytes.byteLength;
        if (received === body.byteLength) {
          this.#onRead = this.#onClose = undefined;
          resolve(body);
        }
      };
      socket.write(`${head}\r\n`);
    });
  }

  close(): void {
    this.#socket?.destroy();
  }
}

const server = await startS3Server();
const bucket = `large-get-gc-${process.pid}`;
await createBucket(bucket, { server });
const store = await openStore(storeUrl(server, bucket));
const readers: BareReader[] = [];
try {
  const value = new Uint8Array(MiB).map((_, i) => (i * 31) & 0xff);
  for (let i = 0; i < 5; i++) await store.put(`big/${i}`, value);
  const operator = opendalOperator(server, bucket);
  const [bare, bareReused] = [new BareReader(server, bucket, false), new BareReader(server, bucket, true)];
  readers.push(bare, bareReused);
  if (Buffer.compare(await bare.get("big/1"), value) !== 0) throw new Error("the bare reader read other bytes");
  const competitors: [string, (key: string) => Promise<Uint8Array>][] = [
    ["stowage s3:", (key) => store.get(key)],
    ["OpenDAL s3", (key) => operator.read(key)],
    ["bare reader", (key) => bare.get(key)],
    ["bare, reused result", (key) => bareReused.get(key)],
  ];
  for (let i = 0; i < 2; i++) for (const [name, get] of competitors) await round(`${name} before`, get);
  gc();
  console.log("-- one full GC (gc()) --");
  for (let i = 0; i < 3; i++) for (const [name, get] of competitors) await round(`${name} after`, get);
} finally {
  for (const reader of readers) reader.close();
  await store.close();
  await deleteBucket(bucket, { server }).catch(() => undefined);
  await server.stop();
}
