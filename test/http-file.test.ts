// The gateway's routes over the file store.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore } from "../src/open.js";
import { gatewaySuite } from "./fixtures/http-suite.js";

let dir: string | undefined;
gatewaySuite("file", {
  open: async () => {
    dir = await mkdtemp(join(tmpdir(), "stowage-http-"));
    return openStore(`file:${dir}`);
  },
  cleanup: async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  },
});
