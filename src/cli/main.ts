#!/usr/bin/env node
// The `stowage` executable: wires the process to the program and turns errors into exit codes.
import type { Writable } from "node:stream";
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

const code = await runCli(process.argv.slice(2), processIo(controller.signal));
process.exitCode = code;
// Exit explicitly once output is flushed: stdin still being read after Ctrl-C, or a client's
// timers, must not keep a finished command alive.
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
process.exit(code);

function flushed(stream: Writable): Promise<void> {
  return new Promise((resolve) => stream.write("", () => resolve()));
}
