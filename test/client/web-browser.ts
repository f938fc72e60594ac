/**
 * Headless Debian chromium for the join page's tests (Playwright): the flags that keep it off the
 * network (this machine's closed network refuses the background connections, many at a time).
 * Playwright's launch() runs on a fresh temporary profile of its own (it refuses --user-data-dir).
 */
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
