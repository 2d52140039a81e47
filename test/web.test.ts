import { readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyProofBundle } from '../protocol/proof-bundle.ts';
import { logIn, setUpOperator, TEST_OPERATOR, type OperatorClient } from './support/operator-session.ts';
import { sendUsage, startTestRig, type TestRig } from './support/test-gateway.ts';

describe('operator web page', () => {
  let rig: TestRig;
  let setupLink: string;
  beforeAll(async () => {
    rig = await startTestRig();
    setupLink = rig.gateway.operatorSetup!.link;
  });
  afterAll(async () => {
    await rig.close();
  });

  it('has no default password: the first operator is set up through a one-time link, stored only as a 0600 scrypt hash', async () => {
    expect(setupLink).toMatch(/\/setup\?token=[A-Za-z0-9_-]{40,}$/);
    expect((await fetch(`${rig.gateway.httpUrl}/login`)).status).toBe(200); // says to use the setup link
    const operator = await setUpOperator(setupLink);
    expect(operator.csrfToken.length).toBeGreaterThan(20);
    const file = path.join(rig.config.dataDir, 'operators.json');
    const stored = await readFile(file, 'utf8');
    expect(stored).not.toContain(TEST_OPERATOR.password);
    expect(stored).toMatch(/scrypt\$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // The link works once.
    expect((await fetch(setupLink)).status).toBe(410);
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
    const response = await logIn(rig.gateway.httpUrl, { username: TEST_OPERATOR.username, password: 'not-the-password' });
    expect(response).toBeInstanceOf(Response);
    expect((response as Response).status).toBe(401);
    expect((response as Response).headers.getSetCookie().some((c) => c.startsWith('mb_session='))).toBe(false);
  });

  it('serves the operator page and its state after logging in, with a strict content security policy', async () => {
    const operator = (await logIn(rig.gateway.httpUrl)) as OperatorClient;
    const page = await operator.get('/');
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('/ui/app.js');
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).toContain("frame-ancestors 'none'");
    // Everything the page loads comes from the gateway (no CDN), and all of it stays well under 300 KB for a Pi 3 on Wi-Fi.
    let bytes = html.length;
    const modules = readdirSync(path.join(import.meta.dirname, '..', 'gateway', 'web', 'ui')).filter((f) => /\.(js|css)$/.test(f)).map((f) => `/ui/${f}`);
    for (const asset of [...modules, '/ui/uplot.js', '/ui/uplot.css']) {
      const response = await fetch(`${rig.gateway.httpUrl}${asset}`);
      expect(response.status, asset).toBe(200);
      bytes += (await response.arrayBuffer()).byteLength;
    }
    expect(bytes).toBeLessThan(300 * 1024);
    for (const outside of ['/ui/..%2Fserver.ts', '/ui/%2e%2e%2fauth-routes.ts', '/ui/index.html', '/ui/nope.js']) expect((await fetch(`${rig.gateway.httpUrl}${outside}`)).status, outside).toBe(404);
    const state = (await (await operator.get('/api/state')).json()) as { devices: unknown[]; health: { version: string; ingestPerMinute: number[] }; payers: unknown[] };
    expect(state.devices).toHaveLength(7);
    expect(state.health.ingestPerMinute).toHaveLength(60);
    expect(state.payers).toHaveLength(3);
  });

  it('serves a payer statement as JSON, CSV and a page, and a proof bundle the offline verifier accepts', async () => {
    await sendUsage(rig, 'cnc-1', 5, 1, '1000');
    await rig.gateway.sealNow();
    await sendUsage(rig, 'cnc-1', 2, 6, '1'); // not sealed yet: on the statement, not in the bundle
    const month = new Date().toISOString().slice(0, 7);
    const base = `${rig.gateway.httpUrl}/statements/acme-plant/${month}`;
    expect((await fetch(`${base}/statement.json`, { redirect: 'manual' })).status).toBe(303); // login first
    const { cookie } = (await logIn(rig.gateway.httpUrl)) as OperatorClient;
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
    expect(metrics).not.toContain(TEST_OPERATOR.password);
    expect(metrics).not.toContain(new URL(setupLink).searchParams.get('token'));
  });
});
