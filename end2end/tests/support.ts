// What the browser specs share: signing in as the platform admin, waiting
// for the page to hydrate, and collecting the browser's errors.
import { expect, Page } from "@playwright/test";
import { ADMIN_PASSWORD } from "../playwright.config";

/// Signs in as `admin` through the login form and waits for the dashboard.
export async function loginAsAdmin(page: Page) {
  await page.goto("/login");
  await page.getByLabel("Username").fill("admin");
  await page.getByLabel("Password").fill(ADMIN_PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("heading", { name: "Welcome, admin" })).toBeVisible();
  await page.waitForLoadState("networkidle");
}

/// Waits until the WASM bundle has loaded, so forms submit without a page load.
export async function hydrated(page: Page) {
  await page.waitForFunction(() =>
    performance.getEntriesByType("resource").some((e) => e.name.endsWith(".wasm")),
  );
  await page.waitForLoadState("networkidle");
}

/// Collects uncaught errors and console errors of the page. Refused
/// requests (4xx) are part of what specs check; server errors are not.
export function browserErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && !/status of 4\d\d/.test(m.text()) && errors.push(m.text()));
  return errors;
}
