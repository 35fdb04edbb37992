// How the dashboard copes with a large fabric: time to first full render and the longest
// main-thread task over a few polls.   node scale.mjs <base url>
import { chromium } from "playwright-core";

const [url] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_BIN || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.addInitScript(() => {
    window.__longest = 0;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__longest = Math.max(window.__longest, e.duration);
    }).observe({ type: "longtask", buffered: true });
  });
  const t0 = Date.now();
  await page.goto(url);
  await page.waitForFunction(() => window.ibsight && window.ibsight.polls >= 1, null, { timeout: 30000 });
  const firstRenderMs = Date.now() - t0;
  await page.waitForFunction(() => window.ibsight.polls >= 4, null, { timeout: 60000 });
  const out = await page.evaluate(() => ({
    summary: document.getElementById("fabric-summary").textContent,
    tiles: document.querySelectorAll("#fabric .switch").length,
    port_cells: document.querySelectorAll("#fabric .port").length,
    insight_rows: document.querySelectorAll("#insights tbody tr").length,
    dom_nodes: document.getElementsByTagName("*").length,
    longest_task_ms: Math.round(window.__longest),
  }));
  console.log(JSON.stringify({ first_render_ms: firstRenderMs, ...out }));
} finally {
  await browser.close();
}
