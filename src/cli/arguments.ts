/** Parsers for option values shared by several commands (commander's `argParser`s). */
import { InvalidArgumentError } from "commander";
import { parseDuration } from "../internal/units.js";

/** An integer option from `min` to `max`. */
export function integerFrom(min: number, flag: string, max: number): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${flag} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
    }
    return n;
  };
}

export function positiveInt(flag: string, max: number): (text: string) => number {
  return integerFrom(1, flag, max);
}

export function wholeNumber(flag: string, max: number): (text: string) => number {
  return integerFrom(0, flag, max);
}

/**
 * A point in time as people type it: a duration back from now (`30d`, `12h`, `90m`: the
 * configuration's duration rule) or an ISO 8601 date (`2026-01-31`, `2026-01-31T12:00:00Z`).
 */
export function pointInTime(flag: string, now: () => number = Date.now): (text: string) => Date {
  return (text) => {
    const ago = parseDuration(text);
    if (ago !== undefined) return new Date(now() - ago);
    const at = /^\d{4}-\d{2}-\d{2}/.test(text.trim()) ? new Date(text.trim()) : undefined;
    if (at === undefined || Number.isNaN(at.getTime())) {
      throw new InvalidArgumentError(`${flag} takes a duration back from now (30d, 12h, 90m) or an ISO date (2026-01-31T12:00:00Z), got ${JSON.stringify(text)}`);
    }
    return at;
  };
}
