import cliProgress from "cli-progress";
import type { CliContext } from "./context.js";

/** A transfer shorter than this shows no bar at all: bars are for long transfers only. */
const SHOW_AFTER_MS = 500;

export interface ProgressOptions {
  /** What is moving, e.g. `put events/a`. */
  label: string;
  /** Bytes expected, when known: the bar shows a percentage; otherwise bytes so far. */
  total?: number;
}

/**
 * Passes `source` through unchanged, drawing a progress bar on stderr once the transfer has
 * taken longer than half a second, and only when stderr is a terminal (never in pipes, logs or
 * tests). The bar is removed when the transfer ends.
 */
export async function* withProgress(source: AsyncIterable<Uint8Array>, context: CliContext, options: ProgressOptions): AsyncGenerator<Uint8Array> {
  if (!context.interactive) {
    yield* source;
    return;
  }
  const started = Date.now();
  let done = 0;
  let bar: cliProgress.SingleBar | undefined;
  try {
    for await (const chunk of source) {
      done += chunk.byteLength;
      if (!bar && Date.now() - started >= SHOW_AFTER_MS) {
        bar = new cliProgress.SingleBar({
          stream: context.io.stderr,
          format: (_options, params) => formatLine(options, params.value, Date.now() - started),
          clearOnComplete: true,
          hideCursor: true,
          fps: 5,
        });
        bar.start(options.total ?? 0, done);
      }
      bar?.update(done);
      yield chunk;
    }
  } finally {
    bar?.stop();
  }
}

/** A line of progress that is not one transfer (many keys): redrawn from `text()` until stopped. */
export interface StatusLine {
  /** Call as things move: draws the line once they have been moving for half a second. */
  tick(): void;
  /** Erases the line. */
  stop(): void;
}

/**
 * A status line on stderr showing `text(elapsedMs)`, with the same rules as {@link withProgress}:
 * only on a terminal, only after half a second, erased at the end.
 */
export function statusLine(context: CliContext, text: (elapsedMs: number) => string): StatusLine {
  const started = Date.now();
  let bar: cliProgress.SingleBar | undefined;
  let stopped = false;
  return {
    tick() {
      if (stopped || !context.interactive) return;
      if (!bar && Date.now() - started >= SHOW_AFTER_MS) {
        bar = new cliProgress.SingleBar({ stream: context.io.stderr, format: () => text(Date.now() - started), clearOnComplete: true, hideCursor: true, fps: 5 });
        bar.start(1, 0);
      }
      bar?.update(0);
    },
    stop() {
      stopped = true;
      bar?.stop();
    },
  };
}

/** `bytes` over `elapsedMs` as `1.5 MiB/s`. */
export function formatRate(bytes: number, elapsedMs: number): string {
  return `${formatBytes((bytes * 1000) / Math.max(elapsedMs, 1))}/s`;
}

function formatLine(options: ProgressOptions, done: number, elapsedMs: number): string {
  const rate = formatRate(done, elapsedMs);
  const { total } = options;
  if (total === undefined || total <= 0) return `${options.label}  ${formatBytes(done)}  ${rate}`;
  const ratio = Math.min(done / total, 1);
  const width = 30;
  const filled = Math.round(ratio * width);
  const bar = `${"█".repeat(filled)}${"░".repeat(width - filled)}`;
  return `${options.label}  ${bar} ${(ratio * 100).toFixed(0).padStart(3)}%  ${formatBytes(done)} / ${formatBytes(total)}  ${rate}`;
}

/** `1536` -> `1.5 KiB`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(1)} ${units[unit]}`;
}
