// With read tokens configured: the page asks once, keeps the token for the session, and loads.
//   node token.mjs <base url> <token>
import { chromium } from "playwright-core";

const [url, token] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_BIN || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  let dialogs = 0;
  page.on("dialog", async (d) => { dialogs += 1; await d.accept(token); });
  await page.goto(url);
  await page.waitForSelector("#insights tbody tr", { timeout: 20000 });
  await page.waitForFunction(() => window.ibsight.polls >= 3, null, { timeout: 30000 });
  const stored = await page.evaluate(() => sessionStorage.getItem("ibsight-token"));
  const stale = await page.locator("#stale").isVisible();
  console.log(JSON.stringify({ dialogs, stored_ok: stored === token, stale }));
  if (dialogs !== 1 || stored !== token || stale) process.exit(1);
} finally {
  await browser.close();
}
