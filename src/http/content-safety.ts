/**
 * Headers that keep stored values from running as pages in the gateway's origin (the console's
 * origin): a value is whatever someone uploaded, HTML and SVG included. Every value is served
 * with `nosniff` (the browser keeps the declared type) and a `sandbox` CSP (opened directly, it
 * runs in an opaque origin without scripts). Types outside a short list that browsers only
 * display (images other than SVG, audio, video, plain text, JSON) are also attachments, so
 * a browser downloads them instead of rendering them.
 */
const INLINE = [/^image\/(png|jpeg|gif|webp|avif|bmp|x-icon|vnd\.microsoft\.icon)$/, /^audio\/[a-z0-9.+-]+$/, /^video\/[a-z0-9.+-]+$/, /^text\/plain$/, /^application\/json$/];

// type/subtype with optional parameters, printable ASCII only: anything else is not a header value we send.
const CONTENT_TYPE = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+(\s*;\s*[a-z0-9!#$&^_.+-]+=("[\x20-\x21\x23-\x7e]*"|[a-z0-9!#$&^_.+-]+))*$/i;

export const DEFAULT_CONTENT_TYPE = "application/octet-stream";

/** The metadata's content type when it is a well-formed media type, else application/octet-stream. */
export function servedContentType(declared: string | undefined): string {
  return declared !== undefined && CONTENT_TYPE.test(declared.trim()) ? declared.trim() : DEFAULT_CONTENT_TYPE;
}

/** True when a browser may show `contentType` inline without any chance of running script. */
export function isInlineSafe(contentType: string): boolean {
  const essence = contentType.split(";")[0]!.trim().toLowerCase();
  return INLINE.some((pattern) => pattern.test(essence));
}

/** The safety headers for a value of `contentType` stored at `key`. */
export function safetyHeaders(key: string, contentType: string): Record<string, string> {
  const headers: Record<string, string> = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "sandbox",
  };
  if (!isInlineSafe(contentType)) headers["content-disposition"] = attachment(key.slice(key.lastIndexOf("/") + 1) || "download");
  return headers;
}

/** `attachment` with the name in RFC 6266/8187 form, plus an ASCII fallback for old clients. */
function attachment(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\%]/g, "_");
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}
