/**
 * The HTTP gateway (issue #22), `npm run bench -- http`: `GET /v1/objects/{key}` of 1 KiB and
 * 1 MiB values from a file store through `startGateway`, against a plain `node:http` server
 * answering the same bytes from plain files with `fs.createReadStream` (status, length and
 * type headers, nothing else). Both servers run in this process with the client; 64 requests
 * in flight over a keep-alive agent of 64 sockets per competitor; a request ends when its whole
 * body was read.
 */
import { createReadStream, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { Agent, createServer, get, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore, startGateway } from "../stowage.js";
import { defineSuite, KiB, MiB, type BenchContext } from "../harness.js";
import { pattern } from "../standard.js";

const IN_FLIGHT = 64;
const KEYS = 16;
const GATEWAY = "stowage gateway (file:)";
const PLAIN = "node:http + fs.createReadStream";

/** GETs `url` over `agent` and resolves with the body's size once it was read whole. */
function fetchBody(agent: Agent, url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { agent }, (res) => {
      let size = 0;
      res.on("data", (chunk: Buffer) => (size += chunk.length));
      res.on("end", () => (res.statusCode === 200 ? resolve(size) : reject(new Error(`status ${res.statusCode} for ${url}`))));
      res.on("error", reject);
    }).on("error", reject);
  });
}

/** The baseline: files served as they are, by the plainest node:http code. */
function plainServer(root: string): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const path = join(root, decodeURIComponent((req.url ?? "/").slice(1)));
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": size });
    createReadStream(path).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server })));
}

export default defineSuite("http", async (b) => {
  const sizes = [
    { label: "1 KiB", bytes: KiB },
    { label: "1 MiB", bytes: MiB },
  ].filter((s) => b.wants(`http get ${s.label}`));
  if (sizes.length === 0) return;
  const root = mkdtempSync(join(tmpdir(), "stowage-bench-http-"));
  const store = await openStore(`file:${join(root, "store")}`);
  const gateway = await startGateway(store, { port: 0 });
  const plain = await plainServer(root);
  try {
    for (const size of sizes) await getCase(b, size, { root, store, gatewayUrl: gateway.url, plainUrl: plain.url });
  } finally {
    await gateway.close(1000);
    await new Promise((resolve) => plain.server.close(resolve));
    plain.server.closeAllConnections();
    await store.close();
    rmSync(root, { recursive: true, force: true });
  }
});

interface Servers {
  root: string;
  store: Awaited<ReturnType<typeof openStore>>;
  gatewayUrl: string;
  plainUrl: string;
}

async function getCase(b: BenchContext, size: { label: string; bytes: number }, s: Servers): Promise<void> {
  const value = pattern(size.bytes);
  const name = (i: number) => `v${size.bytes}-${i % KEYS}`;
  const agents: Agent[] = [];
  const agent = () => {
    const a = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
    agents.push(a);
    return a;
  };
  const gatewayAgent = agent();
  const plainAgent = agent();
  const check = (got: number) => {
    if (got !== size.bytes) throw new Error(`read ${got} bytes of ${size.bytes}`);
  };
  try {
    await b.run({
      name: `http get ${size.label}`,
      bytesPerOp: size.bytes,
      concurrency: IN_FLIGHT,
      baseline: PLAIN,
      competitors: [
        {
          name: PLAIN,
          setup: async () => {
            for (let i = 0; i < KEYS; i++) writeFileSync(join(s.root, name(i)), value);
          },
          op: async (i) => check(await fetchBody(plainAgent, `${s.plainUrl}/${name(i)}`)),
        },
        {
          name: GATEWAY,
          setup: async () => {
            for (let i = 0; i < KEYS; i++) await s.store.put(`bench/${name(i)}`, value);
          },
          op: async (i) => check(await fetchBody(gatewayAgent, `${s.gatewayUrl}/v1/objects/bench/${name(i)}`)),
        },
      ],
      targets: [{ issue: "#22", kind: "ratio", of: GATEWAY, vs: PLAIN, atLeast: 0.8 }],
      note: `${IN_FLIGHT} requests in flight per competitor over keep-alive sockets; both servers and the client share this process. The gateway stats the key, answers its headers (etag, type, safety) and streams getStream; the baseline stats a file and pipes createReadStream.`,
    });
  } finally {
    for (const a of agents) a.destroy();
  }
}
