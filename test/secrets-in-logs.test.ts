import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { REDACT_PATHS } from '../cli/logger.ts';
import { sendUsage, startTestRig, TEST_DEVICES, type TestRig } from './support/test-gateway.ts';

describe('logs', () => {
  let rig: TestRig | undefined;
  afterEach(async () => {
    await rig?.close();
  });

  it('never contain device passwords, the operator password or the bank token, even at trace level', async () => {
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
    expect(text.length).toBeGreaterThan(0);
    for (const device of TEST_DEVICES) expect(text).not.toContain(device.password);
    expect(text).not.toContain('a-wrong-password');
    expect(text).not.toContain('test-bank-token');
    expect(text).not.toContain(new URL(rig.gateway.operatorSetup!.link).searchParams.get('token'));
  });
});
