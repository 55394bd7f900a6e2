/**
 * The gateway's HTTP API as the console uses it. Every request carries the token when there is
 * one; a 401 asks for a token and tries once more.
 */
import { askToken, currentToken, tokenHeader } from "./token.js";

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly kind?: string,
  ) {
    super(message);
  }
}

/** A key's path under /v1/{route}/: each segment escaped, the slashes kept as slashes. */
function keyUrl(route: "objects" | "stat" | "versions", key: string): string {
  return `/v1/${route}/${key.split("/").map(encodeURIComponent).join("/")}`;
}

export function objectUrl(key: string, version?: string): string {
  const path = keyUrl("objects", key);
  return version ? `${path}?version=${encodeURIComponent(version)}` : path;
}

/**
 * A URL the browser itself fetches (a media element, a download link), which cannot send a
 * header: the gateway takes the token of reads as `?token=` too.
 */
export function readUrl(key: string, version?: string): string {
  const url = objectUrl(key, version);
  const token = currentToken();
  return token ? `${url}${version ? "&" : "?"}token=${encodeURIComponent(token)}` : url;
}

export async function request(url: string, init: RequestInit = {}): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(url, { ...init, headers: { ...tokenHeader(), ...(init.headers as Record<string, string> | undefined) } });
    if (response.status === 401 && attempt === 0) {
      const token = await askToken("The gateway wants a token for this.");
      if (token) continue;
    }
    if (!response.ok && response.status !== 206 && response.status !== 304) throw await errorOf(response);
    return response;
  }
}

async function errorOf(response: Response): Promise<ApiError> {
  let message = `${response.status} ${response.statusText}`;
  let kind: string | undefined;
  try {
    const body = (await response.json()) as { error?: unknown; kind?: unknown };
    if (typeof body.error === "string") message = body.error;
    if (typeof body.kind === "string") kind = body.kind;
  } catch {
    // not JSON (HEAD, or a proxy's page): the status says enough
  }
  return new ApiError(message, response.status, kind);
}

export interface Entry {
  key: string;
  size?: number;
  modified?: Date;
  etag?: string;
  contentType?: string;
}

export interface Folder {
  entries: Entry[];
  prefixes: string[];
  next?: string;
}

interface WireEntry {
  key: string;
  size?: number;
  modified?: string;
  etag?: string;
  contentType?: string;
}

function entryOf(wire: WireEntry): Entry {
  return { ...wire, modified: wire.modified ? new Date(wire.modified) : undefined };
}

/** One page of one folder level, with sizes and times where the gateway gives them. */
export async function listFolder(prefix: string, after: string | undefined, limit: number): Promise<Folder> {
  const query = new URLSearchParams({ prefix, delimiter: "/", limit: String(limit), stat: "1" });
  if (after !== undefined) query.set("after", after);
  const page = (await (await request(`/v1/list?${query}`)).json()) as { keys: string[]; prefixes?: string[]; next?: string; entries?: WireEntry[] };
  const stats = new Map((page.entries ?? []).map((entry) => [entry.key, entryOf(entry)]));
  return { entries: page.keys.map((key) => stats.get(key) ?? { key }), prefixes: page.prefixes ?? [], next: page.next };
}

export interface Head {
  key: string;
  /** The version asked for (undefined: the current value). */
  version?: string;
  /** The current value's version, where the store keeps versions. */
  current?: string;
  size: number;
  modified?: Date;
  etag?: string;
  contentType: string;
  metadata: Record<string, string>;
}

const META_PREFIX = "x-stowage-meta-";

/** What a key is: /v1/stat for the current value (all its metadata), HEAD for an old version. */
export async function headObject(key: string, version?: string): Promise<Head> {
  if (version === undefined) {
    const info = (await (await request(keyUrl("stat", key))).json()) as { size: number; modified: string; etag: string; version?: string; metadata?: Record<string, string>; contentType?: string };
    const { "content-type": _declared, ...metadata } = info.metadata ?? {};
    return { key, size: info.size, modified: new Date(info.modified), etag: info.etag, contentType: info.contentType ?? "application/octet-stream", metadata, current: info.version };
  }
  const response = await request(objectUrl(key, version), { method: "HEAD" });
  const metadata: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    if (name.startsWith(META_PREFIX)) metadata[name.slice(META_PREFIX.length)] = value;
  });
  const modified = response.headers.get("last-modified");
  return {
    key,
    version,
    size: Number(response.headers.get("content-length") ?? 0),
    modified: modified ? new Date(modified) : undefined,
    etag: response.headers.get("etag") ?? undefined,
    contentType: response.headers.get("content-type") ?? "application/octet-stream",
    metadata,
  };
}

/** Bytes `[offset, offset + length)` of a value, by a Range request. */
export async function readRange(key: string, offset: number, length: number, version?: string): Promise<Uint8Array> {
  if (length <= 0) return new Uint8Array(0);
  const response = await request(objectUrl(key, version), { headers: { range: `bytes=${offset}-${offset + length - 1}` } });
  const bytes = new Uint8Array(await response.arrayBuffer());
  // A server that ignores Range sends everything with 200: keep what was asked for.
  return response.status === 206 ? bytes : bytes.subarray(offset, offset + length);
}

export interface Version {
  version: string;
  size: number;
  modified?: Date;
  deleted: boolean;
}

export async function listVersions(key: string): Promise<Version[]> {
  const body = (await (await request(keyUrl("versions", key))).json()) as
    | { versions?: WireVersion[] }
    | WireVersion[];
  const versions = Array.isArray(body) ? body : (body.versions ?? []);
  return versions.map((v) => ({ version: String(v.version), size: v.size ?? 0, modified: v.modified ? new Date(v.modified) : undefined, deleted: Boolean(v.deleted) }));
}

interface WireVersion {
  version: string | number;
  size?: number;
  modified?: string;
  deleted?: boolean;
}

/**
 * Deletes the value that was shown: with its etag as If-Match, so a value someone replaced
 * in the meantime is not deleted unseen (412). A store without conditional writes (501)
 * deletes unconditionally.
 */
export async function deleteObject(key: string, etag?: string): Promise<void> {
  const tag = etag === undefined ? undefined : /^"[^"]*"$/.test(etag) ? etag : `"${etag}"`;
  try {
    await request(objectUrl(key), { method: "DELETE", headers: tag ? { "if-match": tag } : {} });
  } catch (error) {
    if (tag && error instanceof ApiError && error.status === 501) return deleteObject(key);
    if (error instanceof ApiError && error.status === 412) throw new ApiError("it changed since it was shown here: look again before deleting", 412, error.kind);
    throw error;
  }
}

export interface Upload {
  done: Promise<void>;
  abort(): void;
}

/**
 * PUTs a file with XMLHttpRequest, the one browser API that reports upload progress; the
 * browser streams the file from disk.
 */
export function uploadFile(key: string, file: Blob, onProgress: (sent: number, total: number) => void): Upload {
  const xhr = new XMLHttpRequest();
  const done = new Promise<void>((resolve, reject) => {
    const send = (retried: boolean) => {
      xhr.open("PUT", objectUrl(key));
      for (const [name, value] of Object.entries(tokenHeader())) xhr.setRequestHeader(name, value);
      xhr.setRequestHeader("content-type", file.type || "application/octet-stream");
      xhr.upload.onprogress = (event) => onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
      xhr.onload = async () => {
        if (xhr.status === 401 && !retried && (await askToken("The gateway wants a token to write."))) return send(true);
        if (xhr.status >= 200 && xhr.status < 300) return resolve();
        let message = `${xhr.status} ${xhr.statusText}`;
        let kind: string | undefined;
        try {
          const body = JSON.parse(xhr.responseText) as { error?: string; kind?: string };
          message = body.error ?? message;
          kind = body.kind;
        } catch {
          // not JSON
        }
        reject(new ApiError(message, xhr.status, kind));
      };
      xhr.onerror = () => reject(new ApiError("the upload failed (network)", 0));
      xhr.onabort = () => reject(new ApiError("upload cancelled", 0, "cancelled"));
      xhr.send(file);
    };
    send(false);
  });
  return { done, abort: () => xhr.abort() };
}
