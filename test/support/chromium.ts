// Debian's Chromium for the browser tests: where it lives, the launch flags
// that work without network access, and `it` that skips without it except
// under CI=true (where a missing browser must fail, not skip).
import { existsSync } from 'node:fs';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
export const haveChromium = existsSync(CHROMIUM);
const inCi = process.env.CI === 'true';
export const itInBrowser = haveChromium || inCi ? it : it.skip;
/** Appended to a test title when it is skipped for want of the browser. */
export const browserSkipNote = haveChromium || inCi ? '' : ` [skipped: ${CHROMIUM} is missing; apt-get install -y chromium]`;
