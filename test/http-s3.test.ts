// The gateway's routes over an S3 store on the suite's S3 server.
import { after } from "node:test";
import { openStore } from "../src/open.js";
import { gatewaySuite } from "./fixtures/http-suite.js";
import { createBucket, deleteBucket, sharedS3Server, storeUrl, uniqueBucket } from "./fixtures/s3.js";

const bucket = uniqueBucket("http");

gatewaySuite("s3", {
  open: async () => {
    const server = await sharedS3Server();
    await createBucket(bucket);
    return openStore(storeUrl(server, bucket));
  },
  cleanup: () => deleteBucket(bucket),
});

// The shared server is a child process of this file's: stopped here, or the file never ends.
after(async () => {
  if (!process.env.S3_ENDPOINT) await (await sharedS3Server()).stop();
});
