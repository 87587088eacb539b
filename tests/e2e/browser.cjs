// Opens Label Studio labeling pages in a real Chromium and reports what is drawn, as JSON on stdout.
// Usage: node browser.cjs <job.json>; job = {base, email, password, playwright, pages: [{name, path, screenshot}]}.
// The evidence per page: region list items (outliner), video timeline rows, time-series brush regions.
'use strict';

const fs = require('fs');

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

async function login(page, job) {
  await page.goto(`${job.base}/user/login/`);
  await page.fill('input[name=email]', job.email);
  await page.fill('input[name=password]', job.password);
  await Promise.all([page.waitForURL((url) => !url.pathname.startsWith('/user/login')), page.click('button[type=submit]')]);
}

// Everything is read in the page: counts of the elements that draw regions, and the labels they show.
function collectEvidence() {
  const texts = (selector) => [...document.querySelectorAll(selector)].map((el) => el.textContent.trim());
  const drawn = (selector) => [...document.querySelectorAll(selector)]
    .filter((rect) => Number(rect.getAttribute('width') || 0) > 0).length;
  const video = document.querySelector('video');
  return {
    outliner_labels: texts('.lsf-outliner-item__title'),
    timeline_rows: texts('.lsf-keypoints__name'),
    timeline_lifespans: document.querySelectorAll('.lsf-keypoints__lifespan').length,
    minimap_regions: document.querySelectorAll('.lsf-minimap__region').length,
    timeseries_overview_regions: drawn('g.regions rect.region'),
    timeseries_brushes: drawn('g.brush rect.selection'),
    timeseries_channels: document.querySelectorAll('g.brushes').length,
    video_ready_state: video ? video.readyState : null,
  };
}

async function inspect(context, job, spec) {
  const page = await context.newPage();
  const problems = [];
  page.on('console', (msg) => { if (msg.type() === 'error') problems.push(`console: ${msg.text().slice(0, 300)}`); });
  page.on('pageerror', (err) => problems.push(`pageerror: ${String(err).slice(0, 300)}`));
  page.on('response', (res) => { if (res.status() >= 400) problems.push(`HTTP ${res.status()} ${res.url()}`); });
  await page.goto(`${job.base}${spec.path}`);
  await page.waitForSelector('.lsf-main-view', { timeout: 90000 });
  let regionsShown = true;
  try {
    await page.waitForSelector('.lsf-outliner-item', { timeout: 60000 });
  } catch (err) {
    regionsShown = false;
  }
  await page.waitForTimeout(3000); // the timeline and the plots draw after the region list
  await page.screenshot({ path: spec.screenshot, fullPage: true });
  const evidence = await page.evaluate(collectEvidence);
  await page.close();
  return { ...evidence, regions_shown: regionsShown, url: `${job.base}${spec.path}`, screenshot: spec.screenshot, problems };
}

async function main() {
  const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const { chromium } = require(job.playwright);
  const browser = await chromium.launch({ executablePath: job.chromium || '/usr/bin/chromium', args: CHROMIUM_ARGS });
  const report = {};
  try {
    const context = await browser.newContext({ viewport: { width: 1400, height: 2400 } });
    const page = await context.newPage();
    await login(page, job);
    await page.close();
    for (const spec of job.pages) report[spec.name] = await inspect(context, job, spec);
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(report));
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
