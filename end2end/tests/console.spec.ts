import { test, expect, Page, ConsoleMessage } from "@playwright/test";
import { ADMIN_PASSWORD } from "../playwright.config";
import { hydrated } from "./support";

const VIEWER_PASSWORD = "viewer-password-1";

// Every page must hydrate without errors in the browser console.
function watchConsole(page: Page): string[] {
  const errors: string[] = [];
  page.on("console", (msg: ConsoleMessage) => {
    if (msg.type() === "error") errors.push(msg.text());
  });
  page.on("pageerror", (err) => errors.push(String(err)));
  return errors;
}

async function login(page: Page, username: string, password: string) {
  await page.goto("/login");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

test.describe.serial("console", () => {
  test("a wrong password is refused with a clear message", async ({ page }) => {
    const errors = watchConsole(page);
    await login(page, "admin", "not-the-password");
    await expect(page).toHaveURL(/\/login\?error=invalid/);
    await expect(page.getByRole("alert")).toContainText("Wrong username or password");
    expect(errors.filter((e) => !e.includes("401"))).toEqual([]);
  });

  test("admin signs in, creates a team and adds a viewer", async ({ page }) => {
    const errors = watchConsole(page);
    await login(page, "admin", ADMIN_PASSWORD);
    await expect(page).toHaveURL(/\/$/);
    await expect(page.getByRole("heading", { name: "Welcome, admin" })).toBeVisible();
    await hydrated(page);

    // A user to become the viewer.
    await page.getByRole("link", { name: "Users" }).click();
    await expect(page.getByRole("heading", { name: "Users" })).toBeVisible();
    await page.getByLabel("Username").fill("vera");
    await page.getByLabel("Initial password").fill(VIEWER_PASSWORD);
    await page.getByRole("button", { name: "Create user" }).click();
    await expect(page.getByText("User created.")).toBeVisible();
    await expect(page.locator("tr[data-user=vera]")).toBeVisible();

    // The team, through the hydrated form (no full page load).
    await page.getByRole("link", { name: "Teams" }).click();
    await page.getByLabel("Name", { exact: true }).fill("acme");
    await page.getByLabel("Display name").fill("Acme Inc.");
    await page.getByRole("button", { name: "Create team" }).click();
    await expect(page.getByText("Team created.")).toBeVisible();
    await page.getByRole("link", { name: "acme" }).click();
    await expect(page.getByRole("heading", { name: /Acme Inc\./ })).toBeVisible();

    // Add vera as a viewer.
    const add = page.locator("section", { hasText: "Add a member" });
    await add.getByLabel("Username").fill("vera");
    await add.getByLabel("Role").selectOption("viewer");
    await add.getByRole("button", { name: "Add member" }).click();
    await expect(page.getByText("Member added.")).toBeVisible();
    await expect(page.locator("tr[data-user=vera]")).toContainText("viewer");

    // The audit log shows what happened.
    await page.getByRole("link", { name: "Audit log" }).click();
    await expect(page.locator("table.audit")).toContainText("member.add");
    await expect(page.locator("table.audit")).toContainText("team.create");
    expect(errors).toEqual([]);
  });

  test("the viewer cannot manage members, in the UI or through the API", async ({ page }) => {
    const errors = watchConsole(page);
    await login(page, "vera", VIEWER_PASSWORD);
    await expect(page.getByRole("heading", { name: "Welcome, vera" })).toBeVisible();
    await hydrated(page);
    await expect(page.getByRole("link", { name: "Users" })).toHaveCount(0);
    await page.goto("/teams/acme");
    await expect(page.getByText("Your role here:")).toContainText("viewer");
    await expect(page.getByText("Add a member")).toHaveCount(0);
    await expect(page.getByRole("button", { name: "Remove" })).toHaveCount(0);

    // Hiding the form is not the protection: the API refuses too, with her own session.
    const resp = await page.request.post("/api/v1/teams/acme/members", {
      data: { username: "admin", role: "owner" },
    });
    expect(resp.status()).toBe(403);
    expect((await resp.json()).error).toBe("forbidden");
    // And the server function behind the form refuses as well.
    const rpc = await page.request.post("/rpc/add_member", {
      form: { team: "acme", username: "admin", role: "owner" },
      headers: { Accept: "application/json" },
    });
    expect(rpc.ok()).toBeFalsy();
    const users = await page.request.get("/api/v1/users");
    expect(users.status()).toBe(403);
    // The users page shows a clear refusal instead of data.
    await page.goto("/users");
    await expect(page.getByRole("alert")).toContainText("Not allowed");
    expect(errors.filter((e) => !e.includes("403") && !e.includes("500"))).toEqual([]);
  });

  test("logging out ends the session", async ({ page }) => {
    await login(page, "admin", ADMIN_PASSWORD);
    await expect(page.getByRole("heading", { name: "Welcome, admin" })).toBeVisible();
    await page.getByRole("button", { name: "Log out" }).click();
    await expect(page).toHaveURL(/\/login\?signed_out=1/);
    await expect(page.getByText("You have been signed out.")).toBeVisible();
    await page.goto("/teams");
    await expect(page).toHaveURL(/\/login\?next=\/teams/);
    const me = await page.request.get("/api/v1/me");
    expect(me.status()).toBe(401);
  });
});
