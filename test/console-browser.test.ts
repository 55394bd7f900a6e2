/**
 * The storage console in a real browser: Debian's Chromium, headless, driven by playwright-core,
 * against the real gateway over a file store (and a NATS store for the live feed, which the file
 * store does not have). Browse, preview JSON, an image and a video (seeking by Range requests),
 * upload, delete, see another client's writes appear, and a hostile key shown as text.
 * With STOWAGE_CONSOLE_SHOTS=docs the screenshots of the folder view and a preview are saved
 * as docs/console-folder.png and docs/console-preview.png (1280×800); without it they are
 * taken but not kept, so a test run leaves the checkout as it was.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { chromium, type Browser, type BrowserContext, type Page, type Request, type Response } from "playwright-core";
import { openStore } from "../src/open.js";
import { startGateway, type GatewayServer } from "../src/http/index.js";
import { createConsoleHandler, serveConsole } from "../src/http/console-assets.js";
import type { Store } from "../src/types.js";
import { sharedNats } from "./fixtures/nats.js";
import { isCI, uniqueName, unavailable } from "./fixtures/services.js";

const STEP = 15_000; // every wait in a test ends well before the test's own timeout
const TEST = { timeout: 60_000 };
const HOSTILE = "<img src=x onerror=alert(1)>";
const BULK = 1200;
const SHOTS = process.env.STOWAGE_CONSOLE_SHOTS;
const media = (name: string) => readFileSync(new URL(`./fixtures/media/${name}`, import.meta.url));

/**
 * Waits until `expression` is truthy in the page. Polled with evaluate, which runs outside the
 * page's CSP: waitForFunction with a string needs eval, which the console's CSP forbids.
 */
async function until(page: Page, expression: string, timeoutMs = STEP): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await page.evaluate<unknown>(expression))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${expression}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function chromiumPath(): string | undefined {
  for (const candidate of [process.env.STOWAGE_CHROMIUM, "/usr/bin/chromium"]) if (candidate && existsSync(candidate)) return candidate;
  return undefined;
}

const executablePath = chromiumPath();
const skip = executablePath ? false : isCI ? assert.fail("Chromium not found: apt-get install -y chromium or set STOWAGE_CHROMIUM (CI=true: a missing browser fails)") : unavailable("Chromium", "apt-get install -y chromium, or set STOWAGE_CHROMIUM");

describe("storage console in Chromium", { skip, timeout: 300_000 }, () => {
  let dir: string;
  let store: Store;
  let gateway: GatewayServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  /** Messages the page logged as errors (a CSP violation among them would show here). */
  const pageErrors: string[] = [];
  const dialogs: string[] = [];

  before(async () => {
    // The console from the source as it is now, into dist/console where serveConsole finds it.
    execFileSync(process.execPath, ["scripts/build-console.mjs"], { stdio: "pipe" });
    dir = mkdtempSync(join(tmpdir(), "stowage-console-"));
    store = await openStore(`file:${dir}`);
    await store.put("cameras/2026-12-01/reading.json", new TextEncoder().encode(JSON.stringify({ sensor: "north-gate", celsius: 21.5, ok: true, samples: [1, 2, 3], site: { lat: 52.37, lon: 4.9 } })), {
      metadata: { "content-type": "application/json", camera: "north-gate" },
    });
    await store.put("cameras/2026-12-01/frame.png", media("pattern.png"), { metadata: { "content-type": "image/png" } });
    await store.put("cameras/2026-12-01/clip.webm", media("clip.webm"), { metadata: { "content-type": "video/webm" } });
    await store.put("cameras/2026-12-01/raw.bin", Uint8Array.from({ length: 300 }, (_, i) => i % 256));
    await store.put("cameras/notes.txt", new TextEncoder().encode("night shift: nothing to report\n"), { metadata: { "content-type": "text/plain" } });
    for (let hour = 0; hour < 6; hour++) {
      const reading = { sensor: "north-gate", hour, celsius: 12 + hour / 2 };
      await store.put(`cameras/2026-12-01/readings/h${String(hour).padStart(2, "0")}.json`, new TextEncoder().encode(JSON.stringify(reading)), { metadata: { "content-type": "application/json" } });
      await store.put(`cameras/2026-12-01/thumbnails/t${hour}.png`, media("pattern.png"), { metadata: { "content-type": "image/png" } });
    }
    await store.put("readme.txt", new TextEncoder().encode("hello\n"));
    // A folder of more keys than one page: it fills in as the list scrolls.
    const bulk = Array.from({ length: BULK }, (_, i) => `bulk/k${String(i).padStart(5, "0")}`);
    for (let i = 0; i < bulk.length; i += 50) await Promise.all(bulk.slice(i, i + 50).map((key) => store.put(key, new TextEncoder().encode(key))));
    await store.put(HOSTILE, new TextEncoder().encode("not a tag"));
    gateway = await startGateway(store, { port: 0, fallback: serveConsole });
    browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"] });
    context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    context.setDefaultTimeout(STEP);
    page = await context.newPage();
    page.on("console", (message) => {
      if (message.type() === "error") pageErrors.push(message.text());
    });
    page.on("pageerror", (error) => pageErrors.push(String(error)));
    page.on("dialog", (dialog) => {
      dialogs.push(`${dialog.type()}: ${dialog.message()}`);
      void dialog.dismiss();
    });
  });

  after(async () => {
    await browser?.close();
    await gateway?.close(500);
    await store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const row = (p: Page, name: string) => p.locator(`#rows tr[data-name="${name.replace(/["\\]/g, "\\$&")}"]`);

  it("serves the page with a strict CSP, its assets cached by hash, 404 for a missing asset", TEST, async () => {
    const response = await fetch(`${gateway.url}/`);
    assert.equal(response.status, 200);
    const csp = response.headers.get("content-security-policy") ?? "";
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.equal(response.headers.get("x-content-type-options"), "nosniff");
    const html = await response.text();
    const script = /src="(\/app\.js\?v=[0-9a-f]+)"/.exec(html)?.[1];
    assert.ok(script, "index.html names app.js with its hash");
    const asset = await fetch(`${gateway.url}${script}`);
    assert.equal(asset.status, 200);
    assert.match(asset.headers.get("cache-control") ?? "", /immutable/);
    assert.match(asset.headers.get("content-type") ?? "", /javascript/);
    await asset.arrayBuffer();
    const deep = await fetch(`${gateway.url}/browse/cameras/`);
    assert.equal(deep.status, 200, "a page path serves the app");
    assert.equal(await deep.text(), html);
    assert.equal((await fetch(`${gateway.url}/missing.js`)).status, 404);
    assert.equal((await fetch(`${gateway.url}/`, { method: "POST" })).status, 405);
    // A console that was never built says so, and the API keeps working.
    const unbuilt = await startGateway(store, { port: 0, fallback: createConsoleHandler(join(dir, "no-console")) });
    try {
      const missing = await fetch(`${unbuilt.url}/`);
      assert.equal(missing.status, 503);
      assert.match(await missing.text(), /not built: run `npm run build`/);
      assert.equal((await fetch(`${unbuilt.url}/v1/objects/readme.txt`)).status, 200);
    } finally {
      await unbuilt.close(500);
    }
  });

  it("browses into a prefix with breadcrumbs, sizes, times and types, and back with the keyboard", TEST, async () => {
    await page.goto(`${gateway.url}/`);
    await row(page, "cameras/").waitFor();
    await row(page, "cameras/").click();
    await row(page, "cameras/2026-12-01/").waitFor();
    assert.equal(await row(page, "cameras/notes.txt").locator(".type").textContent(), "text/plain");
    await page.keyboard.press("Enter"); // the first row is focused: the sub-folder
    await row(page, "cameras/2026-12-01/reading.json").waitFor();
    assert.deepEqual(await page.locator("#crumbs a").allTextContents(), ["root", "cameras", "2026-12-01"]);
    const cells = await row(page, "cameras/2026-12-01/reading.json").locator("td").allTextContents();
    assert.equal(cells[0]!.trim().endsWith("reading.json"), true);
    assert.match(cells[1]!, /\d+ B/);
    assert.match(cells[2]!, /\d{4}/);
    assert.equal(cells[3], "application/json");
    assert.match((await page.locator("#count").textContent()) ?? "", /^2 folders, 4 objects$/);
    // A page path opens the same folder (the gateway serves the app there too).
    await page.goto(`${gateway.url}/browse/cameras/2026-12-01/`);
    await row(page, "cameras/2026-12-01/reading.json").waitFor();
    assert.equal(await page.evaluate<string>("location.pathname + location.hash"), "/#/cameras/2026-12-01/");
    assert.ok((await page.screenshot({ path: SHOTS && join(SHOTS, "console-folder.png") })).length > 0);
    await page.keyboard.press("Backspace");
    await until(page, "location.hash === '#/cameras/'");
    await row(page, "cameras/2026-12-01/").waitFor();
    // Arrows move, Enter opens.
    await row(page, "cameras/2026-12-01/").focus();
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("Enter");
    await page.locator(".details-key").filter({ hasText: "cameras/notes.txt" }).waitFor();
    assert.match((await page.locator("pre.text").textContent()) ?? "", /nothing to report/);
  });

  it("lists a folder of more keys than a page as the list scrolls", TEST, async () => {
    await page.goto(`${gateway.url}/#/bulk/`);
    await row(page, "bulk/k00000").waitFor();
    assert.match((await page.locator("#count").textContent()) ?? "", /so far/);
    for (let i = 0; i < 10 && (await page.locator("#rows tr").count()) < BULK; i++) {
      await page.locator("#rows tr").last().scrollIntoViewIfNeeded();
      await page.locator("#more").scrollIntoViewIfNeeded().catch(() => undefined);
      await page.waitForTimeout(200);
    }
    await row(page, `bulk/k${String(BULK - 1).padStart(5, "0")}`).waitFor({ state: "attached" });
    assert.equal(await page.locator("#rows tr").count(), BULK);
    assert.equal(await page.locator("#count").textContent(), `${BULK.toLocaleString("en-US")} objects`);
    assert.equal(await page.locator("#more").isVisible(), false);
  });

  it("previews JSON as a foldable tree with the key's metadata and etag", TEST, async () => {
    await page.goto(`${gateway.url}/#/cameras/2026-12-01/reading.json`);
    const tree = page.locator("[data-preview=json] .json");
    await tree.waitFor();
    assert.match((await tree.textContent()) ?? "", /"sensor": *"north-gate"/);
    const facts = (await page.locator(".facts").textContent()) ?? "";
    assert.match(facts, /camera\s*north-gate/);
    assert.match(facts, /ETag/);
    const site = tree.locator("details").filter({ hasText: '"site"' }).last();
    assert.equal(await site.getAttribute("open"), "");
    await site.locator("summary").first().click();
    assert.equal(await site.getAttribute("open"), null, "a click folds the object");
    await site.locator("summary").first().click();
    assert.ok((await page.screenshot({ path: SHOTS && join(SHOTS, "console-preview.png") })).length > 0);
  });

  it("previews an image and shows other bytes as hex from a 4 KiB range", TEST, async () => {
    await page.goto(`${gateway.url}/#/cameras/2026-12-01/frame.png`);
    const image = page.locator("img[data-preview=image]");
    await image.waitFor();
    await until(page, "document.querySelector('img[data-preview=image]')?.naturalWidth === 240");
    const asked: string[] = [];
    const onRequest = (request: Request) => {
      if (request.url().endsWith("/v1/objects/cameras/2026-12-01/raw.bin")) asked.push(request.headers().range ?? "whole");
    };
    page.on("request", onRequest);
    await page.goto(`${gateway.url}/#/cameras/2026-12-01/raw.bin`);
    const hex = page.locator("[data-preview=hex] pre");
    await hex.waitFor();
    page.off("request", onRequest);
    assert.deepEqual(asked, ["bytes=0-299"], "only the bytes shown are read");
    assert.match((await hex.textContent()) ?? "", /^00000000 {2}00 01 02 03 04 05 06 07 {2}08 09 0a 0b/);
  });

  it("plays a video and seeks in it, the browser reading it by Range requests", TEST, async () => {
    // The media element has the value's own URL: the browser asks for ranges (for a clip this
    // small, one from byte 0 that it then reads to the end; a long video gets one per far seek).
    const ranges: string[] = [];
    const statuses: number[] = [];
    const isClip = (url: string) => url.includes("/v1/objects/cameras/2026-12-01/clip.webm");
    const onRequest = (request: Request) => {
      if (isClip(request.url()) && request.headers().range) ranges.push(request.headers().range!);
    };
    const onResponse = (response: Response) => {
      if (isClip(response.url()) && response.request().headers().range) statuses.push(response.status());
    };
    page.on("request", onRequest);
    page.on("response", onResponse);
    try {
      await page.goto(`${gateway.url}/#/cameras/2026-12-01/clip.webm`);
      await page.locator("video[data-preview=video]").waitFor();
      await until(page, "document.querySelector('video').readyState >= 1");
      assert.ok((await page.evaluate<number>("document.querySelector('video').duration")) > 7);
      await page.evaluate("document.querySelector('video').currentTime = 5.5");
      await until(page, "!document.querySelector('video').seeking && document.querySelector('video').currentTime >= 5.5");
      await page.evaluate("document.querySelector('video').play()");
      await until(page, "document.querySelector('video').currentTime > 5.7");
      await page.evaluate("document.querySelector('video').pause()");
      assert.ok(ranges.length > 0, "the media element asked for ranges");
      assert.ok(statuses.length > 0 && statuses.every((status) => status === 206), `ranged answers are 206: ${JSON.stringify(statuses)}`);
    } finally {
      page.off("request", onRequest);
      page.off("response", onResponse);
    }
  });

  it("uploads a file with the picker and sees it listed, then deletes it after confirming", TEST, async () => {
    await page.goto(`${gateway.url}/#/cameras/`);
    await row(page, "cameras/notes.txt").waitFor();
    const body = Buffer.from("uploaded from the browser\n".repeat(2000));
    await page.locator("#file-input").setInputFiles({ name: "upload.txt", mimeType: "text/plain", buffer: body });
    await row(page, "cameras/upload.txt").waitFor();
    assert.deepEqual(Buffer.from(await store.get("cameras/upload.txt")), body);
    assert.equal((await store.stat("cameras/upload.txt")).metadata["content-type"], "text/plain");
    await until(page, `document.querySelector('#rows tr[data-name="cameras/upload.txt"] .size')?.textContent.includes("KiB")`); // the row gets its size
    await row(page, "cameras/upload.txt").click();
    await page.locator(".details-key").filter({ hasText: "cameras/upload.txt" }).waitFor();
    // Dropped on the page, a file goes into the open folder too.
    await page.evaluate(`(() => {
      const data = new DataTransfer();
      data.items.add(new File(["dropped"], "dropped.txt", { type: "text/plain" }));
      document.body.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
    })()`);
    await row(page, "cameras/dropped.txt").waitFor();
    assert.equal(new TextDecoder().decode(await store.get("cameras/dropped.txt")), "dropped");
    await store.delete("cameras/dropped.txt");
    const dialog = page.locator("dialog.confirm-dialog");
    // Replaced by someone else after it was shown: the delete names what was shown and fails.
    await store.put("cameras/upload.txt", new TextEncoder().encode("replaced"));
    await page.getByRole("button", { name: "Delete" }).click();
    await dialog.getByRole("button", { name: "Delete" }).click();
    await page.locator(".toast.error", { hasText: "changed since it was shown" }).waitFor();
    assert.equal(new TextDecoder().decode(await store.get("cameras/upload.txt")), "replaced");
    await page.reload();
    await page.locator("[data-preview=text]").waitFor();
    await page.getByRole("button", { name: "Delete" }).click();
    await dialog.waitFor();
    assert.equal(await dialog.locator(".confirm-detail").textContent(), "cameras/upload.txt");
    await dialog.getByRole("button", { name: "Delete" }).click();
    await row(page, "cameras/upload.txt").waitFor({ state: "detached" });
    await assert.rejects(store.stat("cameras/upload.txt"), { kind: "not_found" });
  });

  it("renders a hostile key as text and never runs it", TEST, async () => {
    await page.goto(`${gateway.url}/`);
    const hostile = row(page, HOSTILE);
    await hostile.waitFor();
    assert.equal(await hostile.locator(".label").textContent(), HOSTILE);
    await hostile.click();
    await page.locator(".details-key").waitFor();
    assert.equal(await page.locator(".details-key").textContent(), HOSTILE);
    assert.equal(await page.locator(".crumb-key").textContent(), HOSTILE);
    await page.waitForTimeout(300);
    assert.equal(await page.locator("img[src=x]").count(), 0, "no element was made from the key");
    assert.deepEqual(dialogs, [], "no dialog opened");
  });

  it("hides the live badge on a store without a change feed, and stays usable at a phone's width", TEST, async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    try {
      phone.setDefaultTimeout(STEP);
      const small = await phone.newPage();
      await small.goto(`${gateway.url}/#/cameras/2026-12-01/`);
      await row(small, "cameras/2026-12-01/reading.json").waitFor();
      await until(small, "document.getElementById('live').hidden === true");
      assert.ok((await small.evaluate<number>("document.documentElement.scrollWidth")) <= 390, "no sideways scrolling");
      await row(small, "cameras/2026-12-01/reading.json").click();
      await small.locator("[data-preview=json]").waitFor();
      assert.equal(await small.locator("section.folder").isVisible(), false, "the object replaces the folder on a phone");
      await small.locator(".back").click();
      await row(small, "cameras/2026-12-01/reading.json").waitFor({ state: "visible" });
    } finally {
      await phone.close();
    }
  });

  it("asks for a token when the gateway wants one and sends it", TEST, async () => {
    const guarded = await startGateway(store, { port: 0, fallback: serveConsole, token: "s3cret-token" });
    const other = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      other.setDefaultTimeout(STEP);
      const p = await other.newPage();
      await p.goto(`${guarded.url}/#/cameras/2026-12-01/`);
      const prompt = p.locator("dialog.token-dialog");
      await prompt.waitFor();
      await prompt.locator("input").fill("s3cret-token");
      await prompt.getByRole("button", { name: "Use token" }).click();
      await row(p, "cameras/2026-12-01/frame.png").click();
      // The image element cannot send a header: it reads with ?token=.
      await until(p, "document.querySelector('img[data-preview=image]')?.naturalWidth === 240");
    } finally {
      await other.close();
      await guarded.close(500);
    }
  });

  it("left no errors in the page (no CSP violation, no exception)", TEST, () => {
    // 401: the token prompt's first try; 412: the refused delete; 501: versions and watch on a file store.
    const unexpected = pageErrors.filter((text) => !/^Failed to load resource: the server responded with a status of (401|412|501)/.test(text));
    assert.deepEqual(unexpected, []);
  });
});

describe("storage console live feed (NATS)", { timeout: 120_000 }, async () => {
  const url = executablePath ? await sharedNats() : undefined;
  const bucket = uniqueName("console").replace(/[^-\w]/g, "_");
  let store: Store;
  let writer: Store;
  let gateway: GatewayServer;
  let browser: Browser;

  before(async () => {
    if (!url) return;
    store = await openStore(`${url}/${bucket}?history=5`);
    writer = await openStore(`${url}/${bucket}`); // another client
    await store.put("live/first.txt", new TextEncoder().encode("first"));
    gateway = await startGateway(store, { port: 0, fallback: serveConsole });
    browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
  });

  after(async () => {
    await browser?.close();
    await gateway?.close(500);
    await writer?.close();
    await store?.close();
    if (!url) return;
    const nc = await connect({ servers: url });
    const jsm = await jetstreamManager(nc);
    for (const stream of [`KV_${bucket}`, `OBJ_${bucket}_large`]) await jsm.streams.delete(stream).catch(() => undefined);
    await nc.close();
  });

  it("shows keys another client writes and deletes within a second, and the versions of a key", { skip: skip || (url ? false : "no NATS server"), timeout: 60_000 }, async (t) => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.setDefaultTimeout(STEP);
    await page.goto(`${gateway.url}/#/live/`);
    await page.locator('#rows tr[data-name="live/first.txt"]').waitFor();
    await page.locator("#live[data-state=live]").waitFor();

    let started = Date.now();
    await writer.put("live/arrived.json", new TextEncoder().encode('{"n":1}'), { metadata: { "content-type": "application/json" } });
    await page.locator('#rows tr[data-name="live/arrived.json"]').waitFor();
    const appeared = Date.now() - started;
    t.diagnostic(`a key written by another client appeared after ${appeared} ms`);
    await writer.put("live/deeper/x.txt", new TextEncoder().encode("x"));
    await page.locator('#rows tr[data-name="live/deeper/"]').waitFor();
    started = Date.now();
    await writer.delete("live/first.txt");
    await page.locator('#rows tr[data-name="live/first.txt"]').waitFor({ state: "detached" });
    const vanished = Date.now() - started;
    t.diagnostic(`a key deleted by another client went after ${vanished} ms`);
    assert.ok(appeared < 1000, `a new key appeared after ${appeared} ms`);
    assert.ok(vanished < 1000, `a deleted key went after ${vanished} ms`);

    // Versions: open the key, write it again, open the old version.
    await page.locator('#rows tr[data-name="live/arrived.json"]').click();
    await page.locator("[data-preview=json]").waitFor();
    await writer.put("live/arrived.json", new TextEncoder().encode('{"n":2}'), { metadata: { "content-type": "application/json" } });
    await page.locator(".version-list li").nth(1).waitFor();
    const versions = page.locator(".version-list button");
    assert.equal(await versions.count(), 2);
    await versions.filter({ hasNot: page.locator(".current") }).last().click();
    await until(page, "location.hash.includes('?version=')");
    await page.locator(".preview pre, .preview .json").first().waitFor();
    assert.match((await page.locator(".preview").textContent()) ?? "", /1/);
    await page.close();
  });
});
