/** A modal question with the page's own <dialog>: no window.confirm, which blocks the page. */
import { h } from "./dom.js";

export function confirmDialog(title: string, detail: string, action: string): Promise<boolean> {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "confirm-dialog" },
      h(
        "form",
        { attrs: { method: "dialog" } },
        h("h2", {}, title),
        h("p", { class: "confirm-detail" }, detail),
        h("menu", {}, h("button", { attrs: { value: "cancel" } }, "Cancel"), h("button", { attrs: { value: "ok", class: "danger" } }, action)),
      ),
    );
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "ok");
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
