import type { JetStreamClient } from "@nats-io/jetstream";
import { HEADER } from "./entry.js";
import { readIndex } from "./index-reader.js";
import type { LargeObjects } from "./large.js";
import type { NatsLayout } from "./layout.js";

export interface SweepResult {
  /** Objects deleted: referenced by no retained index revision and older than the grace period. */
  deleted: number;
  /** Objects kept (referenced, or too young to judge). */
  kept: number;
}

/**
 * Mark and sweep of large objects. Mark: every retained index revision (headers only, so values
 * never travel) names the object it refers to. Sweep: objects named by none and completed more
 * than `grace` ms ago are deleted. Objects are written before the index entry that refers to
 * them, so the grace period protects puts in flight; a revision that is still in the history
 * keeps its object, so `get(key, { version })` of a large value works as long as
 * `versions(key)` lists it.
 */
export async function sweepLargeObjects(js: JetStreamClient, layout: NatsLayout, large: LargeObjects, grace: number): Promise<SweepResult> {
  const objects = await large.list();
  if (objects.length === 0) return { deleted: 0, kept: 0 };
  const referenced = new Set<string>();
  for await (const m of await readIndex(js, layout.indexStream, layout.indexSubjects, "all")) {
    const nuid = m.headers?.get(HEADER.nuid);
    if (nuid) referenced.add(nuid);
  }
  const cutoff = Date.now() - grace;
  let deleted = 0;
  for (const object of objects) {
    if (referenced.has(object.nuid) || object.mtime.getTime() > cutoff) continue;
    await large.remove(object);
    deleted++;
  }
  return { deleted, kept: objects.length - deleted };
}
