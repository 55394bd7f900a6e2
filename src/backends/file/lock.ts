/**
 * The commit lock of one key. Every write of a key (put, putStream, putMany, delete) holds it
 * for the few system calls between checking the write's condition and the rename or unlink
 * that makes the write visible, so the writes of one key serialise across every process
 * sharing the directory: for any other writer, a conditional write's check and its commit are
 * one step.
 *
 * Within a process, writers of one key queue on a promise chain and never meet on disk. Across
 * processes the lock is a symbolic link `<value file>.lock` beside the value file, made with
 * symlink(2), which fails when the name exists: one system call. The link is never followed:
 * its text names the holder (machine, pid and start time of its process).
 * Where the filesystem makes no symbolic links, the lock is a small file with the same text,
 * made with O_EXCL.
 *
 * A lock whose holder died must not block its key for ever. A holder on this machine (same
 * boot, same pid namespace) is checked directly: it is dead when its pid is gone or now belongs
 * to a process that started at another time. A holder that cannot be checked (another machine
 * on a shared mount, another container) loses its lock once the lock is older than `staleMs`;
 * so that this never takes the lock of a writer about to commit, a writer that has held its
 * lock for `staleMs / 2` gives up instead of committing.
 */
import { createHash, randomBytes } from "node:crypto";
import { constants, readFileSync, readlinkSync } from "node:fs";
import { link, lstat, open, readFile, readlink, rename, symlink, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import { StorageError, type StorageOp } from "../../errors.js";
import { raceSignal, sleep } from "../../internal/signal.js";
import { errno } from "./safe-fs.js";

/** The suffix of a lock's name: `<value file name>.lock`, which no key's file name ends in. */
export const LOCK_SUFFIX = ".lock";

/**
 * Who holds a lock, written as the lock's text `<machine> <pid> <start> <id>`: short enough
 * (under 60 bytes) for ext4 and xfs to keep a symbolic link in its inode, where a longer one
 * costs a data block for every write.
 */
interface Owner {
  /**
   * 12 hex digits of SHA-256 over host name, boot id and pid namespace: pids mean something
   * only on one machine, in one boot, inside one namespace.
   */
  machine: string;
  pid: number;
  /** The process's start time in clock ticks since boot ("-" where unknown): tells a reused pid. */
  start: string;
  /** Unique per acquisition, so a lock can be told from a later one of the same process. */
  id: string;
}

interface Self {
  machine: string;
  pid: number;
  start: string;
  /** Whether /proc tells boot, namespace and start times (Linux). */
  proc: boolean;
}

let self: Self | undefined;
const processToken = randomBytes(4).toString("hex");
let acquisitions = 0;

function readOr(read: () => string): string {
  try {
    return read().trim();
  } catch {
    return "";
  }
}

/** This process as a lock owner, read once. */
function me(): Self {
  if (self) return self;
  const boot = readOr(() => readFileSync("/proc/sys/kernel/random/boot_id", "utf8"));
  const ns = readOr(() => readlinkSync("/proc/self/ns/pid"));
  const start = readOr(() => startTime(readFileSync("/proc/self/stat", "utf8")));
  self = { machine: machineOf(hostname(), boot, ns), pid: process.pid, start: start || "-", proc: boot !== "" && start !== "" };
  return self;
}

/** The machine part of a lock's text (exported for tests that write locks of other processes). */
export function machineOf(host: string, boot: string, ns: string): string {
  return createHash("sha256").update(`${host}\u0000${boot}\u0000${ns}`).digest("hex").slice(0, 12);
}

/** Field 22 (starttime) of /proc/<pid>/stat; the command name before it may hold spaces. */
function startTime(stat: string): string {
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? "";
}

function ownerText(): string {
  const mine = me();
  return `${mine.machine} ${mine.pid} ${mine.start} ${processToken}.${(++acquisitions).toString(36)}`;
}

function parseOwner(text: string): Owner | undefined {
  const [machine, pid, start, id, extra] = text.split(" ");
  if (extra !== undefined || !/^[0-9a-f]{12}$/.test(machine ?? "") || !/^\d{1,10}$/.test(pid ?? "") || !/^(\d+|-)$/.test(start ?? "") || !id) return undefined;
  return { machine: machine!, pid: Number(pid), start: start!, id };
}

/** True or false when it can be known whether the owner's process runs; undefined when not. */
async function ownerAlive(owner: Owner): Promise<boolean | undefined> {
  const mine = me();
  if (owner.machine !== mine.machine) return undefined;
  // Our own pid: this process (another store, a second copy of stowage), or an earlier process
  // that had the same pid (a restarted container), which is then gone.
  if (owner.pid === mine.pid) return mine.proc ? owner.start === mine.start : undefined;
  if (!mine.proc) {
    try {
      process.kill(owner.pid, 0);
      return undefined; // alive, or its pid reused: only age can tell
    } catch (err) {
      return errno(err) === "ESRCH" ? false : undefined;
    }
  }
  try {
    return startTime(await readFile(`/proc/${owner.pid}/stat`, "utf8")) === owner.start;
  } catch (err) {
    if (errno(err) === "ENOENT") return false;
    return undefined;
  }
}

/** A held lock. */
export class Lease {
  readonly #path: string;
  readonly #staleMs: number;
  readonly #taken = performance.now();

  constructor(path: string, staleMs: number) {
    this.#path = path;
    this.#staleMs = staleMs;
  }

  /**
   * Throws `transient` when the lock was held so long that another process could now take it
   * as stale: call right before the commit.
   */
  check(op: StorageOp, key: string): void {
    const held = performance.now() - this.#taken;
    if (held > this.#staleMs / 2) {
      throw new StorageError("transient", `the key's commit lock was held ${Math.round(held)} ms, past half of staleLockMs (${this.#staleMs} ms): the write was not committed; retry`, { op, key });
    }
  }

  /**
   * Removes the lock. Never throws: the write it guarded may have landed, and its call must not
   * reject for this. A lock that could not be removed is taken as stale after `staleMs`.
   */
  async release(): Promise<void> {
    await unlink(this.#path).catch(() => undefined);
  }
}

// Writers of one lock in this process, in arrival order: each waits for the one before it.
const queues = new Map<string, Promise<void>>();

export interface LockOptions {
  signal?: AbortSignal;
  /** See {@link Lease.check} and the module comment. */
  staleMs: number;
  /**
   * Shared by the locks of one store: set to false once the filesystem refused a symbolic link
   * (FAT, some SMB mounts), after which locks are small files made with O_EXCL instead.
   */
  links: { symlinks: boolean };
}

/**
 * Runs `work` holding the lock at `path` (a key's value file path + {@link LOCK_SUFFIX}). Waits
 * while another writer holds it, until the signal aborts. Rejects with ENOENT when the directory
 * is gone (the caller decides what that means).
 */
export async function withKeyLock<T>(path: string, options: LockOptions, work: (lease: Lease) => Promise<T>): Promise<T> {
  const previous = queues.get(path);
  let done!: () => void;
  const mine = new Promise<void>((resolve) => (done = resolve));
  const tail = previous ? previous.then(() => mine) : mine;
  queues.set(path, tail);
  try {
    if (previous) await raceSignal(options.signal, () => previous);
    const lease = await acquire(path, options);
    try {
      return await work(lease);
    } finally {
      await lease.release();
    }
  } finally {
    done();
    if (queues.get(path) === tail) queues.delete(path);
  }
}

// Codes of a filesystem that cannot make symbolic links.
const NO_SYMLINKS = new Set(["EPERM", "EOPNOTSUPP", "ENOTSUP", "ENOSYS"]);

/** Makes the lock at `path` holding `text`; EEXIST when it is held. */
async function lock(path: string, text: string, links: LockOptions["links"]): Promise<void> {
  if (links.symlinks) {
    try {
      return await symlink(text, path);
    } catch (err) {
      if (!NO_SYMLINKS.has(errno(err) ?? "")) throw err;
      links.symlinks = false;
    }
  }
  const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o666);
  try {
    await handle.writeFile(text);
  } finally {
    await handle.close();
  }
}

async function acquire(path: string, options: LockOptions): Promise<Lease> {
  const text = ownerText();
  for (let attempt = 0; ; attempt++) {
    options.signal?.throwIfAborted();
    try {
      await lock(path, text, options.links);
      return new Lease(path, options.staleMs);
    } catch (err) {
      if (errno(err) !== "EEXIST") throw err;
    }
    if (await takeIfStale(path, options.staleMs)) continue;
    // Held by a live writer in another process, for a few system calls: poll, backing off.
    const ms = Math.min(2 ** attempt, 32);
    await sleep(ms / 2 + Math.random() * ms, options.signal);
  }
}

/**
 * The text of the lock at `path` (the link's, or the file's: "" while its maker still writes
 * it) and whether it is a link; ENOENT when there is none.
 */
async function readLock(path: string): Promise<{ text: string; link: boolean }> {
  try {
    return { text: await readlink(path), link: true };
  } catch (err) {
    if (errno(err) !== "EINVAL") throw err;
  }
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    return { text: await handle.readFile("utf8"), link: false };
  } finally {
    await handle.close();
  }
}

/**
 * Removes the lock at `path` when its holder is dead or it is older than `staleMs`; true when
 * the lock is gone (removed here or released meanwhile), false when it is held.
 */
async function takeIfStale(path: string, staleMs: number): Promise<boolean> {
  let held: { text: string; link: boolean };
  let modified: number;
  try {
    [held, modified] = await Promise.all([readLock(path), lstat(path).then((s) => s.mtimeMs)]);
  } catch (err) {
    if (errno(err) === "ENOENT") return true;
    if (errno(err) === "EISDIR" || errno(err) === "ELOOP") throw notALock(path, err);
    throw err;
  }
  const owner = parseOwner(held.text);
  if (owner === undefined && held.text !== "") throw notALock(path);
  const dead = owner !== undefined && (await ownerAlive(owner)) === false;
  if (!dead && !(Date.now() - modified > staleMs)) return false;
  // Move it aside, then check it is the lock judged stale: another process may have taken the
  // stale lock away and locked anew in between, and that lock is given back.
  const aside = join(dirname(path), `.stowage-${randomBytes(8).toString("hex")}.stale-lock`);
  try {
    await rename(path, aside);
  } catch (err) {
    if (errno(err) === "ENOENT") return true;
    throw err;
  }
  try {
    const moved = await readLock(aside);
    if (moved.text === held.text) return true;
    await (moved.link ? symlink(moved.text, path) : link(aside, path)).catch(() => undefined);
    return false;
  } finally {
    await unlink(aside).catch(() => undefined);
  }
}

function notALock(path: string, cause?: unknown): StorageError {
  return new StorageError("fatal", `${path} is not a stowage lock but stands where the key's lock goes; remove it`, { op: "lock", cause });
}
