/**
 * The change feed of the open folder, from the gateway's Server-Sent Events. Read with fetch
 * rather than EventSource: fetch can send the Bearer token and see a 501 (a store without
 * watch), where EventSource can do neither.
 */
import { tokenHeader } from "./token.js";

export interface Change {
  key: string;
  op: "put" | "delete";
  version?: string;
}

export type LiveState = "connecting" | "live" | "unsupported" | "offline";

export interface LiveOptions {
  prefix: string;
  onChange(change: Change): void;
  onState(state: LiveState): void;
}

/** Follows the feed until the returned function is called, reconnecting after a break. */
export function follow(options: LiveOptions): () => void {
  const controller = new AbortController();
  void run(options, controller.signal);
  return () => controller.abort();
}

async function run(options: LiveOptions, signal: AbortSignal): Promise<void> {
  let delay = 500;
  while (!signal.aborted) {
    options.onState("connecting");
    try {
      const response = await fetch(`/v1/watch?${new URLSearchParams({ prefix: options.prefix })}`, {
        headers: { accept: "text/event-stream", ...tokenHeader() },
        signal,
      });
      if (response.status === 501) return options.onState("unsupported");
      if (!response.ok || !response.body) throw new Error(`watch: ${response.status}`);
      options.onState("live");
      delay = 500;
      await readEvents(response.body, signal, (type, data) => {
        const change = changeOf(type, data);
        if (change) options.onChange(change);
      });
    } catch {
      if (signal.aborted) return;
    }
    if (signal.aborted) return;
    options.onState("offline");
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 10_000);
  }
}

function changeOf(type: string, data: string): Change | undefined {
  try {
    const event = JSON.parse(data) as { key?: unknown; op?: unknown; version?: unknown };
    const op = event.op ?? type;
    if (typeof event.key !== "string" || (op !== "put" && op !== "delete")) return undefined;
    return { key: event.key, op, version: typeof event.version === "string" ? event.version : undefined };
  } catch {
    return undefined; // a comment or keep-alive
  }
}

/** The text/event-stream format: `event:` and `data:` lines, a blank line ends an event. */
async function readEvents(body: ReadableStream<Uint8Array>, signal: AbortSignal, dispatch: (type: string, data: string) => void): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  signal.addEventListener("abort", () => void reader.cancel().catch(() => undefined), { once: true });
  let buffer = "";
  let type = "message";
  let data: string[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.search(/\r\n|\n|\r/)) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
      if (line === "") {
        if (data.length > 0) dispatch(type, data.join("\n"));
        type = "message";
        data = [];
        continue;
      }
      const colon = line.indexOf(":");
      if (colon === 0) continue; // comment
      const field = colon < 0 ? line : line.slice(0, colon);
      const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") type = text;
      else if (field === "data") data.push(text);
    }
  }
}
