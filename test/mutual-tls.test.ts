import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usageTopic } from '../protocol/usage-message.ts';
import { requireBinary } from './support/server-binaries.ts';
import { startTestRig, TEST_DEVICES, usagePayload, type TestRig } from './support/test-gateway.ts';

const OPENSSL = requireBinary('openssl', ['/usr/bin/openssl', '/usr/local/bin/openssl']);

function openssl(dir: string, args: string[]): void {
  execFileSync(OPENSSL!, args, { cwd: dir, stdio: 'ignore' });
}

/** A CA, a server certificate for 127.0.0.1 and one client certificate per name (CN = device id). */
async function makePki(dir: string, clients: string[]): Promise<void> {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=meterbridge test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await writeFile(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  for (const [name, ext] of [['server', ['-extfile', 'san.ext']], ...clients.map((c) => [c, []] as const)] as const) {
    openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', ...ext]);
  }
}

describe.skipIf(!OPENSSL)('mutual TLS on the embedded broker', () => {
  let dir: string;
  let rig: TestRig;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'meterbridge-pki-'));
    await makePki(dir, ['cnc-1', 'cnc-2']);
    rig = await startTestRig({
      configPatch: (raw) => void (raw.mqtt = { ...(raw.mqtt as object), tls: { certFile: path.join(dir, 'server.pem'), keyFile: path.join(dir, 'server.key'), caFile: path.join(dir, 'ca.pem'), clientCertRequired: true } }),
    });
  });
  afterAll(async () => {
    await rig.close();
    await rm(dir, { recursive: true, force: true });
  });

  const connect = async (device: string, certName: string | undefined): Promise<mqtt.MqttClient> => {
    const password = TEST_DEVICES.find((d) => d.id === device)!.password;
    return mqtt.connectAsync(`mqtts://127.0.0.1:${rig.gateway.mqttPort}`, {
      clientId: device, username: device, password, reconnectPeriod: 0, connectTimeout: 3_000,
      ca: await readFile(path.join(dir, 'ca.pem')),
      ...(certName ? { cert: await readFile(path.join(dir, `${certName}.pem`)), key: await readFile(path.join(dir, `${certName}.key`)) } : {}),
    });
  };

  it('accepts a device presenting its own certificate and password', async () => {
    const client = await connect('cnc-1', 'cnc-1');
    await client.publishAsync(usageTopic('cnc-1'), usagePayload('cnc-1', 1, { time: new Date().toISOString() }), { qos: 1 });
    expect(rig.gateway.journal.head.index).toBe(1);
    await client.endAsync();
  });

  it("refuses a device presenting another device's certificate", async () => {
    await expect(connect('cnc-1', 'cnc-2')).rejects.toThrow();
  });

  it('refuses a device without a certificate when client certificates are required', async () => {
    await expect(connect('cnc-1', undefined)).rejects.toThrow();
  });
});
