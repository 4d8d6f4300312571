import { test, expect, Page } from "@playwright/test";
import { loginAsAdmin, browserErrors } from "./support";

/// How long the page takes to paint the next frame: a frozen main thread
/// shows here first.
async function frameDelay(page: Page): Promise<number> {
  return page.evaluate(
    () =>
      new Promise<number>((done) => {
        const asked = performance.now();
        requestAnimationFrame(() => done(performance.now() - asked));
      }),
  );
}

// An app that writes as fast as Python can print, without end.
const CHATTY = `python3 -c "import itertools; [print('chatty line', i) for i in itertools.count()]"`;

test("a very chatty app's live log stays responsive, pauses, filters and says what it let go", async ({ page }) => {
  test.setTimeout(120_000);
  const errors = browserErrors(page);
  await loginAsAdmin(page);

  const component = "/api/v1/teams/noisy/apps/spam/components/talker";
  for (const [url, body] of [
    ["/api/v1/teams", { name: "noisy" }],
    ["/api/v1/teams/noisy/datacenters", { datacenter: "local" }],
    ["/api/v1/teams/noisy/apps", { name: "spam" }],
    [
      "/api/v1/teams/noisy/apps/spam/components",
      { datacenter: "local", spec: { name: "talker", source: { kind: "upload" }, build: { run_command: CHATTY } } },
    ],
    [`${component}/actions`, { action: "start" }],
  ] as const) {
    const r = await page.request.post(url, { data: body });
    expect(r.status(), `${url}: ${await r.text()}`).toBeLessThan(300);
  }

  try {
    await page.goto("/teams/noisy/apps/spam/components/talker");
    const view = page.locator(".logs-section");
    const rows = view.locator(".vlog .row");
    await expect(rows.first()).toContainText("chatty line", { timeout: 30_000 });

    // Tens of thousands of lines a second arrive; the page draws only the
    // rows in sight, keeps a bounded window and still paints frames.
    await page.waitForTimeout(3_000);
    const drawn = await rows.count();
    expect(drawn).toBeGreaterThan(5);
    expect(drawn).toBeLessThan(200);
    for (let i = 0; i < 5; i++) {
      expect(await frameDelay(page)).toBeLessThan(1_000);
      await page.waitForTimeout(200);
    }
    // More came than a browser should hold: the view says what it let go.
    await expect(view.locator(".log-notices")).toContainText(/skipped|let go/, { timeout: 20_000 });

    // Pause holds the view still while new lines wait.
    await view.getByRole("button", { name: /Pause/ }).click();
    await expect(view.locator(".log-notices")).toContainText(/Paused: [\d,]+ new lines? waiting/, { timeout: 10_000 });
    const held = await view.locator(".vlog .row .msg").allTextContents();
    await page.waitForTimeout(1_000);
    expect(await view.locator(".vlog .row .msg").allTextContents()).toEqual(held);

    // The filter narrows the kept lines to those that match.
    const wanted = held[0].trim();
    await view.getByLabel("Filter lines").fill(wanted);
    await expect(rows.first()).toContainText(wanted);
    const shown = await view.locator(".vlog .row .msg").allTextContents();
    expect(shown.length).toBeGreaterThan(0);
    expect(shown.length).toBeLessThan(held.length);
    for (const line of shown) expect(line).toContain(wanted);
    await page.screenshot({ path: "test-results/logs-chatty.png", fullPage: true });
    expect(await frameDelay(page)).toBeLessThan(1_000);
    expect(errors).toEqual([]);
  } finally {
    // It would keep a core busy for the rest of the suite.
    await page.request.post(`${component}/actions`, { data: { action: "stop" } });
  }
});
