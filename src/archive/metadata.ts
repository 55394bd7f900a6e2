import { StorageError } from "../errors.js";
import { normalizeMetadata } from "../internal/metadata.js";
import type { Metadata } from "../types.js";
import { entityOf } from "./entity.js";
import { truncateUtf8 } from "./segments.js";
import type { MetadataExtractor } from "./types.js";

/** The longest value the default extractor takes from a message, in UTF-8 bytes. */
const MAX_EXTRACTED_VALUE_BYTES = 256;

/**
 * The default extractor: `entity-id` and `entity-type` when the message identifies an entity
 * (as `EntityKeyGenerator` reads it), and `message-type`, the class name of a class instance
 * (not for plain objects, arrays or primitives). Values over 256 bytes are cut (the store keeps
 * at most 2 KiB of metadata). The archiver adds `content-type` from its codec.
 */
export class DefaultMetadataExtractor implements MetadataExtractor {
  extractMetadata(message: unknown): Record<string, string> | undefined {
    const out: Record<string, string> = {};
    const entity = entityOf(message);
    if (entity) {
      out["entity-id"] = truncateUtf8(entity.id, MAX_EXTRACTED_VALUE_BYTES);
      out["entity-type"] = truncateUtf8(entity.type, MAX_EXTRACTED_VALUE_BYTES);
    }
    const className = classNameOf(message);
    if (className) out["message-type"] = truncateUtf8(className, MAX_EXTRACTED_VALUE_BYTES);
    return Object.keys(out).length > 0 ? out : undefined;
  }
}

/**
 * Runs several extractors and merges what they return; for a name given by more than one,
 * the later extractor wins (list general ones first, specific ones last).
 */
export class CompositeMetadataExtractor implements MetadataExtractor {
  readonly #extractors: readonly MetadataExtractor[];

  constructor(extractors: readonly MetadataExtractor[]) {
    if (!Array.isArray(extractors) || extractors.some((e) => typeof e?.extractMetadata !== "function")) {
      throw new StorageError("invalid", "CompositeMetadataExtractor needs an array of metadata extractors", { op: "archive" });
    }
    this.#extractors = [...extractors];
  }

  extractMetadata(message: unknown): Record<string, string | string[]> | undefined {
    let merged: Record<string, string | string[]> | undefined;
    for (const extractor of this.#extractors) {
      const found = extractor.extractMetadata(message);
      if (found === undefined) continue;
      // Names are case-insensitive: a later "Entity-Id" replaces an earlier "entity-id".
      merged ??= {};
      for (const [name, value] of Object.entries(found)) {
        for (const existing of Object.keys(merged)) if (existing.toLowerCase() === name.toLowerCase()) delete merged[existing];
        merged[name] = value;
      }
    }
    return merged;
  }
}

const CONTROL_CHARS = /[\u0000-\u001f\u007f]+/g;

/**
 * Turns what an extractor returned into store metadata: names lower-cased, a `string[]` joined
 * with `", "` (the HTTP convention for repeated headers), control characters in values
 * replaced by a space and lone surrogates by U+FFFD (values come from message data and should
 * not make a message unarchivable). Names must still be valid and the whole at most 2 KiB:
 * otherwise a StorageError of kind `invalid`, op `archive`.
 */
export function normalizeExtractedMetadata(raw: unknown, key?: string): Metadata | undefined {
  if (raw === undefined || raw === null) return undefined;
  const fail = (message: string) => new StorageError("invalid", `metadata extractor: ${message}`, { op: "archive", key });
  if (typeof raw !== "object" || Array.isArray(raw)) throw fail("must return an object of string or string[] values, or undefined");
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    let text: string;
    if (typeof value === "string") text = value;
    else if (Array.isArray(value) && value.every((v) => typeof v === "string")) text = value.join(", ");
    else throw fail(`value of ${JSON.stringify(name)} must be a string or string[], got ${value === null ? "null" : typeof value}`);
    const lower = name.toLowerCase();
    if (lower in out) throw fail(`name ${JSON.stringify(name)} is given twice (names are case-insensitive)`);
    out[lower] = text.toWellFormed().replace(CONTROL_CHARS, " ");
  }
  return normalizeMetadata(out, "archive", key);
}

function classNameOf(message: unknown): string | undefined {
  if (message === null || typeof message !== "object" || Array.isArray(message)) return undefined;
  const proto: unknown = Object.getPrototypeOf(message);
  if (proto === null || proto === Object.prototype) return undefined;
  const name = (proto as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === "string" && name !== "" && name !== "Object" ? name : undefined;
}
