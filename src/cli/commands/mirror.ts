import type { Command } from "commander";
import { parseDuration } from "../../internal/units.js";
import { Mirror, type MirrorEvent, type MirrorStatus } from "../../move/mirror.js";
import { parseCheckpointLocation } from "../../move/checkpoint.js";
import { openStore, redactUrl } from "../../open.js";
import type { Store } from "../../types.js";
import type { CliContext } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { formatBytes } from "../progress.js";
import { positiveInt } from "../arguments.js";

interface MirrorCliOptions {
  from: string;
  to: string;
  prefix?: string;
  toPrefix?: string;
  deletes?: boolean;
  checkpoint?: string;
  name?: string;
  interval: string;
  concurrency?: number;
  timeout: string;
  safetyMargin?: string;
  statusInterval: string;
}

export function register(program: Command, context: CliContext): void {
  program
    .command("mirror")
    .description("keep --to in step with --from under a prefix: an initial copy, then every change as it happens, until Ctrl-C or SIGTERM")
    .requiredOption("--from <url>", "source store URL")
    .requiredOption("--to <url>", "destination store URL")
    .option("--prefix <prefix>", "mirror the source keys starting with this (default: all)")
    .option("--to-prefix <prefix>", "put them under this prefix in the destination instead (default: the same keys)")
    .option("--deletes", "delete from the destination what is deleted from the source (default: keep it)")
    .option("--checkpoint <file|key>", "where progress is kept: a key of the destination, or a local file (file:PATH, /PATH, ./PATH) (default: key .stowage/mirror/<name>)")
    .option("--name <name>", "the mirror's name, in its checkpoint key and its lag metric (default: default)")
    .option("--interval <duration>", "for a source without a change feed: how often it is listed", "5s")
    .option("-j, --concurrency <n>", "keys applied at once (default 16)", positiveInt("--concurrency", 256))
    .option("--timeout <duration>", "deadline of each store call: a call that hangs (a stalled network) fails and is retried", "60s")
    .option("--safety-margin <duration>", "how far before the checkpoint a restart looks again (default 60s)")
    .option("--status-interval <duration>", "without a terminal: how often a status line is logged", "10s")
    .action(async (options: MirrorCliOptions) => {
      const duration = (text: string, flag: string) => {
        const ms = parseDuration(text);
        if (ms === undefined || ms <= 0) throw new CliError(EXIT.usage, `${flag} must be a duration such as 500ms, 5s or 1m, got ${JSON.stringify(text)}`);
        return ms;
      };
      const interval = duration(options.interval, "--interval");
      const statusInterval = duration(options.statusInterval, "--status-interval");
      const safetyMarginMs = options.safetyMargin === undefined ? undefined : duration(options.safetyMargin, "--safety-margin");
      const concurrency = options.concurrency;
      const timeout = duration(options.timeout, "--timeout");
      const io = context.io;
      const source = await openStore(options.from, { timeout });
      let destination: Store | undefined;
      try {
        destination = await openStore(options.to, { timeout });
        const controller = new AbortController();
        const stop = () => controller.abort(context.signal?.reason);
        if (context.signal?.aborted) stop();
        context.signal?.addEventListener("abort", stop, { once: true });
        const mirror = new Mirror(source, destination, {
          prefix: options.prefix,
          destinationPrefix: options.toPrefix,
          deletes: options.deletes === true,
          checkpoint: options.checkpoint === undefined ? undefined : parseCheckpointLocation(options.checkpoint),
          name: options.name,
          interval,
          concurrency,
          safetyMarginMs,
          signal: controller.signal,
          onEvent: (event) => report(event),
        });
        const terminal = context.interactive;
        let statusShown = false;
        let lastRetryLog = 0;
        const clearStatus = () => {
          if (statusShown) io.stderr.write("\r\x1b[2K");
          statusShown = false;
        };
        const report = (event: MirrorEvent) => {
          switch (event.type) {
            case "copied": {
              const s = event.summary;
              clearStatus();
              io.stdout.write(`${event.reason === "start" ? "initial copy" : event.reason === "resume" ? "catch-up copy" : "rescan"}: ${s.keys} keys examined, ${s.copied} copied (${formatBytes(s.bytes)}), ${s.skipped} skipped, ${s.failed} failed\n`);
              break;
            }
            case "reconciled":
              clearStatus();
              io.stdout.write(`reconciled: ${event.deleted} deleted of ${event.examined} destination keys\n`);
              break;
            case "following":
              clearStatus();
              io.stdout.write(`following ${redactUrl(options.from)} (${event.mode === "watch" ? "change feed" : `listing every ${options.interval}`})\n`);
              break;
            case "rescan":
              clearStatus();
              io.stderr.write(`mirror: ${event.reason === "overflow" ? "too many changes waiting" : "the change feed was lost"}; rescanning from ${event.since.toISOString()}\n`);
              break;
            case "failed":
              clearStatus();
              io.stderr.write(`mirror: ${errorText(event.error)} (passed over)\n`);
              break;
            case "retrying":
              // An outage retries many keys many times: one line every few seconds says enough.
              if (Date.now() - lastRetryLog < 5000) break;
              lastRetryLog = Date.now();
              clearStatus();
              io.stderr.write(`mirror: ${event.during}: ${errorText(event.error)}; retrying\n`);
              break;
            default:
              break;
          }
        };
        const timer = setInterval(
          () => {
            const line = statusLine(mirror.status());
            if (terminal) {
              io.stderr.write(`\r\x1b[2K${line}`);
              statusShown = true;
            } else {
              io.stderr.write(`${new Date().toISOString()} ${line}\n`);
            }
          },
          terminal ? 1000 : statusInterval,
        );
        try {
          const summary = await mirror.run();
          clearStatus();
          io.stdout.write(`stopped: ${summary.copied} copied, ${summary.skipped} skipped, ${summary.deleted} deleted, ${summary.failed} failed; applied until ${summary.appliedUntil?.toISOString() ?? "-"}\n`);
        } finally {
          clearInterval(timer);
          context.signal?.removeEventListener("abort", stop);
        }
      } finally {
        await Promise.allSettled([source.close(), destination?.close()]);
      }
    });
}

function statusLine(status: MirrorStatus): string {
  const phase = status.phase === "copying" ? `copying (${status.copyProgress} keys examined)` : status.phase;
  return `mirror ${status.name}: ${phase}, lag ${status.lagSeconds.toFixed(1)}s, ${status.pending} pending, ${status.copied} copied, ${status.skipped} skipped, ${status.deleted} deleted, ${status.failed} failed`;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
