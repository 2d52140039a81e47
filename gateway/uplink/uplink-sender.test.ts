import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateSigningKey, type SigningKey } from '../../protocol/signing.ts';
import type { UploadBody } from '../../protocol/upload.ts';
import { openLedgerDb, type LedgerDb } from '../ledger/ledger-db.ts';
import { Outbox } from './outbox.ts';
import { UploadReceiverDouble } from './upload-receiver-double.ts';
import { parseAnswer, UplinkSender, type UplinkSenderOptions } from './uplink-sender.ts';

const silent = pino({ level: 'silent' });
const signingKey = generateSigningKey();
const START_MS = Date.parse('2026-05-01T12:00:00.000Z');

function settlement(n: number): UploadBody {
  return { kind: 'settlement', settlement: { batchId: `batch-${n}`, state: 'submitted', at: '2026-05-01T12:00:00.000Z', amountMinor: String(n), currency: 'EUR' } };
}

/** Resolves once `done()` holds, checking after each turn of the event loop (bounded). */
async function until(done: () => boolean, what: string, turnsMax = 200_000): Promise<void> {
  for (let turn = 0; !done(); turn += 1) {
    if (turn === turnsMax) throw new Error(`gave up waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, turn < 1_000 ? 0 : 5));
  }
}

describe('UplinkSender against a receiver double over real HTTP', () => {
  let dir: string;
  let db: LedgerDb;
  let outbox: Outbox;
  let receiver: UploadReceiverDouble;
  let sender: UplinkSender | undefined;
  let nowMs: number;
  /** Each wait the sender asked for, in ms; the double sleeps one event-loop turn instead. */
  let delays: number[];
  let onSleep: (() => Promise<void>) | undefined;
  /**
   * While set, each wait holds until `release()` (or the sender's own abort: stop, retryNow),
   * so a test that looks at the sender after its n-th wait sees it there and not further on:
   * on a busy machine the sender would otherwise retry before the test looks.
   */
  let holdSleeps: boolean;
  let release: () => void;
  const held = (signal: AbortSignal): Promise<void> => new Promise((resolve) => {
    release = resolve;
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
  const clock = (): Date => new Date(nowMs);

  const openOutbox = (key: SigningKey = signingKey): Promise<Outbox> => Outbox.open(db, { gatewayId: 'gw-1', signingKey: key, clock });
  const startSender = (options: Partial<UplinkSenderOptions> = {}): UplinkSender => {
    sender = new UplinkSender({
      outbox, cloudUrl: receiver.url, logger: silent, clock, random: () => 0.5, requestTimeoutMs: 2_000,
      sleep: async (ms, signal) => {
        delays.push(ms);
        nowMs += ms;
        await onSleep?.();
        if (holdSleeps) await held(signal);
        await nextTurn();
      },
      ...options,
    });
    sender.start();
    return sender;
  };
  const enqueue = async (count: number): Promise<void> => {
    const from = outbox.nextSeq;
    for (let n = from; n < from + count; n += 100) await outbox.enqueue(Array.from({ length: Math.min(100, from + count - n) }, (_, i) => settlement(n + i)));
  };

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'uplink-sender-'));
    db = await openLedgerDb(path.join(dir, 'ledger'));
    outbox = await openOutbox();
    receiver = await UploadReceiverDouble.start(signingKey.publicKey);
    nowMs = START_MS;
    delays = [];
    onSleep = undefined;
    holdSleeps = false;
    release = () => {};
  });
  afterEach(async () => {
    await sender?.stop();
    sender = undefined;
    await receiver.close();
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('delivers 150 items in order, each exactly once, and empties the outbox', async () => {
    await enqueue(150);
    startSender();
    await until(() => outbox.waiting === 0, 'the outbox is empty');
    expect(receiver.storedOrder).toEqual(Array.from({ length: 150 }, (_, i) => i + 1));
    expect(receiver.requests).toBe(150);
    expect(sender!.state()).toEqual({ state: 'ok', acked: 150, waiting: 0, lastOkAt: '2026-05-01T12:00:00.000Z' });
    // New items wake an idle sender.
    await enqueue(3);
    await until(() => outbox.waiting === 0, 'the new items are sent');
    expect(receiver.storedOrder).toHaveLength(153);
    expect(delays).toEqual([]);
  });

  it('resumes after a restart in the middle without losing or repeating an item, even when the last ack was lost', async () => {
    await enqueue(120);
    // Item 61 is stored but its answer never arrives: the restart finds it still waiting.
    receiver.onStored = (envelope) => {
      if (envelope.seq === 60) receiver.fault = { kind: 'reset', afterStoring: true, times: 1 };
    };
    startSender();
    await until(() => receiver.lastSeq === 61, 'item 61 is stored');
    await sender!.stop();
    await db.close();
    db = await openLedgerDb(path.join(dir, 'ledger'));
    outbox = await openOutbox();
    expect([outbox.ackedSeq, outbox.waiting]).toEqual([60, 60]);
    startSender();
    await until(() => outbox.waiting === 0, 'the outbox is empty');
    expect(receiver.storedOrder).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
    expect(receiver.answered.get('duplicate')).toBe(1);
  });

  it('retries a receiver that is down with growing, capped, jittered waits, then delivers everything once', async () => {
    await enqueue(20);
    await receiver.down();
    onSleep = async () => {
      if (delays.length === 12) await receiver.up();
    };
    const uplink = startSender();
    await until(() => delays.length >= 3, 'the third retry');
    expect(uplink.state()).toMatchObject({ state: 'retrying', waiting: 20, lastError: expect.stringMatching(/^cloud-sync unreachable \(item 1\): .*ECONNREFUSED/) });
    await until(() => outbox.waiting === 0, 'the outbox is empty');
    // random() = 0.5: half of min(5 min, 1 s × 2^failures).
    expect(delays).toEqual([500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 150_000, 150_000, 150_000]);
    expect(receiver.storedOrder).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(uplink.state()).toEqual({ state: 'ok', acked: 20, waiting: 0, lastOkAt: new Date(START_MS + 705_500).toISOString() });
  });

  it('resets the backoff after a success', async () => {
    await enqueue(2);
    receiver.fault = { kind: 'status500', times: 3 };
    receiver.onStored = (envelope) => {
      if (envelope.seq === 1) receiver.fault = { kind: 'status500', times: 2 };
    };
    startSender();
    await until(() => outbox.waiting === 0, 'the outbox is empty');
    expect(delays).toEqual([500, 1_000, 2_000, 500, 1_000]);
  });

  it('retries an answer that never comes, one that never ends, and one that is not an upload answer', async () => {
    await enqueue(2);
    receiver.fault = { kind: 'hang', times: 1 };
    holdSleeps = true;
    const uplink = startSender({ idleTimeoutMs: 200, requestTimeoutMs: 600 });
    await until(() => delays.length === 1, 'the idle timeout');
    expect(uplink.state().lastError).toMatch(/nothing moved for 200 ms/);
    receiver.fault = { kind: 'trickle', times: 1 };
    release();
    await until(() => delays.length === 2, 'the request timeout');
    expect(uplink.state().lastError).toMatch(/no answer within 600 ms/);
    receiver.fault = { kind: 'status500', times: 1 };
    release();
    await until(() => delays.length === 3, 'the 500');
    expect(uplink.state()).toMatchObject({ state: 'retrying', lastError: 'cloud-sync answered item 1 with HTTP 500 and no upload answer: internal error' });
    holdSleeps = false;
    release();
    await until(() => outbox.waiting === 0, 'the outbox is empty');
    expect(receiver.storedOrder).toEqual([1, 2]);
  });

  it('acknowledges the items a receiver already holds when it expects a later seq', async () => {
    await enqueue(60);
    receiver.lastSeq = 40; // it stored 1–40 and keeps none of them any more
    startSender();
    await until(() => outbox.waiting === 0, 'the outbox is empty');
    expect(receiver.storedOrder).toEqual(Array.from({ length: 20 }, (_, i) => i + 41));
    expect([receiver.requests, receiver.answered.get('out_of_order')]).toEqual([21, 1]);
  });

  it('stops on a refused item, keeps it, retries it slowly, and sends it once the operator fixed the cause', async () => {
    await enqueue(10);
    receiver.refuse = { seq: 5, reason: 'bad_batch' };
    holdSleeps = true;
    const uplink = startSender({ operatorRetryMs: 900_000 });
    await until(() => delays.length === 1, 'the first try of item 5');
    release();
    await until(() => delays.length === 2, 'the second try of item 5');
    expect(delays).toEqual([900_000, 900_000]);
    expect(uplink.state()).toMatchObject({ state: 'stopped', acked: 4, waiting: 6, lastError: 'cloud-sync refused item 5 (settlement): bad_batch: item 5 refused by the test' });
    expect((await outbox.first())!.seq).toBe(5);
    expect(receiver.storedOrder).toEqual([1, 2, 3, 4]);
    receiver.refuse = undefined;
    holdSleeps = false;
    uplink.retryNow();
    await until(() => outbox.waiting === 0, 'the outbox is empty');
    expect(receiver.storedOrder).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
  });

  it('stops on a signature the receiver cannot verify and drops nothing', async () => {
    outbox = await openOutbox(generateSigningKey());
    await enqueue(3);
    holdSleeps = true;
    const uplink = startSender();
    await until(() => delays.length === 1, 'the refusal');
    expect(uplink.state()).toMatchObject({ state: 'stopped', waiting: 3, lastError: expect.stringMatching(/^cloud-sync refused item 1 \(settlement\): bad_signature/) });
    expect(receiver.storedOrder).toEqual([]);
  });

  it('raises an alert when the receiver lost items it had acknowledged', async () => {
    await enqueue(10);
    const uplink = startSender();
    await until(() => outbox.waiting === 0, 'the outbox is empty');
    holdSleeps = true;
    receiver.loseAfter(5);
    await enqueue(1);
    await until(() => delays.length === 1, 'the refusal');
    expect(uplink.state()).toMatchObject({ state: 'stopped', waiting: 1, lastError: 'cloud-sync expects item 6, but it acknowledged every item up to 10 before and this gateway no longer holds them: cloud-sync lost items 6–10' });
  });

  it('raises an alert when the receiver holds more items than this gateway ever made', async () => {
    await enqueue(5);
    receiver.lastSeq = 9;
    holdSleeps = true;
    const uplink = startSender();
    await until(() => delays.length === 1, 'the refusal');
    expect(uplink.state()).toMatchObject({ state: 'stopped', acked: 0, waiting: 5, lastError: expect.stringMatching(/^cloud-sync expects item 10, but this gateway made items only up to 5: another gateway uses this id/) });
  });

  it('refuses options outside their bounds, naming the option', () => {
    expect(() => new UplinkSender({ outbox, cloudUrl: receiver.url, logger: silent, retryCapMs: 10 })).toThrow(/^retryCapMs: expected at least retryBaseMs/);
    expect(() => new UplinkSender({ outbox, cloudUrl: receiver.url, logger: silent, requestTimeoutMs: 5 })).toThrow(/^requestTimeoutMs: expected an integer/);
    expect(() => new UplinkSender({ outbox, cloudUrl: 'ftp://cloud', logger: silent })).toThrow(/^cloudUrl: expected http or https/);
    expect(() => new UplinkSender({ outbox, cloudUrl: receiver.url, logger: silent, tls: { ca: 'x' } })).toThrow(/^tls: cloudUrl .* is not https/);
  });
});

describe('parseAnswer', () => {
  it('reads the cloud\'s answers and nothing else', () => {
    expect(parseAnswer('{"status":"accepted","seq":3,"alerts":["x",1]}')).toEqual({ status: 'accepted', seq: 3, alerts: ['x'] });
    expect(parseAnswer('{"status":"refused","reason":"out_of_order","detail":"d","expectedSeq":7}')).toEqual({ status: 'refused', reason: 'out_of_order', detail: 'd', expectedSeq: 7 });
    expect(parseAnswer('{"status":"refused","reason":"gone","detail":"d"}')).toBeUndefined();
    expect(parseAnswer('{"status":"accepted","seq":0}')).toBeUndefined();
    expect(parseAnswer('<html>bad gateway</html>')).toBeUndefined();
  });
});

const OPENSSL = ['/usr/bin/openssl', '/usr/local/bin/openssl'].find((candidate) => {
  try {
    execFileSync(candidate, ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
});

describe.skipIf(!OPENSSL)('UplinkSender over mutual TLS', () => {
  let dir: string;
  let db: LedgerDb;
  let receiver: UploadReceiverDouble;
  const pem = (name: string): Promise<string> => readFile(path.join(dir, name), 'utf8');

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'uplink-tls-'));
    const openssl = (args: string[]): void => void execFileSync(OPENSSL!, args, { cwd: dir, stdio: 'ignore' });
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=uplink test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    await writeFile(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
    for (const [name, ext] of [['cloud', ['-extfile', 'san.ext']], ['gw-1', []]] as const) {
      openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
      openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', ...ext]);
    }
    db = await openLedgerDb(path.join(dir, 'ledger'));
    receiver = await UploadReceiverDouble.start(signingKey.publicKey, { ca: await pem('ca.pem'), cert: await pem('cloud.pem'), key: await pem('cloud.key'), requestCert: true, rejectUnauthorized: true });
  });
  afterEach(async () => {
    await receiver.close();
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('delivers with the gateway\'s client certificate, and is turned away without one', async () => {
    const outbox = await Outbox.open(db, { gatewayId: 'gw-1', signingKey, clock: () => new Date(START_MS) });
    await outbox.enqueue([settlement(1), settlement(2)]);
    const delays: number[] = [];
    let firstRefused = true;
    const sleep = async (ms: number, signal: AbortSignal): Promise<void> => {
      delays.push(ms);
      // The anonymous sender stays at its first wait until it is stopped (see holdSleeps).
      if (firstRefused) await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      await nextTurn();
    };
    const anonymous = new UplinkSender({ outbox, cloudUrl: receiver.url, logger: silent, random: () => 0.5, sleep, tls: { ca: await pem('ca.pem') } });
    anonymous.start();
    await until(() => delays.length === 1, 'the refused handshake');
    await anonymous.stop();
    firstRefused = false;
    expect(anonymous.state()).toMatchObject({ state: 'retrying', waiting: 2 });
    expect(receiver.storedOrder).toEqual([]);

    const sender = new UplinkSender({ outbox, cloudUrl: receiver.url, logger: silent, sleep, tls: { ca: await pem('ca.pem'), cert: await pem('gw-1.pem'), key: await pem('gw-1.key') } });
    sender.start();
    await until(() => outbox.waiting === 0, 'the outbox is empty');
    await sender.stop();
    expect(receiver.storedOrder).toEqual([1, 2]);
  });
});
