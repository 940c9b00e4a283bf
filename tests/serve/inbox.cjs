// The approvals inbox in a real headless Chromium (playwright-core driving Debian's chromium):
// sign in, find the pending prod change with its diff, approve it, watch the session page
// follow the events live to the end. Prints one JSON object; exits non-zero on a failure.
//
//   node inbox.cjs BASE_URL TOKEN SESSION_ID FINGERPRINT SCREENSHOT_DIR
// env: PLAYWRIGHT_CORE (the playwright-core package directory), CHROMIUM (default /usr/bin/chromium)
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const [base, token, session, fingerprint, shots] = process.argv.slice(2);

async function main() {
  fs.mkdirSync(shots, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "bosun-chromium-"));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1200, height: 1400 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const out = { dialogs: [], consoleErrors: [] };
  const page = ctx.pages()[0] || (await ctx.newPage());
  try {
    page.on("dialog", async (d) => { out.dialogs.push(d.message()); await d.dismiss(); });
    page.on("console", (m) => { if (m.type() === "error") out.consoleErrors.push(m.text()); });

    // not signed in: the inbox sends us to the login form
    await page.goto(base + "/");
    out.loginUrl = new URL(page.url()).pathname;
    await page.fill("input[name=token]", token);
    await Promise.all([page.waitForNavigation(), page.click("form button[type=submit]")]);
    out.afterLogin = new URL(page.url()).pathname;
    const cookies = await ctx.cookies();
    const c = cookies.find((c) => c.name === "bosun_serve");
    out.cookie = c ? { httpOnly: c.httpOnly, sameSite: c.sameSite } : null;

    // the inbox: the pending prod change with its diff
    const card = page.locator(`#approval-${fingerprint}`);
    await card.waitFor({ timeout: 15000 });
    out.cardClass = await card.getAttribute("class");
    out.env = (await card.locator("h3 .env").textContent()).trim();
    out.diff = await card.locator("pre.diff").textContent();
    out.diffElements = await card.locator("pre.diff *").count();
    out.sessionLinked = await card.locator(`a[href="/ui/sessions/${session}"]`).count();
    await page.screenshot({ path: path.join(shots, "inbox.png"), fullPage: true });

    // approve: the form is bound to this fingerprint
    out.formAction = await card.locator("form").getAttribute("action");
    await Promise.all([page.waitForNavigation(), card.locator("button.approve").click()]);
    out.afterApprove = new URL(page.url()).pathname;
    await page.evaluate(() => { window.__noReload = true; });
    await page.screenshot({ path: path.join(shots, "session-running.png"), fullPage: true });

    // the session page follows the events to the end
    await page.waitForSelector("#status[data-status=completed]", { timeout: 60000 });
    await page.waitForSelector("#status[data-ended=yes]", { timeout: 30000 }).catch(() => {});
    out.status = (await page.locator("#status").textContent()).trim();
    out.liveUpdated = await page.evaluate(() => window.__noReload === true);
    out.events = await page.locator("#events li").allTextContents();
    out.images = await page.locator("img").count();
    await page.screenshot({ path: path.join(shots, "session-finished.png"), fullPage: true });

    // reloaded: the outcome is rendered, the hostile answer as text
    await page.reload();
    out.answer = (await page.locator("pre.answer").textContent()).trim();
    out.imagesAfterReload = await page.locator("img").count();
    out.pendingAfter = await page.locator("#pending").count();
    await page.screenshot({ path: path.join(shots, "session-outcome.png"), fullPage: true });
  } catch (e) {
    await page.screenshot({ path: path.join(shots, "error.png"), fullPage: true }).catch(() => {});
    console.error("at " + page.url() + "\n" + (await page.content().catch(() => "")).slice(0, 4000));
    throw e;
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => { console.error(e && e.stack || String(e)); process.exit(1); });
