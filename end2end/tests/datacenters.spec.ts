import { test, expect, Page } from "@playwright/test";
import { DATACENTER_URL, DATACENTER_TOKEN } from "../playwright.config";
import { loginAsAdmin, browserErrors } from "./support";

test("admin adds a datacenter; a team opens it, creates an app and a component, and watches its events", async ({ page }) => {
  const errors = browserErrors(page);
  await loginAsAdmin(page);

  // The embedded datacenter is there and online.
  await page.getByRole("link", { name: "Datacenters" }).click();
  await expect(page.locator("tr[data-datacenter=local]")).toContainText("online");

  // Register the second one.
  const form = page.locator("section", { hasText: "Add a datacenter" });
  await form.getByLabel("Name").fill("dc2");
  await form.getByLabel("API URL").fill(DATACENTER_URL);
  await form.getByLabel("Token").fill(DATACENTER_TOKEN);
  await form.getByRole("button", { name: "Add datacenter" }).click();
  await expect(page.getByText("Datacenter added and answering.")).toBeVisible();
  await expect(page.locator("tr[data-datacenter=dc2]")).toContainText("online");
  await page.screenshot({ path: "test-results/datacenters.png", fullPage: true });

  // A team, which may use dc2 once it is opened for it.
  await page.getByRole("link", { name: "Teams" }).click();
  await page.getByLabel("Name", { exact: true }).fill("globex");
  await page.getByRole("button", { name: "Create team" }).click();
  await expect(page.getByText("Team created.")).toBeVisible();
  await page.goto("/teams/globex");
  await page.getByLabel("Open a datacenter for this team").fill("dc2");
  await page.getByRole("button", { name: "Open", exact: true }).click();
  await expect(page.getByText("The team may now use it.")).toBeVisible();
  await expect(page.locator(".dc-chips")).toContainText("dc2");

  // An app, then a component in dc2.
  await page.getByLabel("New app").fill("store");
  await page.getByRole("button", { name: "Create app" }).click();
  await expect(page.getByText("App created.")).toBeVisible();
  await page.getByRole("link", { name: "store" }).click();
  await expect(page.getByRole("heading", { name: /store/ })).toBeVisible();
  await expect(page.getByText("No components yet.")).toBeVisible();

  const add = page.locator("section", { hasText: "Add a component" });
  await add.getByLabel("Name").fill("api");
  await add.getByLabel("Datacenter").selectOption("dc2");
  await add.getByLabel("Run command").fill("python3 -m http.server $PORT --bind 127.0.0.1");
  await add.getByLabel("Port").fill("8000");
  await add.getByRole("button", { name: "Add component" }).click();
  await expect(page.getByText("Component created: see its event below.")).toBeVisible();
  const row = page.locator("tr[data-component=api]");
  await expect(row).toContainText("dc2");

  // The create event and its log.
  const events = page.locator("table.events");
  await expect(events).toContainText("create");
  await events.locator("tr").filter({ has: page.locator("code", { hasText: /^create$/ }) }).getByRole("link").first().click();
  await expect(page.getByRole("log")).toContainText("component globex/store/api stored");
  await expect(page.locator(".log-head")).toContainText("succeeded");

  // Start it and follow the start event live.
  await page.goBack();
  await row.getByRole("button", { name: "start", exact: true }).click();
  await expect(page.getByText("Queued: follow it in the events below.")).toBeVisible();
  await expect(row).toContainText("running", { timeout: 20_000 });
  await events.locator("tr").filter({ has: page.locator("code", { hasText: /^start$/ }) }).getByRole("link").first().click();
  await expect(page.getByRole("log")).toContainText("healthy");
  await page.screenshot({ path: "test-results/event.png", fullPage: true });

  // The component page shows its settings; a secret is set but never shown back.
  await page.goto("/teams/globex/apps/store/components/api");
  await expect(page.locator("dl.facts")).toContainText("python3 -m http.server");
  await page.getByLabel(/Set secrets/).fill("API_KEY=very-secret-value");
  await page.getByRole("button", { name: "Save settings" }).click();
  await expect(page.getByText("Saved: the update event applies it.")).toBeVisible();
  await expect(page.locator("dl.facts")).toContainText("API_KEY (values are never shown)");
  await expect(page.locator("body")).not.toContainText("very-secret-value");
  // Broken settings are refused with the reason, and nothing changes.
  await page.getByLabel("Settings (JSON)").fill("{ not json");
  await page.getByRole("button", { name: "Save settings" }).click();
  await expect(page.getByRole("alert")).toContainText("not valid JSON");
  await page.screenshot({ path: "test-results/component.png", fullPage: true });
  expect(errors).toEqual([]);
});
