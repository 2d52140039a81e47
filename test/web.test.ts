import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestRig, type TestRig } from './support/test-gateway.ts';

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
