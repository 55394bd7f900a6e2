// The gateway's routes over a NATS store on the shared server (versions and the change feed included).
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { openStore } from "../src/open.js";
import { gatewaySuite } from "./fixtures/http-suite.js";
import { sharedNats } from "./fixtures/nats.js";
import { uniqueName } from "./fixtures/services.js";

const url = await sharedNats();
const bucket = uniqueName("http").replace(/[^-\w]/g, "_");

gatewaySuite("nats", {
  skip: url === undefined ? "no NATS server" : false,
  // Small inline threshold: the 3000-byte value takes the chunked path too.
  open: () => openStore(`${url}/${bucket}?history=5&inlineMax=512&chunkSize=1024`),
  cleanup: async () => {
    const nc = await connect({ servers: url });
    const jsm = await jetstreamManager(nc);
    for (const stream of [`KV_${bucket}`, `OBJ_${bucket}_large`]) await jsm.streams.delete(stream).catch(() => undefined);
    await nc.close();
  },
});
