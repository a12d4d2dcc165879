/**
 * Test support for the UI's end-to-end tests: Debian's chromium (installed by
 * tests/deps/chromium.sh, never downloaded by Playwright) driven by playwright-core, a real
 * `f2s dev` per test with copies of the examples, screenshots to tests/artifacts/ui/, and
 * cleanup of every process and temp folder, also when a step fails.
 */

import { type Browser, chromium, type Page } from "playwright-core";
import { copy } from "../harness/files.ts";
import { type ControlPlane, processesMatching, startDev, waitFor } from "../harness/dev.ts";

export const CHROMIUM = "/usr/bin/chromium";
const ROOT = new URL("../../", import.meta.url).pathname;
export const ARTIFACTS = `${ROOT}tests/artifacts/ui`;

/** Playwright's own timeout for each action and expectation (ms). */
export const STEP_TIMEOUT_MS = 20_000;

export async function launchBrowser(): Promise<Browser> {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    throw new Error(`${CHROMIUM} is missing: run tests/deps/chromium.sh (Debian's chromium)`);
  }
  // Playwright makes its own temporary --user-data-dir and removes it on close.
  return await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

export interface UiSession {
  server: ControlPlane;
  browser: Browser;
  functionsDir: string;
  /** A new tab (default: a laptop's size, light); records page errors and CSP violations. */
  newPage(
    options?: { viewport?: { width: number; height: number }; colorScheme?: "light" | "dark" },
  ): Promise<Page>;
  /** Uncaught page errors and CSP reports seen in any tab so far. */
  problems: string[];
}

/**
 * Runs `fn` with a fresh `f2s dev` (functions: copies of examples/) and a browser, then
 * closes both and checks that no process started from the functions folder is left.
 */
export async function withUi(
  options: { config?: string },
  fn: (s: UiSession) => Promise<void>,
): Promise<void> {
  const functionsDir = await Deno.makeTempDir({ prefix: "f2s-ui-test-" });
  let server: ControlPlane | undefined;
  let browser: Browser | undefined;
  try {
    await copy(`${ROOT}examples`, functionsDir);
    server = await startDev({ functionsDir, config: options.config });
    browser = await launchBrowser();
    const problems: string[] = [];
    const session: UiSession = {
      server,
      browser,
      functionsDir,
      problems,
      async newPage(options = {}) {
        const context = await browser!.newContext({
          viewport: options.viewport ?? { width: 1280, height: 800 },
          colorScheme: options.colorScheme ?? "light",
        });
        const page = await context.newPage();
        page.setDefaultTimeout(STEP_TIMEOUT_MS);
        page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
        page.on("console", (m) => {
          if (/Content.Security.Policy/i.test(m.text())) problems.push(`CSP: ${m.text()}`);
        });
        return page;
      },
    };
    await fn(session);
  } finally {
    await browser?.close().catch(() => {});
    if (server) await server.stop();
    await waitFor(
      `no processes left in ${functionsDir}`,
      () => processesMatching(functionsDir).length === 0,
      20_000,
    ).finally(() => Deno.remove(functionsDir, { recursive: true }).catch(() => {}));
  }
}

/** Saves a full-page screenshot as tests/artifacts/ui/NAME.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: true });
}

/** The Authorization header for a basic user, for API calls the test makes itself. */
export function basic(user: string, password: string): string {
  return `Basic ${btoa(`${user}:${password}`)}`;
}
