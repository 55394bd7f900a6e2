// The gateway's routes over a PostgreSQL store (with its LISTEN/NOTIFY change feed).
import { openStore } from "../src/open.js";
import { gatewaySuite } from "./fixtures/http-suite.js";
import { dropStoreTables, findPostgres, storeUrl, uniqueTable } from "./fixtures/postgres.js";

const server = await findPostgres();
const table = uniqueTable("stowage_http");

gatewaySuite("postgres", {
  skip: "skip" in server ? server.skip : false,
  open: () => openStore(storeUrl((server as { url: string }).url, { table, watch: "true" })),
  cleanup: () => dropStoreTables((server as { url: string }).url, [table]),
});
