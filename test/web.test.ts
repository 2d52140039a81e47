import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyProofBundle } from '../protocol/proof-bundle.ts';
import { sendUsage, startTestRig, type TestRig } from './support/test-gateway.ts';

async function login(rig: TestRig, password: string): Promise<Response> {
  return fetch(`${rig.gateway.httpUrl}/login`, {
    method: 'POST', redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username: 'operator', password }).toString(),
  });
}

describe('operator web page', () => {
  let rig: TestRig;
  beforeAll(async () => {
    rig = await startTestRig();
  });
  afterAll(async () => {
    await rig.close();
  });

  it('makes a random operator password on first start and stores only its hash, 0600', async () => {
    const password = rig.gateway.operatorLogin.password!;
    expect(password.length).toBeGreaterThanOrEqual(24);
    const file = path.join(rig.config.dataDir, 'operator-login.json');
    const stored = await readFile(file, 'utf8');
    expect(stored).not.toContain(password);
    expect(stored).toMatch(/scrypt\$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('keeps the gateway signing key it made on first start private (0600)', () => {
    expect(statSync(path.join(rig.config.dataDir, 'gateway-ed25519.key')).mode & 0o777).toBe(0o600);
  });

  it('sends a visitor without a session to the login page, and the API answers 401', async () => {
    const page = await fetch(`${rig.gateway.httpUrl}/`, { redirect: 'manual' });
    expect(page.status).toBe(303);
    expect(page.headers.get('location')).toBe('/login');
    expect((await fetch(`${rig.gateway.httpUrl}/api/state`)).status).toBe(401);
  });

  it('refuses a wrong password', async () => {
    const response = await login(rig, 'not-the-password');
    expect(response.status).toBe(401);
    expect(response.headers.get('set-cookie')).toBeNull();
  });

  it('shows devices, batches and payments after logging in with the printed password', async () => {
    const response = await login(rig, rig.gateway.operatorLogin.password!);
    expect(response.status).toBe(303);
    const cookie = response.headers.get('set-cookie')!;
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Strict/i);
    const page = await fetch(`${rig.gateway.httpUrl}/`, { headers: { cookie: cookie.split(';')[0]! } });
    expect(page.status).toBe(200);
    const html = await page.text();
    for (const heading of ['Devices', 'Payments (batches)', 'Latest records', 'Refused messages']) expect(html).toContain(heading);
    expect(html).toContain('cnc-1');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    const state = (await (await fetch(`${rig.gateway.httpUrl}/api/state`, { headers: { cookie: cookie.split(';')[0]! } })).json()) as { devices: unknown[] };
    expect(state.devices).toHaveLength(7);
  });

  it('serves a payer statement as JSON, CSV and a page, and a proof bundle the offline verifier accepts', async () => {
    await sendUsage(rig, 'cnc-1', 5, 1, '1000');
    await rig.gateway.sealNow();
    await sendUsage(rig, 'cnc-1', 2, 6, '1'); // not sealed yet: on the statement, not in the bundle
    const month = new Date().toISOString().slice(0, 7);
    const base = `${rig.gateway.httpUrl}/statements/acme-plant/${month}`;
    expect((await fetch(`${base}/statement.json`, { redirect: 'manual' })).status).toBe(303); // login first
    const cookie = (await login(rig, rig.gateway.operatorLogin.password!)).headers.get('set-cookie')!.split(';')[0]!;
    const get = (file: string): Promise<Response> => fetch(`${base}/${file}`, { headers: { cookie } });

    const statement = (await (await get('statement.json')).json()) as { lines: Array<{ seq: number; state: string; amount: string }>; totals: Array<{ currency: string; charged: string; unsealed: string }> };
    expect(statement.lines.map((l) => l.state)).toEqual([...Array(5).fill('sealed'), 'unsealed', 'unsealed'].map((state) => (state === 'sealed' ? expect.stringMatching(/sealed|submitted|pending|settled/) : state)));
    expect(statement.totals).toEqual([expect.objectContaining({ currency: 'EUR', charged: '1.500600000', unsealed: '0.000600000' })]);
    const csv = await (await get('statement.csv')).text();
    expect(csv.split('\r\n')[0]).toBe('index,deviceId,seq,meter,quantity,unit,deviceTime,period,tariff,amount,currency,batchId,state,paymentId');
    expect(csv.trim().split('\r\n')).toHaveLength(8);
    const html = await (await get('statement.html')).text();
    expect(html).toContain('Statement: acme-plant');
    expect(html).toContain(`/statements/acme-plant/${month}/bundle.json`);

    const bundleResponse = await get('bundle.json');
    expect(bundleResponse.headers.get('content-disposition')).toContain('attachment');
    const bundle = await bundleResponse.json();
    const report = verifyProofBundle(bundle, [rig.gateway.publicKeyHex]);
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(report.checks.some((c) => c.id.startsWith('record-inclusion:'))).toBe(true);
    // Someone else's key proves nothing: every batch signature fails.
    expect(verifyProofBundle(bundle, ['ab'.repeat(32)]).ok).toBe(false);

    expect((await get('../../nobody/2026-11/statement.json')).status).toBe(404);
    expect((await fetch(`${rig.gateway.httpUrl}/statements/acme-plant/2026-13/statement.json`, { headers: { cookie } })).status).toBe(400);
    const verifier = await fetch(`${rig.gateway.httpUrl}/verify`);
    expect(verifier.status).toBe(200);
    expect(await verifier.text()).toContain('<title>');
  });

  it('serves /healthz and /metrics without a login and without secrets', async () => {
    const health = (await (await fetch(`${rig.gateway.httpUrl}/healthz`)).json()) as { status: string };
    expect(health.status).toBe('ok');
    const metrics = await (await fetch(`${rig.gateway.httpUrl}/metrics`)).text();
    for (const name of ['meterbridge_usage_records_total', 'meterbridge_rejected_messages_total', 'meterbridge_batches_total', 'meterbridge_settled_minor_units_total']) {
      expect(metrics).toContain(name);
    }
    expect(metrics).not.toContain(rig.gateway.operatorLogin.password!);
  });
});
