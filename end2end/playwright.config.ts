import { defineConfig } from "@playwright/test";
import * as os from "node:os";
import * as path from "node:path";
import * as fs from "node:fs";

// The real `cloudport` binary with a fresh data folder, on its own port.
const port = Number(process.env.CLOUDPORT_E2E_PORT ?? 3917);
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "cloudport-e2e-"));
const binary = path.resolve(__dirname, "../target/release/cloudport");
// A second datacenter, run as its own process, for the console to register.
const dcPort = port + 1;
const dcDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "cloudport-e2e-dc-"));
// The gateways of the embedded datacenter and of dc2.
export const GATEWAY_PORT = port + 2;
const gatewayPort = GATEWAY_PORT;
export const DATACENTER_URL = `http://127.0.0.1:${dcPort}`;
export const DATACENTER_TOKEN = "e2e-datacenter-token-0123";

export const ADMIN_PASSWORD = "e2e-admin-password";

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  fullyParallel: false,
  workers: 1,
  reporter: [["list"]],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
  webServer: [
    {
      command: `${binary} serve --listen 127.0.0.1:${port} --data-dir ${dataDir} --gateway-listen 127.0.0.1:${gatewayPort}`,
      url: `http://127.0.0.1:${port}/healthz`,
      env: { CLOUDPORT_ADMIN_PASSWORD: ADMIN_PASSWORD },
      reuseExistingServer: false,
      timeout: 30_000,
    },
    {
      command: `${binary} datacenter --name dc2 --listen 127.0.0.1:${dcPort} --data-dir ${dcDataDir} --gateway-listen 127.0.0.1:${dcPort + 2}`,
      url: `${DATACENTER_URL}/healthz`,
      env: { CLOUDPORT_DATACENTER_TOKEN: DATACENTER_TOKEN },
      reuseExistingServer: false,
      timeout: 30_000,
    },
  ],
});
