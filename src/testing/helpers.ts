/** Values, keys and assertions the conformance suite (and backend tests) share. */
import assert from "node:assert/strict";
import { StorageError, type StorageErrorKind } from "../errors.js";

/** UTF-8 bytes of `s`. */
export function text(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

/** Every byte value 0..255, `repeats` times. */
export function allBytes(repeats = 1): Uint8Array {
  const out = new Uint8Array(256 * repeats);
  for (let i = 0; i < out.length; i++) out[i] = i % 256;
  return out;
}

/** `size` bytes of a cheap pseudo-random pattern that differs by `seed` (so swapped or shifted chunks are caught). */
export function patterned(size: number, seed = 0): Uint8Array {
  const out = new Uint8Array(size);
  let x = (seed * 2654435761 + 12345) >>> 0;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Reads a chunk stream into one Buffer. */
export async function collectBytes(chunks: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts);
}

/** Asserts `promise` rejects with a StorageError of `kind`, and returns it. */
export async function assertKind(promise: Promise<unknown>, kind: StorageErrorKind, label = ""): Promise<StorageError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught !== undefined, `${label}: expected a ${kind} StorageError, but it resolved`);
  assert.ok(caught instanceof StorageError, `${label}: expected a StorageError, got ${String(caught)}`);
  assert.equal(caught.kind, kind, `${label}: expected kind ${kind}, got ${caught.kind}: ${caught.message}`);
  assert.ok(caught.message.length > 0);
  return caught;
}

/** Asserts `promise` rejects with a StorageError of kind `invalid`. */
export function assertInvalid(promise: Promise<unknown>, label = ""): Promise<StorageError> {
  return assertKind(promise, "invalid", label);
}

/** Keys the contract allows that backends tend to get wrong. Each must round-trip and list exactly. */
export const ODD_KEYS: readonly string[] = [
  "plain",
  "with space",
  " leading-space",
  "trailing-space ",
  "ünïcødé/ключ/键/🔑",
  "star*",
  "gt>",
  "*",
  ">",
  "a.b.c",
  ".hidden",
  "..dots..",
  "...",
  "dir/.hidden/x",
  "percent%20encoded",
  "%2e%2e/%2F",
  "under_score",
  "equals=plus+tilde~",
  "amp&q?hash#",
  "colon:semi;comma,",
  "back\\slash",
  "quotes'\"`",
  "brackets[]{}()<>",
  "double//slash",
  "trailing/",
  "a/b/c/d/e/f/g/h/i/j",
  "MiXeD/Case",
  "mixed/case",
  "tab-less\u00a0nbsp",
  "\u{10ffff}max",
  "\ufffd",
  "x".repeat(300),
];

/** Invalid keys, each with a label for messages. */
export const INVALID_KEYS: readonly (readonly [string, unknown])[] = [
  ["empty", ""],
  ["leading slash", "/a"],
  ["dot segment", "a/./b"],
  ["dotdot segment", "a/../b"],
  ["dot", "."],
  ["dotdot", ".."],
  ["trailing dotdot", "a/.."],
  ["leading dotdot", "../a"],
  ["NUL", "a\u0000b"],
  ["newline", "a\nb"],
  ["DEL", "a\u007fb"],
  ["lone surrogate", "a\ud800b"],
  ["too long", "k".repeat(1025)],
  ["number", 42],
  ["null", null],
  ["undefined", undefined],
];
