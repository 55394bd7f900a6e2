/**
 * Listings of a store's bucket: ListObjectsV2 pages (plain, from a key, or one folder level with
 * `Delimiter`) and ListObjectVersions, with keys relative to the store's prefix.
 */
import { ListObjectVersionsCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { compareKeys, MAX_KEY_BYTES } from "../../keys.js";
import type { CleanFolderOptions, CleanListPageOptions } from "../../store.js";
import type { ListPage, VersionInfo } from "../../types.js";
import { sendOptions } from "./config.js";

/** Keys per ListObjectsV2 request: S3's maximum. */
const LIST_BATCH = 1000;

/** One ListObjectsV2 page, object keys decoded. */
interface ListedPage {
  keys: string[];
  /** CommonPrefixes, with a delimiter. */
  prefixes: string[];
  truncated: boolean;
  nextContinuationToken: string | undefined;
}

export class BucketListing {
  readonly #client: S3Client;
  readonly #bucket: string;
  /** "" or ending in "/". */
  readonly #prefix: string;
  readonly #prefixBytes: number;

  constructor(client: S3Client, bucket: string, prefix: string) {
    this.#client = client;
    this.#bucket = bucket;
    this.#prefix = prefix;
    this.#prefixBytes = Buffer.byteLength(prefix, "utf8");
  }

  /** Every key under `prefix`. */
  async list(prefix: string, signal: AbortSignal | undefined): Promise<string[]> {
    const keys: string[] = [];
    if (this.#prefixBytes + Buffer.byteLength(prefix, "utf8") > MAX_KEY_BYTES) return keys;
    let token: string | undefined;
    do {
      const out = await this.#listObjects({ Prefix: this.#prefix + prefix, ContinuationToken: token, MaxKeys: LIST_BATCH }, signal);
      keys.push(...this.#keysOf(out.keys));
      token = out.truncated ? out.nextContinuationToken : undefined;
    } while (token);
    return keys;
  }

  /** One page of keys under `prefix`, resumed after `options.after`. */
  async page(prefix: string, options: CleanListPageOptions): Promise<ListPage> {
    const keys: string[] = [];
    if (this.#prefixBytes + Buffer.byteLength(prefix, "utf8") > MAX_KEY_BYTES) return { keys };
    // `after` is a key, so StartAfter resumes exactly there (no continuation token to keep).
    const startAfter = options.after !== undefined && options.after > "" ? this.#prefix + options.after : undefined;
    let token: string | undefined;
    let truncated = false;
    do {
      const want = options.limit - keys.length;
      const out = await this.#listObjects(
        { Prefix: this.#prefix + prefix, MaxKeys: Math.min(want, LIST_BATCH), ...(token ? { ContinuationToken: token } : { StartAfter: startAfter }) },
        options.signal,
      );
      keys.push(...this.#keysOf(out.keys));
      truncated = out.truncated;
      token = truncated ? out.nextContinuationToken : undefined;
    } while (token && keys.length < options.limit);
    return truncated && keys.length > 0 ? { keys, next: keys[keys.length - 1] } : { keys };
  }

  /**
   * One level under `prefix`: ListObjectsV2 with `Delimiter=/`, whose CommonPrefixes are the
   * sub-prefixes. S3 pages keys and prefixes together in byte order, as the contract does. An
   * `after` that is a prefix is passed as StartAfter too: S3 then rolls every key under it into
   * that one prefix again, which is dropped, so resuming costs one entry, not the keys under it.
   */
  async folder(prefix: string, options: CleanFolderOptions): Promise<ListPage> {
    const keys: string[] = [];
    const prefixes: string[] = [];
    if (this.#prefixBytes + Buffer.byteLength(prefix, "utf8") > MAX_KEY_BYTES) return { keys, prefixes };
    const after = options.after !== undefined && options.after > "" ? options.after : undefined;
    let token: string | undefined;
    let truncated = false;
    let last: string | undefined;
    do {
      const want = options.limit - keys.length - prefixes.length;
      const out = await this.#listObjects(
        { Prefix: this.#prefix + prefix, Delimiter: options.delimiter, MaxKeys: Math.min(want + 1, LIST_BATCH), ...(token ? { ContinuationToken: token } : { StartAfter: after && this.#prefix + after }) },
        options.signal,
      );
      const entries = [...this.#keysOf(out.keys).map((name) => ({ name, isPrefix: false })), ...this.#keysOf(out.prefixes).map((name) => ({ name, isPrefix: true }))];
      entries.sort((a, b) => compareKeys(a.name, b.name));
      truncated = out.truncated;
      token = truncated ? out.nextContinuationToken : undefined;
      for (const { name, isPrefix } of entries) {
        if (after !== undefined && compareKeys(name, after) <= 0) continue;
        if (keys.length + prefixes.length === options.limit) return { keys, prefixes, next: last };
        (isPrefix ? prefixes : keys).push(name);
        last = name;
      }
    } while (token && keys.length + prefixes.length < options.limit);
    return truncated && last !== undefined ? { keys, prefixes, next: last } : { keys, prefixes };
  }

  async #listObjects(
    params: { Prefix: string; MaxKeys: number; Delimiter?: string; ContinuationToken?: string; StartAfter?: string },
    signal: AbortSignal | undefined,
  ): Promise<ListedPage> {
    // EncodingType=url: XML 1.0 cannot carry every character a key may hold (U+FFFE, U+FFFF).
    const out = await this.#client.send(new ListObjectsV2Command({ Bucket: this.#bucket, EncodingType: "url", ...params }), sendOptions(signal));
    const decode = (listed: string) => (out.EncodingType === "url" ? decodeListedKey(listed) : listed);
    return {
      keys: (out.Contents ?? []).flatMap((object) => (object.Key === undefined ? [] : [decode(object.Key)])),
      prefixes: (out.CommonPrefixes ?? []).flatMap((common) => (common.Prefix === undefined ? [] : [decode(common.Prefix)])),
      truncated: out.IsTruncated === true,
      nextContinuationToken: out.NextContinuationToken,
    };
  }

  /** The store's keys (or prefixes) among object keys of a listing. */
  #keysOf(objectKeys: string[]): string[] {
    const keys: string[] = [];
    for (const key of objectKeys) if (key.startsWith(this.#prefix)) keys.push(key.slice(this.#prefix.length));
    return keys;
  }

  /** The versions and delete markers of one object, oldest first. */
  async versions(objectKey: string, signal: AbortSignal | undefined): Promise<VersionInfo[]> {
    const newestFirst: (VersionInfo & { latest: boolean })[] = [];
    let keyMarker: string | undefined;
    let versionMarker: string | undefined;
    for (;;) {
      const out = await this.#client.send(
        new ListObjectVersionsCommand({ Bucket: this.#bucket, Prefix: objectKey, EncodingType: "url", KeyMarker: keyMarker, VersionIdMarker: versionMarker }),
        sendOptions(signal),
      );
      const keyOf = (listed: string | undefined) => (listed !== undefined && out.EncodingType === "url" ? decodeListedKey(listed) : listed);
      // The response lists versions and delete markers of a key newest first; the SDK splits them
      // into two lists, so they are merged again by time (IsLatest breaks a tie at the top).
      for (const v of out.Versions ?? []) {
        if (keyOf(v.Key) !== objectKey || !v.VersionId) continue;
        newestFirst.push({ version: v.VersionId, size: v.Size ?? 0, modified: v.LastModified ?? new Date(0), deleted: false, latest: v.IsLatest === true });
      }
      for (const m of out.DeleteMarkers ?? []) {
        if (keyOf(m.Key) !== objectKey || !m.VersionId) continue;
        newestFirst.push({ version: m.VersionId, size: 0, modified: m.LastModified ?? new Date(0), deleted: true, latest: m.IsLatest === true });
      }
      const nextKey = keyOf(out.NextKeyMarker);
      // Versions of one key are contiguous: once the listing moves past it, stop.
      if (!out.IsTruncated || nextKey === undefined || nextKey !== objectKey) break;
      keyMarker = nextKey;
      versionMarker = out.NextVersionIdMarker;
    }
    newestFirst.sort((a, b) => b.modified.getTime() - a.modified.getTime() || Number(b.latest) - Number(a.latest));
    return newestFirst.reverse().map(({ version, size, modified, deleted }) => ({ version, size, modified, deleted }));
  }

}

/** A key from a listing with EncodingType=url: form encoding, so `+` is a space. */
function decodeListedKey(key: string): string {
  return decodeURIComponent(key.replace(/\+/g, " "));
}
