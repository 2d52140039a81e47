/**
 * The operator page's doors, over real HTTP against a real gateway: no state change
 * without a session and its CSRF token, growing lockouts, sessions made new at login,
 * invitations that work once, a metrics token, and actions that are audited, idempotent
 * and take effect at once (a provisioned device publishes without a restart).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usageTopic } from '../protocol/usage-message.ts';
import type { AuditEntry } from '../gateway/web/audit-log.ts';
import type { Snapshot } from '../gateway/web/snapshot.ts';
import { clientFor, cookieOf, logIn, openForm, postForm, setUpOperator, TEST_OPERATOR, type OperatorClient } from './support/operator-session.ts';
import { sendUsage, startTestRig, usagePayload, type TestRig } from './support/test-gateway.ts';

const METRICS_TOKEN = 'a-metrics-token-for-the-agent';

describe('operator page security', () => {
  let rig: TestRig;
  let operator: OperatorClient;
  let base: string;
  beforeAll(async () => {
    rig = await startTestRig({
      configPatch: (raw) => {
        const file = path.join(String(raw.dataDir), '..', 'metrics-token');
        writeFileSync(file, `${METRICS_TOKEN}\n`, { mode: 0o600 });
        (raw.http as Record<string, unknown>).metricsTokenFile = file;
      },
    });
    base = rig.gateway.httpUrl;
    operator = await setUpOperator(rig.gateway.operatorSetup!.link);
  });
  afterAll(async () => {
    await rig?.close();
  });

  const batchCount = async (): Promise<number> => ((await (await operator.get('/api/state')).json()) as Snapshot).batches.length;

  it('refuses every state change without a session (401) or without the session\'s CSRF token (403), and nothing changes', async () => {
    await sendUsage(rig, 'cnc-1', 3);
    const before = await batchCount();
    const anonymous = await clientFor(base, 'mb_session=forged');
    for (const [route, body] of [['/api/seal', {}], ['/api/devices', { id: 'intruder-1', payer: 'acme-plant', meters: ['cycles'] }], ['/api/invites', {}], ['/api/settle', {}]] as const) {
      expect((await anonymous.post(route, body)).status, `${route} without a session`).toBe(401);
      expect((await operator.post(route, body, { csrfToken: null })).status, `${route} without a CSRF token`).toBe(403);
      expect((await operator.post(route, body, { csrfToken: 'x'.repeat(43) })).status, `${route} with a wrong CSRF token`).toBe(403);
    }
    const logout = await fetch(`${base}/logout`, { method: 'POST', redirect: 'manual', headers: { cookie: operator.cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: '' });
    expect(logout.status).toBe(403); // logging someone out is a state change too
    expect(await batchCount()).toBe(before);
    expect(((await (await operator.get('/api/state')).json()) as Snapshot).devices.some((d) => d.id === 'intruder-1')).toBe(false);
  });

  it('refuses a login or setup form posted without its form token', async () => {
    const login = await postForm(`${base}/login`, '', { username: TEST_OPERATOR.username, password: TEST_OPERATOR.password, _csrf: 'guess' });
    expect(login.status).toBe(403);
    expect(cookieOf(login, 'mb_session')).toBeUndefined();
  });

  it('makes a new session at every login, so a planted session token is worthless', async () => {
    const form = await openForm(`${base}/login`);
    const planted = 'mb_session=planted-by-someone-else';
    const response = await postForm(`${base}/login`, `${form.cookie}; ${planted}`, { _csrf: form.formToken, username: TEST_OPERATOR.username, password: TEST_OPERATOR.password });
    expect(response.status).toBe(303);
    const session = cookieOf(response, 'mb_session')!;
    expect(session).not.toBe(planted);
    const cookieHeader = response.headers.getSetCookie().find((c) => c.startsWith('mb_session='))!;
    expect(cookieHeader).toMatch(/HttpOnly/i);
    expect(cookieHeader).toMatch(/SameSite=Strict/i);
    expect((await fetch(`${base}/api/session`, { headers: { cookie: planted } })).status).toBe(401);
  });

  it('sends security headers', async () => {
    const page = await operator.get('/');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    expect(page.headers.get('x-frame-options')).toBe('SAMEORIGIN');
    expect(page.headers.get('strict-transport-security')).toBeNull(); // plain HTTP on the plant network
  });

  it('invites a second operator through a link that works once', async () => {
    const invite = (await (await operator.post('/api/invites', {})).json()) as { link: string };
    expect(invite.link).toMatch(/\/invite\?token=/);
    const url = new URL(invite.link);
    const form = await openForm(invite.link);
    const second = { username: 'second-ops', password: 'another long password' };
    const accepted = await postForm(`${base}/invite`, form.cookie, { _csrf: form.formToken, token: url.searchParams.get('token')!, ...second });
    expect(accepted.status).toBe(303);
    const again = await openForm(invite.link);
    const reused = await postForm(`${base}/invite`, again.cookie, { _csrf: again.formToken, token: url.searchParams.get('token')!, username: 'third-ops', password: 'yet another password' });
    expect(reused.status).toBe(410);
    expect(await logIn(base, second)).not.toBeInstanceOf(Response);
  });

  it('provisions a device that publishes at once, rotates and revokes it, and audits each action once even when clicked twice', async () => {
    const provision = { id: 'press-9', payer: 'acme-plant', meters: ['cycles'] };
    const [first, second] = await Promise.all([
      operator.post('/api/devices', provision, { actionId: 'provision-press-9' }),
      operator.post('/api/devices', provision, { actionId: 'provision-press-9' }),
    ]);
    expect(first.status).toBe(200);
    const credentials = (await first.json()) as { id: string; password: string; flashSheet: string };
    expect(await second.json()).toEqual(credentials); // the double-click gets the same answer, no second device
    expect(credentials.flashSheet).toContain(usageTopic('press-9'));

    const device = await rig.connect('press-9', credentials.password);
    await device.publishAsync(usageTopic('press-9'), usagePayload('press-9', 1), { qos: 1 });
    await device.endAsync();
    const state = (await (await operator.get('/api/state')).json()) as Snapshot;
    expect(state.devices.find((d) => d.id === 'press-9')).toMatchObject({ accepted: 1, status: 'online', usageToday: { cycles: '1' } });

    const rotated = (await (await operator.post('/api/devices/press-9/rotate', {})).json()) as { password: string };
    expect(rotated.password).not.toBe(credentials.password);
    await expect(rig.connect('press-9', credentials.password)).rejects.toThrow();
    const connected = await rig.connect('press-9', rotated.password);
    const closed = new Promise<void>((resolve) => connected.once('close', () => resolve()));
    expect((await operator.post('/api/devices/press-9/revoke', {})).status).toBe(200);
    await closed; // revoking drops its connection
    await expect(rig.connect('press-9', rotated.password)).rejects.toThrow();

    const audit = ((await (await operator.get('/api/audit')).json()) as { entries: AuditEntry[] }).entries;
    const mine = audit.filter((e) => e.target === 'press-9');
    expect(mine.map((e) => e.action)).toEqual(['revoke device', 'rotate device password', 'provision device']);
    expect(mine.every((e) => e.by === TEST_OPERATOR.username && e.outcome === 'ok')).toBe(true);
    expect(JSON.stringify(audit)).not.toContain(credentials.password);
  });

  it('explains a refused action: an unknown meter (400), a device that exists (409), a batch that is not held (409)', async () => {
    const unknownMeter = await operator.post('/api/devices', { id: 'press-10', payer: 'acme-plant', meters: ['nope'] });
    expect(unknownMeter.status).toBe(400);
    expect(((await unknownMeter.json()) as { error: string }).error).toContain('no meter named nope');
    expect((await operator.post('/api/devices', { id: 'cnc-1', payer: 'acme-plant', meters: ['cycles'] })).status).toBe(409);
    const sealed = (await (await operator.post('/api/seal', {})).json()) as { batches: number[] };
    expect(sealed.batches.length).toBeGreaterThan(0);
    const retry = await operator.post(`/api/batches/${sealed.batches[0]}/retry`, {});
    expect(retry.status).toBe(409);
    expect(((await retry.json()) as { error: string }).error).toMatch(/only a held batch can be retried/);
  });

  it('locks /metrics and /healthz to a token when one is configured', async () => {
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
    expect((await fetch(`${base}/healthz`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    expect((await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).status).toBe(200);
  });
  // Last: the lock is per client address too, and every test here comes from 127.0.0.1.
  it('locks out guessing with growing delays, and then refuses even the right password until the lock ends', async () => {
    const guesser = { username: 'somebody', password: 'wrong password guess' };
    const statuses: number[] = [];
    for (let i = 0; i < 7; i += 1) statuses.push(((await logIn(base, guesser)) as Response).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 401, 429]);
    const locked = (await logIn(base, { username: 'somebody', password: TEST_OPERATOR.password })) as Response;
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await locked.text()).toContain('Too many failed logins');
  });
});
