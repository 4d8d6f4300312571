import { test, expect, Page } from "@playwright/test";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { loginAsAdmin, browserErrors } from "./support";

// A local git repository (branch main) holding the python-hello sample.
function sampleRepo(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cloudport-e2e-repo-"));
  fs.cpSync(path.resolve(__dirname, "../../examples/python-hello"), dir, { recursive: true });
  const git = (...args: string[]) => execFileSync("git", args, { cwd: dir, stdio: "ignore" });
  git("init", "-q", "-b", "main");
  git("add", "-A");
  git("-c", "user.name=e2e", "-c", "user.email=e2e@example.com", "commit", "-q", "-m", "sample");
  return `file://${dir}`;
}

/// Clicks an action on the component page and follows its event to the end.
async function runAction(page: Page, label: string, scope = page.locator("section.controls")) {
  await scope.getByRole("button", { name: label, exact: true }).click();
  const follow = page.getByRole("link", { name: "Follow its log" });
  await expect(follow).toBeVisible();
  await follow.click();
  await expect(page.getByRole("log")).toBeVisible();
}

test("a sample deploys from a git URL, its build streams live, it runs, opens and rolls back", async ({ page }) => {
  test.setTimeout(180_000);
  const errors = browserErrors(page);
  const repo = sampleRepo();
  await loginAsAdmin(page);

  // A team that may use the embedded datacenter, with an app.
  for (const [url, body] of [
    ["/api/v1/teams", { name: "shipit" }],
    ["/api/v1/teams/shipit/datacenters", { datacenter: "local" }],
    ["/api/v1/teams/shipit/apps", { name: "web" }],
  ] as const) {
    const r = await page.request.post(url, { data: body });
    expect(r.status(), `${url}: ${await r.text()}`).toBeLessThan(300);
  }

  // Create the component from the git URL, checking the builder's plan first.
  await page.goto("/teams/shipit/apps/web");
  const add = page.locator("section", { hasText: "Add a component" });
  await add.getByLabel("Name").fill("hello");
  await add.getByLabel("Datacenter").selectOption("local");
  await add.getByLabel("Source").selectOption("git");
  await add.getByLabel("Git URL or image").fill(repo);
  await add.getByLabel("Git ref").fill("main");
  await add.getByLabel("Port").fill("8080");
  await add.getByRole("button", { name: "Detect" }).click();
  await expect(page.locator(".plan[data-language=python]")).toContainText("python3 app.py");
  await add.getByRole("button", { name: "Add component" }).click();
  await expect(page.getByText("Component created: see its event below.")).toBeVisible();

  // Build: the event's log streams in while it runs and ends healthy.
  await page.goto("/teams/shipit/apps/web/components/hello");
  await expect(page.getByText("No versions yet")).toBeVisible();
  await runAction(page, "Build");
  const log = page.getByRole("log");
  await expect(log).toContainText("detect", { timeout: 30_000 });
  await expect(page.locator(".log-head")).toContainText("succeeded", { timeout: 90_000 });
  await expect(log).toContainText("healthy");
  await page.screenshot({ path: "test-results/build-log.png", fullPage: true });

  // Running, with an address that serves the sample.
  await page.goto("/teams/shipit/apps/web/components/hello");
  await expect(page.locator("h1 .status")).toHaveText("running", { timeout: 20_000 });
  const address = page.locator("dl.facts dd.address a[target=_blank]");
  const url = (await address.getAttribute("href"))!;
  expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  const app = await page.context().newPage();
  await app.goto(url);
  await expect(app.locator("body")).toContainText("python-hello sample");
  await app.close();
  await page.screenshot({ path: "test-results/component-running.png", fullPage: true });

  // A second build makes v2 current; v1 can be rolled back to.
  await runAction(page, "Build");
  await expect(page.locator(".log-head")).toContainText("succeeded", { timeout: 90_000 });
  await page.goto("/teams/shipit/apps/web/components/hello");
  await expect(page.locator("tr[data-version=v2]")).toContainText("current");
  await runAction(page, "Rollback", page.locator("tr[data-version=v1]"));
  await expect(page.locator(".log-head")).toContainText("succeeded", { timeout: 60_000 });
  await expect(page.getByRole("log")).toContainText("v1");
  await page.goto("/teams/shipit/apps/web/components/hello");
  await expect(page.locator("tr[data-version=v1]")).toContainText("current");
  await expect(page.locator("h1 .status")).toHaveText("running");

  // The live log panel shows the app's own output.
  await expect(page.locator(".logs-section")).toContainText("python-hello listening", { timeout: 20_000 });
  await page.screenshot({ path: "test-results/component-versions.png", fullPage: true });

  // The team's quota in the datacenter, with what it uses now.
  await page.goto("/teams/shipit");
  const quota = page.locator("form.quota-form");
  await quota.getByLabel("Quota in datacenter").fill("local");
  await quota.getByLabel("Components").fill("5");
  await quota.getByLabel("Memory (MB)").fill("2048");
  await quota.getByRole("button", { name: "Set quota" }).click();
  await expect(page.getByText("Quota set.")).toBeVisible();
  const row = page.locator("tr[data-quota=local]");
  await expect(row).toContainText("1 / 5");
  await expect(row).toContainText("256 / 2048 MB");
  await expect(row).toContainText("500 m (no limit)");
  expect(errors).toEqual([]);
});

test("an uploaded archive is previewed before the component exists, and the run command overrides it", async ({ page }) => {
  const errors = browserErrors(page);
  // examples/python-hello packed the way a user would.
  const archive = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "cloudport-e2e-archive-")), "python-hello.tar.gz");
  execFileSync("tar", ["-czf", archive, "-C", path.resolve(__dirname, "../../examples/python-hello"), "."]);
  await loginAsAdmin(page);
  for (const [url, body] of [
    ["/api/v1/teams", { name: "preview" }],
    ["/api/v1/teams/preview/datacenters", { datacenter: "local" }],
    ["/api/v1/teams/preview/apps", { name: "web" }],
  ] as const) {
    const r = await page.request.post(url, { data: body });
    expect(r.status(), `${url}: ${await r.text()}`).toBeLessThan(300);
  }

  await page.goto("/teams/preview/apps/web");
  await page.waitForLoadState("networkidle");
  const add = page.locator("section", { hasText: "Add a component" });
  await expect(add.getByLabel("Source")).toHaveValue("upload");
  await expect(add).not.toContainText("detected when it is built");

  // Without an archive, Detect says what it needs.
  await add.getByRole("button", { name: "Detect" }).click();
  await expect(add.getByText("Choose an archive to see how it will be built")).toBeVisible();

  // With one, the datacenter unpacks it and says how it would build it.
  await add.getByLabel("Archive to upload (.tar.gz or .zip)").setInputFiles(archive);
  await expect(add.getByText("Choose an archive to see how it will be built")).toHaveCount(0);
  await add.getByRole("button", { name: "Detect" }).click();
  const plan = add.locator(".plan[data-language=python]");
  await expect(plan.locator(".chip")).toHaveText("python");
  await expect(plan).toContainText("python3 app.py");
  await page.screenshot({ path: "test-results/detect-upload.png", fullPage: true });

  // The form's run command overrides what was detected.
  await add.getByLabel("Run command").fill("python3 app.py --port $PORT");
  await add.getByRole("button", { name: "Detect" }).click();
  await expect(plan).toContainText("python3 app.py --port $PORT");
  await expect(plan).toContainText("run command from the build settings");

  // A preview creates nothing.
  await expect(page.getByText("No components yet.")).toBeVisible();
  expect(errors).toEqual([]);
});
