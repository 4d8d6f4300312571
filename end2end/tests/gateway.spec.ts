import { test, expect, Page } from "@playwright/test";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { loginAsAdmin, hydrated, browserErrors } from "./support";

/// A self-signed certificate and key for `domain`, valid for 90 days.
function selfSigned(domain: string): { cert: string; key: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cloudport-e2e-cert-"));
  execFileSync(
    "openssl",
    [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes",
      "-subj", `/CN=${domain}`, "-addext", `subjectAltName=DNS:${domain}`, "-days", "90",
      "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem"),
    ],
    { stdio: "ignore" },
  );
  return {
    cert: fs.readFileSync(path.join(dir, "cert.pem"), "utf8"),
    key: fs.readFileSync(path.join(dir, "key.pem"), "utf8"),
  };
}

test("a team routes a domain and a TCP port to its component and uploads a certificate", async ({ page }) => {
  test.setTimeout(90_000);
  const errors = browserErrors(page);
  await loginAsAdmin(page);

  // A team in the embedded datacenter with one component that has an outer HTTP port.
  for (const [url, body] of [
    ["/api/v1/teams", { name: "edge" }],
    ["/api/v1/teams/edge/datacenters", { datacenter: "local" }],
    ["/api/v1/teams/edge/apps", { name: "shop" }],
    [
      "/api/v1/teams/edge/apps/shop/components",
      {
        datacenter: "local",
        spec: {
          name: "web",
          source: { kind: "upload" },
          ports: [{ port: 8080, protocol: "http", inner: true, outer: true }],
        },
      },
    ],
  ] as const) {
    const r = await page.request.post(url, { data: body });
    expect(r.status(), `${url}: ${await r.text()}`).toBeLessThan(300);
  }

  // From the team page to its Routes page, empty at first.
  await page.goto("/teams/edge");
  await page.getByRole("link", { name: /Routes and certificates/ }).click();
  await expect(page).toHaveURL(/\/teams\/edge\/routes$/);
  await hydrated(page);
  const local = page.locator("section.gateway[data-datacenter=local]");
  await expect(local).toContainText("Default domains");
  await expect(local).toContainText("<component>.<app>.edge.localhost");
  await expect(local.getByText("No routes yet — every component with an outer HTTP port already answers at its default domain")).toBeVisible();
  await expect(local.getByText("No TCP routes.")).toBeVisible();
  await expect(local.getByText("No certificates.")).toBeVisible();
  await page.screenshot({ path: "test-results/routes-empty.png", fullPage: true });

  // A domain the datacenter refuses: its message shows, and the form keeps what was typed.
  const http = page.locator("section.add-http-route");
  await http.getByLabel("Domain").fill("not a domain!");
  await http.getByLabel("Target 1").selectOption({ label: "shop/web" });
  await http.getByRole("button", { name: "Add route" }).click();
  await expect(http.getByRole("alert")).toContainText("is not valid");
  await expect(http.getByLabel("Domain")).toHaveValue("not a domain!");

  // An HTTP route to the component.
  await http.getByLabel("Domain").fill("shop.e2e.example");
  await http.getByLabel("Path prefix").fill("/");
  await http.getByLabel("Weight 1").fill("100");
  await http.getByRole("button", { name: "Add route" }).click();
  await expect(http.getByText("Route added.")).toBeVisible();
  await expect(http.getByLabel("Domain")).toHaveValue("");
  const row = local.locator('tr[data-route="shop.e2e.example"]');
  await expect(row).toContainText("shop/web");
  await expect(row).toContainText("round robin");

  // A TCP route.
  const port = 20000 + Math.floor(Math.random() * 20000);
  const tcp = page.locator("section.add-tcp-route");
  await tcp.getByLabel("Gateway port").fill(String(port));
  await tcp.getByLabel("Component").selectOption({ label: "shop/web" });
  await tcp.getByRole("button", { name: "Add TCP route" }).click();
  await expect(tcp.getByText("TCP route added.")).toBeVisible();
  await expect(local.locator(`tr[data-port="${port}"]`)).toContainText("shop/web");

  // A certificate, with its expiry.
  const { cert, key } = selfSigned("shop.e2e.example");
  const upload = page.locator("section.upload-certificate");
  await upload.getByLabel("Name").fill("shop-e2e");
  await upload.getByLabel("Datacenter").selectOption("local");
  await upload.getByLabel("Certificate (PEM)").fill(cert);
  await upload.getByLabel("Private key (PEM)").fill(key);
  await upload.getByRole("button", { name: "Upload certificate" }).click();
  await expect(upload.getByText("Certificate uploaded.")).toBeVisible();
  // The pasted key does not stay on the page.
  await expect(upload.getByLabel("Private key (PEM)")).toHaveValue("");
  const certRow = local.locator("tr[data-certificate=shop-e2e]");
  await expect(certRow).toContainText("shop.e2e.example");
  await expect(certRow.locator(".expiry")).toHaveText(/expires in (89|90) days/);
  await page.screenshot({ path: "test-results/routes.png", fullPage: true });

  // The component page links the route's URL.
  await page.goto("/teams/edge/apps/shop/components/web");
  await expect(page.locator("dl.facts dd.urls a[target=_blank]", { hasText: "shop.e2e.example" })).toBeVisible();

  // Deleting the route takes it off the table.
  await page.goto("/teams/edge/routes");
  await hydrated(page);
  await local.locator('tr[data-route="shop.e2e.example"]').getByRole("button", { name: "Delete" }).click();
  await expect(page.getByText("Deleted.", { exact: true })).toBeVisible();
  await expect(local.locator('tr[data-route="shop.e2e.example"]')).toHaveCount(0);
  await expect(local.getByText("No routes yet")).toBeVisible();
  await expect(local.locator(`tr[data-port="${port}"]`)).toBeVisible();
  await page.screenshot({ path: "test-results/routes-after-delete.png", fullPage: true });
  expect(errors).toEqual([]);
});
