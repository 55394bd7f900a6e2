#!/usr/bin/env node
// The `stowage` executable: wires the process to the program and turns errors into exit codes.
import { setMaxListeners } from "node:events";
import type { Writable } from "node:stream";
import { EXIT, isBrokenPipe } from "./errors.js";

// The AWS SDK warns once per process, on stderr, that its releases after January 2027 need
// Node 22 (docs/s3.md says what to do). The CLI's stderr carries its own one-line errors only.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

const controller = new AbortController();
// Every store call of a command listens on this one signal (`ls -l` stats many keys at once):
// many listeners are expected, not a leak.
setMaxListeners(0, controller.signal);
// First Ctrl-C (or SIGTERM) cancels the running operation (it rejects and cleans up; `serve`
// stops gracefully); a second one kills. Set before the program loads, which takes a moment:
// a stop asked for meanwhile is kept, not fatal.
const interrupt = () => controller.abort(Object.assign(new Error("interrupted"), { name: "AbortError" }));
process.once("SIGINT", interrupt);
process.once("SIGTERM", interrupt);
const { processIo, runCli } = await import("./program.js");

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
