/** Short messages at the bottom of the page: errors and the outcome of actions. */
import { ApiError } from "./api.js";
import { byId, h } from "./dom.js";

export function toast(message: string, kind: "info" | "error" = "info"): void {
  const note = h("div", { class: `toast ${kind}`, attrs: { role: kind === "error" ? "alert" : "status" } }, message);
  byId("toasts").append(note);
  setTimeout(() => note.remove(), kind === "error" ? 8000 : 3000);
}

export function toastError(context: string, error: unknown): void {
  const text = error instanceof ApiError ? `${error.message}${error.kind ? ` (${error.kind})` : ""}` : error instanceof Error ? error.message : String(error);
  toast(`${context}: ${text}`, "error");
}
