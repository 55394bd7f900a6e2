import type { Command } from "commander";
import type { CliContext } from "../context.js";
import * as put from "./put.js";
import * as get from "./get.js";
import * as ls from "./ls.js";
import * as rm from "./rm.js";
import * as stat from "./stat.js";
import * as versions from "./versions.js";
import * as cp from "./cp.js";
import * as prune from "./prune.js";
import * as serve from "./serve.js";
import * as bench from "./bench.js";
import * as mirror from "./mirror.js";

/** A command module: one file in this folder exporting `register`. */
export interface CommandModule {
  register(program: Command, context: CliContext): void;
}

/**
 * Every command, in the order `--help` lists them. A new command is a file here exporting
 * `register(program, context)`, one import line above and one entry below.
 */
export const commands: readonly CommandModule[] = [
  put,
  get,
  ls,
  rm,
  stat,
  versions,
  cp,
  prune,
  serve,
  bench,
  mirror,
];
