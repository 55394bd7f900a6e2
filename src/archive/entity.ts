/** What identifies the entity a message is about. */
export interface EntityRef {
  id: string;
  type: string;
}

/**
 * The entity a message is about, or undefined: from `getId()`/`getID()` and `getType()`
 * methods (an Identifiable message, as the Go package names it), else `entityId`/`entityType` fields, else `id`/`type`
 * fields. Ids and types may be strings, finite numbers or bigints; anything else, or an empty
 * string, means no entity. A getter that throws means no entity too: messages are untrusted.
 */
export function entityOf(message: unknown): EntityRef | undefined {
  if (message === null || typeof message !== "object") return undefined;
  const m = message as Record<string, unknown>;
  const pairs: [unknown, unknown][] = [
    [call(m, "getId") ?? call(m, "getID"), call(m, "getType")],
    [field(m, "entityId"), field(m, "entityType")],
    [field(m, "id"), field(m, "type")],
  ];
  for (const [rawId, rawType] of pairs) {
    const id = text(rawId);
    const type = text(rawType);
    if (id !== undefined && type !== undefined) return { id, type };
  }
  return undefined;
}

function call(m: Record<string, unknown>, name: string): unknown {
  try {
    const fn = m[name];
    return typeof fn === "function" ? (fn as () => unknown).call(m) : undefined;
  } catch {
    return undefined;
  }
}

function field(m: Record<string, unknown>, name: string): unknown {
  try {
    return m[name];
  } catch {
    return undefined;
  }
}

function text(value: unknown): string | undefined {
  if (typeof value === "string") return value === "" ? undefined : value;
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : undefined;
  if (typeof value === "bigint") return value.toString();
  return undefined;
}
