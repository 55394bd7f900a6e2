/** How sizes, times and types read in the console. */

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** A size at a glance: `532 B`, `50.8 KiB`, `1.2 GiB` (the exact bytes are in the details). */
export function formatSize(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value < 10 ? value.toFixed(1) : Math.round(value)} ${UNITS[unit]}`;
}

const TIME = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const pad = (n: number) => String(n).padStart(2, "0");

/** Local time as `2026-12-01 23:05`: fits a column and sorts as it reads. */
export function formatShortTime(date: Date | undefined): string {
  if (!date || Number.isNaN(date.getTime())) return "";
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

export function formatTime(date: Date | undefined): string {
  return date && !Number.isNaN(date.getTime()) ? TIME.format(date) : "";
}

const BY_EXTENSION: Record<string, string> = {
  json: "application/json",
  ndjson: "application/x-ndjson",
  jsonl: "application/x-ndjson",
  txt: "text/plain",
  log: "text/plain",
  csv: "text/csv",
  md: "text/markdown",
  yaml: "text/yaml",
  yml: "text/yaml",
  xml: "application/xml",
  html: "text/html",
  svg: "image/svg+xml",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  avif: "image/avif",
  mp4: "video/mp4",
  m4v: "video/mp4",
  webm: "video/webm",
  mov: "video/quicktime",
  mp3: "audio/mpeg",
  m4a: "audio/mp4",
  ogg: "audio/ogg",
  oga: "audio/ogg",
  wav: "audio/wav",
  flac: "audio/flac",
  pdf: "application/pdf",
};

const GENERIC = new Set(["", "application/octet-stream", "binary/octet-stream"]);

/** The stored content type, or one guessed from the key's extension when none was stored. */
export function typeOf(key: string, stored: string | undefined): string {
  const type = (stored ?? "").split(";")[0]!.trim().toLowerCase();
  if (!GENERIC.has(type)) return type;
  const name = key.slice(key.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  return (dot > 0 && BY_EXTENSION[name.slice(dot + 1).toLowerCase()]) || type || "";
}

export type PreviewKind = "json" | "text" | "image" | "audio" | "video" | "bytes";

export function previewKind(type: string): PreviewKind {
  if (type === "application/json" || type.endsWith("+json")) return "json";
  // An SVG is shown only through <img>, where a browser never runs its scripts.
  if (type.startsWith("image/")) return "image";
  if (type.startsWith("video/")) return "video";
  if (type.startsWith("audio/")) return "audio";
  if (type.startsWith("text/") || /(xml|yaml|ndjson|javascript|toml|csv)$/.test(type)) return "text";
  return "bytes";
}
