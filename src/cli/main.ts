#!/usr/bin/env node
// The `stowage` executable: wires the process to the program and turns errors into exit codes.
import { EXIT, isBrokenPipe } from "./errors.js";
import { processIo, runCli } from "./program.js";

const controller = new AbortController();
// First Ctrl-C cancels the running operation (it rejects and cleans up); a second one kills.
process.once("SIGINT", () => controller.abort(Object.assign(new Error("interrupted"), { name: "AbortError" })));

// A reader that goes away (`stowage ls | head -1`) makes the next write fail with EPIPE; end
// quietly like `cat` does rather than crash with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (err) => {
    if (isBrokenPipe(err)) process.exit(EXIT.brokenPipe);
    throw err;
  });
}

process.exitCode = await runCli(process.argv.slice(2), processIo(controller.signal));
