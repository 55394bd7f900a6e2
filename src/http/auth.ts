/**
 * Bearer tokens. Two roles: the read-write token (`--http-token`) may do everything, the
 * read-only token (`--http-read-token`) may read (PUT and DELETE answer 403). With no token
 * configured every request is allowed: the server then only binds to loopback (server.ts).
 *
 * Tokens are compared as SHA-256 digests with `timingSafeEqual`: equal-length inputs, so the
 * time taken says nothing about how much of a guess was right, nor about the token's length.
 *
 * Browsers cannot set an Authorization header on `EventSource`, `<img>` or `<video>`: reads
 * (GET and HEAD) also take the token as `?token=`. Writes take only the header, so a link or
 * a form on another site can never carry a write.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { HttpError } from "./errors.js";

export interface TokenOptions {
  /** May read and write. */
  token?: string;
  /** May only read. */
  readToken?: string;
}


/** Decides what a request may do; throws 401 without a valid token, 403 for a write with the read token. */
export type Authorizer = (req: IncomingMessage, query: URLSearchParams, wantsWrite: boolean) => void;

const digest = (text: string): Buffer => createHash("sha256").update(text, "utf8").digest();

export function createAuthorizer(options: TokenOptions): Authorizer {
  const write = options.token ? digest(options.token) : undefined;
  const read = options.readToken ? digest(options.readToken) : undefined;
  if (!write && !read) return () => undefined;
  const challenge = { "www-authenticate": 'Bearer realm="stowage"' };
  return (req, query, wantsWrite) => {
    const given = presented(req, query, !wantsWrite);
    if (given === undefined) throw new HttpError(401, "a bearer token is required", "unauthorized", challenge);
    const hash = digest(given);
    // Both comparisons always run: which token matched must not show in the timing either.
    const isWrite = write !== undefined && timingSafeEqual(hash, write);
    const isRead = read !== undefined && timingSafeEqual(hash, read);
    if (!isWrite && !isRead) throw new HttpError(401, "the token is not valid", "unauthorized", challenge);
    if (wantsWrite && !isWrite) throw new HttpError(403, "the token is read-only", "forbidden");
  };
}

function presented(req: IncomingMessage, query: URLSearchParams, queryAllowed: boolean): string | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    return match ? match[1] : "";
  }
  return queryAllowed ? (query.get("token") ?? undefined) : undefined;
}
