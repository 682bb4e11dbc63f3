import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Where browser tests save the screenshots a person then looks at. */
export const SHOTS = 'tmp/screenshots';

/**
 * Real headless Chromium (Debian's, or CHROMIUM_PATH) with one page, and the errors the page
 * throws (and, with `consoleErrors`, those it logs) collected for the tests to check.
 */
export async function openBrowser(viewport: Readonly<{ width: number; height: number }>, { consoleErrors = false } = {}): Promise<Readonly<{ browser: Browser; page: Page; errors: string[] }>> {
  const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  if (!existsSync(executablePath)) throw new Error(`The console tests need Chromium at ${executablePath} (apt-get install chromium, or set CHROMIUM_PATH).`);
  mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport });
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  if (consoleErrors) {
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
  }
  return { browser, page, errors };
}
