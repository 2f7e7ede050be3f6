// Opens a corral HTML report in headless Chromium (Debian's, through playwright-core) and checks
// that it renders without console errors or page errors, asks for nothing over the network,
// shows every task (in the task list, the DAG and the timeline), and keeps a screenshot.
//
//   node check_report.mjs REPORT.html TASK_ID_FILE SCREENSHOT.png
//
// TASK_ID_FILE holds the ids the report must show, one per line. CHROMIUM overrides
// /usr/bin/chromium. Prints one JSON line of what it found; exit 1 on any failure.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const [reportPath, idsPath, screenshot] = process.argv.slice(2);
const ids = readFileSync(idsPath, "utf8").split("\n").filter((l) => l.length);
const problems = [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  // Chromium's own sandbox needs user namespaces it may not get in a test sandbox or as root.
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("request", (r) => {
    if (!r.url().startsWith("file:") && !r.url().startsWith("data:")) {
      problems.push(`network request: ${r.url()}`);
    }
  });
  await page.goto(pathToFileURL(reportPath).href, { waitUntil: "load" });

  const shown = await page.$$eval("[data-task]", (els) => els.map((e) => e.getAttribute("data-task")));
  const nodes = await page.$$eval("[data-node]", (els) => els.map((e) => e.getAttribute("data-node")));
  const timeline = await page.$$eval("#timeline text", (els) => els.map((e) => e.textContent));
  for (const id of ids) {
    if (!shown.includes(id)) problems.push(`task ${id} is not in the task list`);
    if (!nodes.includes(id)) problems.push(`task ${id} is not in the DAG`);
    if (!timeline.includes(id)) problems.push(`task ${id} is not in the timeline`);
  }
  if (shown.length !== ids.length) problems.push(`the task list shows ${shown.length} tasks, not ${ids.length}`);
  // Output an agent printed ("<script>...") is text, never markup.
  const scripts = await page.evaluate(() => document.scripts.length);
  if (scripts !== 0) problems.push(`${scripts} script elements`);
  const conflicts = await page.$$("#conflicts");
  if (conflicts.length !== 1) problems.push("no conflict section");
  // Every task's details open: the whole report must still lay out.
  await page.$$eval("details", (els) => els.forEach((e) => (e.open = true)));
  const height = await page.evaluate(() => document.documentElement.scrollHeight);
  // Chromium caps screenshots; the first screens are what a reader sees first.
  await page.screenshot({ path: screenshot, fullPage: height < 16000 });
  console.log(JSON.stringify({ tasks: shown.length, dag_nodes: nodes.length, height, problems }));
} finally {
  await browser.close();
}
process.exit(problems.length ? 1 : 0);
