// A real browser on a real Temporal Web UI for tests: Debian's Chromium (scripts/ensure-browser.ts
// installs it when absent) driven by playwright-core, headless, and a dev server of the test's own with
// its Web UI on — the harness starts its dev server headless. Screenshots go to reports/ui/
// (git-ignored), the UI test's output folder, and their paths are printed.
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { projectRoot } from '../../config/index.ts';
import { freePort } from '../../stack/ports.ts';
import { startTemporalDevServer, type RunningTemporal } from '../../stack/temporal.ts';
import { ensureBrowser } from '../../scripts/ensure-browser.ts';
import { testEnv } from './env.ts';

export const SCREENSHOT_DIR = path.join(projectRoot, 'reports', 'ui');

/** An in-memory dev server with the Web UI, started the way the stack starts one (same dynamic config). */
export async function startWebUiServer(logFile: string): Promise<RunningTemporal> {
  const { temporalCli, namespace } = testEnv();
  return startTemporalDevServer({
    cli: temporalCli,
    port: await freePort(),
    uiPort: await freePort(),
    namespace,
    dbFile: undefined,
    logFile,
    headless: false,
  });
}

export type TestBrowser = { browser: Browser; page: Page; screenshot(name: string): Promise<string>; close(): Promise<void> };

export async function openBrowser(): Promise<TestBrowser> {
  const executablePath = await ensureBrowser();
  // --no-sandbox: Chromium refuses its sandbox when run as root, which CI is.
  const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
  // Wide enough that the added search-attribute columns are on screen in the screenshots.
  const page = await browser.newPage({ viewport: { width: 1900, height: 1000 } });
  page.setDefaultTimeout(20_000);
  return {
    browser,
    page,
    async screenshot(name) {
      fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
      const file = path.join(SCREENSHOT_DIR, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      process.stderr.write(`[ui] screenshot: ${path.relative(projectRoot, file)}\n`);
      return file;
    },
    close: () => browser.close(),
  };
}
