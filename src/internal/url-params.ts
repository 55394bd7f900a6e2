/**
 * The one reader of store-URL query parameters, for every backend: each parameter has a type,
 * an unknown one is refused with the list of known ones (a typo such as `?histroy=3` must not
 * open a store silently with the default), and booleans share one vocabulary.
 */
import { StorageError } from "../errors.js";
import type { StoreUrl } from "../types.js";
import { parseDuration, parseSize } from "./units.js";

/** A parameter's type: a scalar kind, or the list of the words it may be. */
export type ParamType = "string" | "boolean" | "integer" | "size" | "duration" | readonly string[];

type ValueOf<T extends ParamType> = T extends "boolean"
  ? boolean
  : T extends "integer" | "size" | "duration"
    ? number
    : T extends readonly (infer W)[]
      ? W
      : string;

export type ParamValues<S extends Record<string, ParamType>> = { -readonly [K in keyof S]?: ValueOf<S[K]> };

const TRUE = /^(true|1|yes|on)$/i;
const FALSE = /^(false|0|no|off)$/i;

/**
 * The parameters of `source` (a store URL or its query) read by `spec`, keyed as in the spec;
 * absent ones are left out. `passThrough` names parameters that belong to someone else (a
 * driver's own settings): they are neither read nor refused.
 */
export function readUrlParams<S extends Record<string, ParamType>>(
  source: StoreUrl | URLSearchParams,
  backend: string,
  spec: S,
  passThrough: (name: string) => boolean = () => false,
): ParamValues<S> {
  const params = source instanceof URLSearchParams ? source : source.url.searchParams;
  const out: Record<string, unknown> = {};
  const fail = (message: string) => new StorageError("invalid", `${backend}: ${message}`, { op: "open" });
  for (const [name, raw] of params) {
    if (!Object.hasOwn(spec, name)) {
      if (passThrough(name)) continue;
      const known = Object.keys(spec).sort().join(", ");
      throw fail(`unknown URL parameter ${JSON.stringify(name)}; known parameters: ${known || "none"}`);
    }
    if (Object.hasOwn(out, name)) throw fail(`URL parameter ${JSON.stringify(name)} is given twice`);
    out[name] = parse(spec[name]!, raw, (expected) => fail(`URL parameter ${name} must be ${expected}, got ${JSON.stringify(raw)}`));
  }
  return out as ParamValues<S>;
}

function parse(type: ParamType, raw: string, bad: (expected: string) => StorageError): unknown {
  if (Array.isArray(type)) {
    if (!type.includes(raw)) throw bad(`one of ${type.join(", ")}`);
    return raw;
  }
  switch (type) {
    case "string":
      if (raw === "") throw bad("a non-empty value");
      return raw;
    case "boolean":
      if (TRUE.test(raw)) return true;
      if (FALSE.test(raw)) return false;
      throw bad("true or false (also 1/0, yes/no, on/off)");
    case "integer":
      if (!/^\d{1,15}$/.test(raw)) throw bad("a whole number");
      return Number(raw);
    case "size": {
      const bytes = raw === "" ? undefined : parseSize(raw);
      if (bytes === undefined) throw bad('a size such as "1048576", "512KiB" or "1MiB"');
      return bytes;
    }
    case "duration": {
      const ms = /^\d+$/.test(raw) ? Number(raw) : parseDuration(raw);
      if (ms === undefined) throw bad('a duration such as "500ms", "30s" or "5m" (a bare number is milliseconds)');
      return ms;
    }
    default:
      throw bad("a known type");
  }
}
