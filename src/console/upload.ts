/**
 * Uploads into the open folder: from the file picker or files dropped on the page, each a
 * streamed PUT with its progress shown until it is done.
 */
import { uploadFile } from "./api.js";
import { byId, h } from "./dom.js";
import { formatSize } from "./format.js";
import { toast, toastError } from "./toast.js";

export interface UploadHost {
  /** The folder files go into. */
  prefix(): string;
  uploaded(key: string): void;
}

export function setUpUploads(host: UploadHost): void {
  const input = byId<HTMLInputElement>("file-input");
  input.addEventListener("change", () => {
    const files = [...(input.files ?? [])];
    input.value = "";
    void uploadAll(files, host);
  });

  const overlay = byId("drop");
  let depth = 0; // dragenter/dragleave fire for every child crossed
  const carriesFiles = (event: DragEvent) => event.dataTransfer?.types.includes("Files") ?? false;
  document.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    depth++;
    byId("drop-prefix").textContent = host.prefix() || "/";
    overlay.hidden = false;
  });
  document.addEventListener("dragleave", () => {
    if (depth > 0 && --depth === 0) overlay.hidden = true;
  });
  document.addEventListener("dragover", (event) => {
    if (carriesFiles(event)) event.preventDefault(); // allows the drop
  });
  document.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth = 0;
    overlay.hidden = true;
    void uploadAll([...(event.dataTransfer?.files ?? [])], host);
  });
}

async function uploadAll(files: File[], host: UploadHost): Promise<void> {
  const prefix = host.prefix();
  // One at a time: a folder of files should not open dozens of connections at once.
  for (const file of files) await uploadOne(prefix + file.name, file, host);
}

async function uploadOne(key: string, file: File, host: UploadHost): Promise<void> {
  const bar = h("progress", { attrs: { max: String(file.size || 1), value: "0" } });
  const label = h("span", { class: "upload-size" }, `0 / ${formatSize(file.size)}`);
  const upload = uploadFile(key, file, (sent, total) => {
    bar.max = total || 1;
    bar.value = sent;
    label.textContent = `${formatSize(sent)} / ${formatSize(total)}`;
  });
  const item = h(
    "div",
    { class: "upload", attrs: { "data-key": key } },
    h("span", { class: "upload-key" }, key),
    bar,
    label,
    h("button", { class: "link", on: { click: () => upload.abort() } }, "Cancel"),
  );
  byId("uploads").append(item);
  try {
    await upload.done;
    toast(`Uploaded ${key}`);
    host.uploaded(key);
  } catch (error) {
    toastError(`Upload of ${key}`, error);
  } finally {
    item.remove();
  }
}
