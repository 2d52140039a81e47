/**
 * The provisioning file: which devices exist, whom they bill, which meters they may
 * report, and their hashed credentials. Read at start-up; a bad file fails fast.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ID_PATTERN } from '../../protocol/usage-message.ts';
import { isPasswordHash, UNUSABLE_PASSWORD_HASH, verifyPassword } from '../auth/password-hash.ts';

const deviceSchema = z.strictObject({
  id: z.string().regex(ID_PATTERN),
  payer: z.string().regex(ID_PATTERN),
  meters: z.array(z.string().regex(ID_PATTERN)).min(1).max(32),
  passwordHash: z.string().refine(isPasswordHash, { message: 'must be a scrypt$… hash (meterbridge device add prints one)' }),
  description: z.string().max(200).optional(),
  /** The device's Ed25519 public key (64 hex digits); when set, every message must be signed with it. */
  publicKey: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits (an Ed25519 public key)').optional(),
  /** A revoked device can no longer connect; its past records stay in the ledger. */
  revoked: z.boolean().optional(),
  /** A Sparkplug B edge node: may publish spBv1.0/<group>/<type>/<node>[/<device>]. */
  sparkplug: z.strictObject({ group: z.string().min(1).max(64), node: z.string().min(1).max(64) }).optional(),
});

const fileSchema = z.strictObject({ devices: z.array(deviceSchema) });

export type DeviceEntry = z.infer<typeof deviceSchema>;
export type DevicesFile = z.infer<typeof fileSchema>;

export class DeviceRegistry {
  #devices: ReadonlyMap<string, DeviceEntry>;
  /** Device id → SHA-256 of its last verified password; bounded by the number of devices. */
  readonly #verified = new Map<string, string>();

  constructor(devices: readonly DeviceEntry[]) {
    const map = new Map<string, DeviceEntry>();
    for (const device of devices) {
      if (map.has(device.id)) throw new Error(`Cannot load devices: id ${device.id} appears twice`);
      map.set(device.id, Object.freeze({ ...device }));
    }
    this.#devices = map;
  }

  /** Parses a provisioning file and checks it against the configured meters and payers. */
  static load(file: string, known: { meterCurrencies: Readonly<Record<string, string>>; payerCurrencies: Readonly<Record<string, string>>; devicesMax: number }): DeviceRegistry {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new Error(`Cannot read devices file ${file}: ${(error as Error).message}`, { cause: error });
    }
    const result = fileSchema.safeParse(raw);
    if (!result.success) {
      const problems = result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
      throw new Error(`Invalid devices file ${file}:\n  ${problems.join('\n  ')}`);
    }
    const { devices } = result.data;
    if (devices.length > known.devicesMax) throw new Error(`Invalid devices file ${file}: ${devices.length} devices, limits.devicesMax is ${known.devicesMax}`);
    const problems: string[] = [];
    devices.forEach((device, i) => {
      const payerCurrency = Object.hasOwn(known.payerCurrencies, device.payer) ? known.payerCurrencies[device.payer] : undefined;
      if (!payerCurrency) problems.push(`devices.${i}.payer: no payer named ${device.payer} in the config`);
      for (const meter of device.meters) {
        const meterCurrency = Object.hasOwn(known.meterCurrencies, meter) ? known.meterCurrencies[meter] : undefined;
        if (!meterCurrency) problems.push(`devices.${i}.meters: no meter named ${meter} in the config`);
        else if (payerCurrency && meterCurrency !== payerCurrency) {
          // One consent per payer, in one currency: usage priced in another could never be paid.
          problems.push(`devices.${i}.meters: meter ${meter} is priced in ${meterCurrency} but payer ${device.payer} pays in ${payerCurrency}`);
        }
      }
    });
    if (problems.length > 0) throw new Error(`Invalid devices file ${file}:\n  ${problems.join('\n  ')}`);
    return new DeviceRegistry(devices);
  }

  /**
   * Takes the devices of `next` (the provisioning file read again after the operator page
   * changed it), at once: a new device can connect, a rotated or revoked password stops
   * working. Remembered passwords are forgotten, so each is checked against its new hash.
   */
  replaceWith(next: DeviceRegistry): void {
    this.#devices = next.#devices;
    this.#verified.clear();
  }

  get(deviceId: string): DeviceEntry | undefined {
    return this.#devices.get(deviceId);
  }

  list(): DeviceEntry[] {
    return [...this.#devices.values()];
  }

  /**
   * Checks a device's credentials; unknown devices cost the same scrypt as known ones.
   * A verified (device, password) is remembered by a SHA-256 of the password, so a
   * device reconnecting after a Wi-Fi drop does not pay scrypt again.
   */
  async authenticate(deviceId: string, password: string): Promise<DeviceEntry | undefined> {
    const device = this.#devices.get(deviceId);
    const fingerprint = createHash('sha256').update(password).digest('base64');
    if (device && !device.revoked && this.#verified.get(device.id) === fingerprint) return device;
    const ok = await verifyPassword(password, device?.passwordHash ?? UNUSABLE_PASSWORD_HASH);
    if (!ok || !device || device.revoked) return undefined;
    this.#verified.set(device.id, fingerprint);
    return device;
  }
}

