/**
 * Where a store named BUCKET lives on the server (documented in docs/nats.md so other tools can
 * read what stowage wrote):
 * - the index: the KV bucket BUCKET (stream `KV_BUCKET`, subjects `$KV.BUCKET.<encoded key>`);
 * - large values: the object store `BUCKET_large` (stream `OBJ_BUCKET_large`), created on the
 *   first large put; chunks on `$O.BUCKET_large.C.<nuid>`, object info on `$O.BUCKET_large.M.<name>`.
 */
export class NatsLayout {
  readonly bucket: string;
  readonly indexStream: string;
  readonly objectBucket: string;
  readonly objectStream: string;
  readonly #keyPrefix: string;

  constructor(bucket: string) {
    this.bucket = bucket;
    this.indexStream = `KV_${bucket}`;
    this.objectBucket = `${bucket}_large`;
    this.objectStream = `OBJ_${bucket}_large`;
    this.#keyPrefix = `$KV.${bucket}.`;
  }

  /** The subject of an encoded KV key (what a put publishes to, what a filter matches). */
  keySubject(kvKey: string): string {
    return this.#keyPrefix + kvKey;
  }

  /** The KV key of a subject of the index stream. */
  kvKeyOf(subject: string): string {
    return subject.slice(this.#keyPrefix.length);
  }

  /** The subject every index entry is published on: the KV bucket's own. */
  get indexSubjects(): string {
    return `${this.#keyPrefix}>`;
  }

  /** The subject an object's chunks are on. */
  chunkSubject(nuid: string): string {
    return `$O.${this.objectBucket}.C.${nuid}`;
  }

  /** The subject of an object's info (the object store encodes names as padded base64url). */
  metaSubject(name: string): string {
    const b64 = Buffer.from(name, "utf8").toString("base64url");
    return `$O.${this.objectBucket}.M.${b64.padEnd(Math.ceil(b64.length / 4) * 4, "=")}`;
  }
}
