import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { REDACT_PATHS } from '../cli/logger.ts';
import { setUpOperator, TEST_OPERATOR } from './support/operator-session.ts';
import { sendUsage, startTestRig, TEST_DEVICES, type TestRig } from './support/test-gateway.ts';

describe('logs', () => {
  let rig: TestRig | undefined;
  afterEach(async () => {
    await rig?.close();
  });

  it('never contain device passwords, the operator\'s setup link, password, session or CSRF token, invitation links or the bank token, even at trace level', async () => {
    let text = '';
    const sink = new Writable({ write(chunk: Buffer, _encoding, done) { text += chunk.toString(); done(); } });
    const logger = pino({ level: 'trace', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink);
    rig = await startTestRig({ logger, bankTimeoutMs: 300 });
    await sendUsage(rig, 'truck-1', 5, 1, '2000');
    await rig.connect('cnc-1', 'a-wrong-password').catch(() => {});
    rig.bank.faults.failNext(1, 503);
    await rig.gateway.sealNow();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await rig.gateway.settler.tick();
    const setupToken = new URL(rig.gateway.operatorSetup!.link).searchParams.get('token')!;
    const operator = await setUpOperator(rig.gateway.operatorSetup!.link);
    const invite = (await (await operator.post('/api/invites', {})).json()) as { link: string };
    await fetch(invite.link);
    expect(text.length).toBeGreaterThan(0);
    for (const secret of [setupToken, new URL(invite.link).searchParams.get('token')!, TEST_OPERATOR.password, operator.csrfToken, operator.cookie.split('=')[1]!]) expect(text).not.toContain(secret);
    for (const device of TEST_DEVICES) expect(text).not.toContain(device.password);
    expect(text).not.toContain('a-wrong-password');
    expect(text).not.toContain('test-bank-token');
  });
});
