/**
 * The gateway's token, when it wants one: asked for once, kept for the tab in sessionStorage
 * (gone when the tab closes) and sent as a Bearer header.
 */
import { h } from "./dom.js";

const STORAGE_KEY = "stowage.token";

/** Kept here too: where storage is disabled the token lives as long as the page. */
let memoryToken: string | undefined;
let pending: Promise<string | undefined> | undefined;

export function currentToken(): string | undefined {
  try {
    return sessionStorage.getItem(STORAGE_KEY) ?? memoryToken;
  } catch {
    return memoryToken;
  }
}

function keepToken(token: string): void {
  try {
    sessionStorage.setItem(STORAGE_KEY, token);
  } catch {
    // the token then lives for this page only
  }
  memoryToken = token;
}

export function tokenHeader(): Record<string, string> {
  const token = currentToken();
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** Asks for a token (one prompt however many requests were refused); undefined when cancelled. */
export function askToken(reason: string): Promise<string | undefined> {
  pending ??= promptToken(reason).finally(() => {
    pending = undefined;
  });
  return pending;
}

function promptToken(reason: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const input = h("input", { attrs: { type: "password", name: "token", autocomplete: "off", "aria-label": "token", placeholder: "token" } });
    const form = h(
      "form",
      { attrs: { method: "dialog" } },
      h("h2", {}, "Token"),
      h("p", {}, reason),
      input,
      h("menu", {}, h("button", { attrs: { value: "cancel", type: "button" }, on: { click: () => dialog.close("cancel") } }, "Cancel"), h("button", { attrs: { value: "ok", class: "primary" } }, "Use token")),
    );
    const dialog = h("dialog", { class: "token-dialog" }, form);
    dialog.addEventListener("close", () => {
      const token = input.value.trim();
      dialog.remove();
      if (dialog.returnValue === "ok" && token) {
        keepToken(token);
        resolve(token);
      } else resolve(undefined);
    });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
}
