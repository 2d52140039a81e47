/**
 * The operator page end to end in a real browser: Debian's chromium, headless, driven by
 * playwright-core, against a real gateway (aedes, LevelDB, the sandbox bank over HTTP)
 * with usage from firmware-sim. Screenshots go to build/screenshots/.
 */
import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import mqtt from 'mqtt';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFleet, type Fleet } from '../firmware-sim/fleet.ts';
import { usageTopic } from '../protocol/usage-message.ts';
import { TEST_OPERATOR } from './support/operator-session.ts';
import { requireBinary } from './support/server-binaries.ts';
import { startTestRig, TEST_DEVICES, usagePayload, type TestRig } from './support/test-gateway.ts';

const CHROMIUM = requireBinary('chromium', ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']);
const SCREENSHOTS = path.resolve(import.meta.dirname, '..', 'build', 'screenshots');
/** Playwright's own waits; the suite's timeouts stay vitest's. */
const WAIT_MS = 15_000;

describe.skipIf(!CHROMIUM)('operator page in a real browser', () => {
  let rig: TestRig;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let fleet: Fleet | undefined;
  const cspViolations: string[] = [];

  beforeAll(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    rig = await startTestRig({ settleAfterMs: 300 });
    browser = await chromium.launch({ executablePath: CHROMIUM!, headless: true, args: ['--no-sandbox'] });
    context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text());
    });
  }, 60_000);

  afterAll(async () => {
    await fleet?.stop();
    await browser?.close();
    await rig?.close();
  });

  const byTestId = (id: string) => page.getByTestId(id);

  it('sets up the first operator through the one-time link the gateway printed, and lands on the live page', async () => {
    await page.goto(rig.gateway.operatorSetup!.link);
    await page.fill('#username', TEST_OPERATOR.username);
    await page.fill('#password', TEST_OPERATOR.password);
    await Promise.all([page.waitForURL(`${rig.gateway.httpUrl}/`), page.click('button[type=submit]')]);
    await expect.poll(() => byTestId('live').textContent(), { timeout: WAIT_MS }).toBe('live');
    expect(await byTestId('username').textContent()).toContain(TEST_OPERATOR.username);
    // The link worked once.
    const again = await context.request.get(rig.gateway.operatorSetup!.link);
    expect(again.status()).toBe(410);
  });

  it('logs out, refuses a wrong password with a clear message, and logs in', async () => {
    await Promise.all([page.waitForURL(/\/login$/), byTestId('logout').click()]);
    await page.fill('#username', TEST_OPERATOR.username);
    await page.fill('#password', 'not the password at all');
    await page.click('button[type=submit]');
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('Wrong user or password');
    await page.fill('#password', TEST_OPERATOR.password);
    await Promise.all([page.waitForURL(`${rig.gateway.httpUrl}/`), page.click('button[type=submit]')]);
    await expect.poll(() => byTestId('live').textContent(), { timeout: WAIT_MS }).toBe('live');
  });

  it('shows usage from firmware-sim arriving live, without a reload', async () => {
    const before = Number(await byTestId('records-total').textContent() || 0);
    const simulated = TEST_DEVICES.filter((d) => d.kind !== 'compressor');
    fleet = startFleet({ mqttUrl: rig.mqttUrl, devices: simulated.map((d) => ({ id: d.id, password: d.password, kind: d.kind })), speed: 20, seed: 7 });
    await expect.poll(async () => Number(await byTestId('records-total').textContent() || 0), { timeout: WAIT_MS }).toBeGreaterThan(before + 5);
    await expect.poll(() => byTestId('device-status-cnc-1').textContent(), { timeout: WAIT_MS }).toContain('online');
    expect(await byTestId('ingest-chart').locator('canvas').count()).toBeGreaterThan(0);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'operator-page.png'), fullPage: true });
  });

  it('provisions a device that then publishes, showing its password once', async () => {
    await page.click('#provision-details > summary');
    await byTestId('provision-id').fill('press-7');
    await byTestId('provision-payer').selectOption('acme-plant');
    await byTestId('provision-meter-cycles').check();
    await byTestId('provision-submit').click();
    await byTestId('confirm').click();
    const password = (await byTestId('credentials').textContent())!.trim();
    expect(password.length).toBeGreaterThanOrEqual(24);
    await byTestId('secret-close').click();

    const device = await mqtt.connectAsync(rig.mqttUrl, { clientId: 'press-7', username: 'press-7', password, reconnectPeriod: 0, protocolVersion: 4 });
    await device.publishAsync(usageTopic('press-7'), usagePayload('press-7', 1), { qos: 1 });
    await device.endAsync();
    await expect.poll(() => byTestId('device-status-press-7').textContent(), { timeout: WAIT_MS }).toContain('online');
    expect(await byTestId('device-row-press-7').textContent()).toContain('acme-plant');
  });

  it('seals and settles a batch, and shows its state change', async () => {
    await byTestId('seal-now').click();
    await byTestId('confirm').click();
    const rows = page.locator('[data-testid^="batch-row-"]');
    await expect.poll(() => rows.count(), { timeout: WAIT_MS }).toBeGreaterThan(0);
    const states = page.locator('[data-testid^="batch-state-"]');
    await expect.poll(async () => (await states.allTextContents()).some((s) => s.includes('settled')), { timeout: WAIT_MS }).toBe(true);
    await page.setViewportSize({ width: 390, height: 844 });
    await byTestId('batches').scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(SCREENSHOTS, 'operator-page-phone.png'), fullPage: false });
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('downloads a payer statement (CSV) from the page', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), byTestId('statement-csv-acme-plant').click()]);
    const file = path.join(SCREENSHOTS, '..', download.suggestedFilename());
    await download.saveAs(file);
    const csv = await readFile(file, 'utf8');
    expect(csv.split('\r\n')[0]).toBe('index,deviceId,seq,meter,quantity,unit,deviceTime,period,tariff,amount,currency,batchId,state,paymentId');
    expect(csv.trim().split('\r\n').length).toBeGreaterThan(1);
    expect(cspViolations).toEqual([]);
  });

  // Last: the lock is per client address too, and the whole suite comes from 127.0.0.1.
  it('locks further logins out after repeated wrong passwords', async () => {
    const fresh = await browser.newPage();
    await fresh.goto(`${rig.gateway.httpUrl}/login`);
    for (let i = 0; i < 7; i += 1) {
      await fresh.fill('#username', 'somebody-else');
      await fresh.fill('#password', `wrong guess number ${i}`);
      await fresh.click('button[type=submit]');
      await fresh.waitForLoadState();
    }
    await expect.poll(() => fresh.getByRole('alert').textContent()).toContain('Too many failed logins');
    await fresh.close();
  });
});
