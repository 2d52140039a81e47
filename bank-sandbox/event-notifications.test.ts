import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { OB_TRUST_ANCHOR, verifyDetachedJws } from '../gateway/settlement/jws.ts';
import { startBankSandbox, type BankSandbox } from './server.ts';
import { call, createConsent, paymentBody, TEST_TOKEN } from './sandbox-fixtures.ts';

interface Received { body: string; signature: string | undefined }

/** A callback endpoint answering the statuses in `answers` in turn, then 202. */
async function startCallback(answers: number[]): Promise<{ url: string; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const server = createServer((request: IncomingMessage, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      const signature = request.headers['x-jws-signature'];
      received.push({ body, signature: typeof signature === 'string' ? signature : undefined });
      response.statusCode = answers.shift() ?? 202;
      response.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/bank/events`, received, server };
}

const waitFor = async (done: () => boolean, timeoutMs = 5_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

describe('sandbox event notifications', () => {
  let bank: BankSandbox | undefined;
  let server: Server | undefined;
  afterEach(async () => {
    await bank?.close();
    server?.close();
    bank = undefined;
    server = undefined;
  });

  it('sends a signed event when a payment is created and when it settles, retrying a refused delivery', async () => {
    const callback = await startCallback([503, 500]);
    server = callback.server;
    bank = await startBankSandbox({ accessTokens: [TEST_TOKEN], settleAfterMs: 200, callbackUrl: callback.url, notificationRetryBaseMs: 20 });
    const consentId = await createConsent(bank);
    const created = await call(bank, 'POST', '/domestic-vrps', { body: paymentBody(consentId), idempotencyKey: 'evt-1' });
    expect(created.status).toBe(201);
    const paymentId = created.json.Data.DomesticVRPId as string;
    await waitFor(() => bank!.notificationCounts().delivered === 2);
    expect(bank.notificationCounts()).toEqual({ delivered: 2, failed: 0, dropped: 0 });
    expect(callback.received).toHaveLength(4); // two refused tries, then created, then settled
    for (const { body, signature } of callback.received) {
      const verdict = verifyDetachedJws(signature, body, { trustedKeys: [{ kid: bank.signingJwk.kid, publicKey: publicKeyOf(bank) }], tan: OB_TRUST_ANCHOR, nowS: Math.floor(Date.now() / 1000) });
      expect(verdict).toMatchObject({ ok: true, iss: 'meterbridge-sandbox-bank' });
      const event = JSON.parse(body) as { events: Record<string, { subject: Record<string, unknown> }> };
      expect(event.events['urn:uk:org:openbanking:events:resource-update']!.subject).toMatchObject({ 'http://openbanking.org.uk/rid': paymentId, 'http://openbanking.org.uk/rty': 'domestic-vrps' });
    }
  });

  it('gives up on an event after its attempts, counts it, and never slows the payment', async () => {
    const callback = await startCallback(Array.from({ length: 100 }, () => 500));
    server = callback.server;
    bank = await startBankSandbox({ accessTokens: [TEST_TOKEN], settleAfterMs: 60_000, callbackUrl: callback.url, notificationRetryBaseMs: 20, notificationAttemptsMax: 2 });
    const consentId = await createConsent(bank);
    const startedMs = Date.now();
    const created = await call(bank, 'POST', '/domestic-vrps', { body: paymentBody(consentId), idempotencyKey: 'evt-2' });
    expect(created.status).toBe(201);
    expect(Date.now() - startedMs).toBeLessThan(1_000);
    await waitFor(() => bank!.notificationCounts().failed === 1);
    expect(callback.received).toHaveLength(2);
  });
});

function publicKeyOf(bank: BankSandbox): Uint8Array {
  const { x, y } = bank.signingJwk;
  return Uint8Array.from([4, ...Buffer.from(x, 'base64url'), ...Buffer.from(y, 'base64url')]);
}
