import { HEADER } from "./entry.js";
import type { IndexReader } from "./index-reader.js";
import type { LargeObjects } from "./large.js";
import type { NatsLayout } from "./layout.js";

export interface SweepResult {
  /** Objects deleted: referenced by no retained index revision for longer than the grace period. */
  deleted: number;
  /** Objects kept (referenced, or not yet unreferenced for the grace period). */
  kept: number;
}

/**
 * Mark and sweep of large objects. Mark: every retained index revision (headers only, so values
 * never travel) names the object it refers to. Sweep: every object in the object store, chunks
 * without an ObjectInfo included (a put whose process or server died mid-write), that no
 * revision names is deleted once `grace` ms have passed since it was last written and since a
 * sweep first found it unreferenced. The second clock matters: a replaced value may still be
 * streamed by a reader that started before the replacement, however old the value is, and
 * nothing in the index says when a revision that fell out of the history stopped referring to
 * it. `unreferencedSince` (nuid -> epoch ms) carries that clock from one sweep to the next.
 *
 * Objects are written before the index entry that refers to them, so the grace period also
 * protects puts in flight; a revision still in the history keeps its object, so
 * `get(key, { version })` of a large value works as long as `versions(key)` lists it.
 */
export async function sweepLargeObjects(readIndex: IndexReader, layout: NatsLayout, large: LargeObjects, grace: number, unreferencedSince: Map<string, number>): Promise<SweepResult> {
  const objects = await large.inventory();
  if (objects.length === 0) {
    unreferencedSince.clear();
    return { deleted: 0, kept: 0 };
  }
  const referenced = new Set<string>();
  for await (const m of await readIndex(layout.indexSubjects, "all")) {
    const nuid = m.headers?.get(HEADER.nuid);
    if (nuid) referenced.add(nuid);
  }
  const now = Date.now();
  const present = new Set<string>();
  let deleted = 0;
  for (const object of objects) {
    present.add(object.nuid);
    if (referenced.has(object.nuid)) {
      unreferencedSince.delete(object.nuid);
      continue;
    }
    const since = unreferencedSince.get(object.nuid) ?? now;
    unreferencedSince.set(object.nuid, since);
    if (now - Math.max(since, object.written.getTime()) < grace) continue;
    await large.remove(object);
    unreferencedSince.delete(object.nuid);
    deleted++;
  }
  for (const nuid of unreferencedSince.keys()) if (!present.has(nuid)) unreferencedSince.delete(nuid);
  return { deleted, kept: objects.length - deleted };
}
