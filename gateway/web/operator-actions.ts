/**
 * What an operator can do from the page, as plain operations on the gateway's parts: the
 * routes (action-routes.ts) add sessions, CSRF, idempotency and the audit log around them.
 * Operating failures are ActionErrors with the HTTP status the operator should see.
 */
import { usageTopic } from '../../protocol/usage-message.ts';
import { addDevice, flashSheet, revokeDevice, rotateDevice, type AddDeviceInput } from '../ingest/device-provisioning.ts';
import { DeviceRegistry } from '../ingest/device-registry.ts';
import type { IngestRates } from '../ingest/ingest-rate.ts';
import type { Rejection, RejectionLog } from '../ingest/rejection-log.ts';
import type { BatchBook, BatchStateName } from '../settlement/batch-book.ts';
import type { AlertBook } from '../settlement/reconcile.ts';
import type { Settler } from '../settlement/settler.ts';

export class ActionError extends Error {
  readonly code = 'MB_ACTION_REFUSED';
  constructor(message: string, readonly statusCode: 400 | 404 | 409) {
    super(message);
  }
}

export interface Credentials {
  id: string;
  password: string;
  /** What to flash onto the device (shown once). */
  flashSheet: string;
}

export interface DeviceDetail {
  id: string;
  usagePerMinute: number[];
  rejections: Rejection[];
}

export interface OperatorActions {
  provisionDevice(input: AddDeviceInput): Promise<Credentials>;
  rotateDevice(id: string): Promise<Credentials>;
  revokeDevice(id: string): Promise<void>;
  sealNow(): Promise<number[]>;
  settleNow(): Promise<void>;
  retryBatch(batchNo: number, by: string): Promise<{ batchNo: number; state: BatchStateName }>;
  acknowledgeAlert(alertNo: number, by: string): Promise<void>;
  /** A reversing entry that references `entryNo`, with the operator and the reason. */
  correct(entryNo: number, reason: string, by: string): Promise<{ entryNo: number }>;
  deviceDetail(id: string): DeviceDetail | undefined;
}

export interface OperatorActionParts {
  devicesFile: string;
  registry: DeviceRegistry;
  /** What the provisioning file is checked against when read again (config meters and payers). */
  known: Parameters<typeof DeviceRegistry.load>[1];
  /** Embedded broker: closes a device's connection after its password changed. */
  disconnect: ((deviceId: string) => void) | undefined;
  batches: BatchBook;
  settler: Pick<Settler, 'tick'>;
  alerts: AlertBook;
  rates: IngestRates;
  rejections: RejectionLog;
  sealNow(): Promise<number[]>;
  clock: () => Date;
}

const DEVICE_REJECTIONS_SHOWN = 20;

export function operatorActions(parts: OperatorActionParts): OperatorActions {
  const { registry } = parts;
  /** Reads the file the change was written to, checks it against the config, and serves from it at once. */
  const reload = (): void => registry.replaceWith(DeviceRegistry.load(parts.devicesFile, parts.known));
  const known = (id: string): void => {
    if (!registry.get(id)) throw new ActionError(`Cannot change device ${id}: no such device`, 404);
  };
  const refusedInput = (error: unknown): never => {
    throw new ActionError((error as Error).message, 400);
  };
  const credentials = (id: string, password: string): Credentials => ({
    id, password, flashSheet: flashSheet(id, password, registry.get(id)?.publicKey !== undefined, false),
  });

  return {
    async provisionDevice(input) {
      for (const meter of input.meters) {
        if (!Object.hasOwn(parts.known.meterCurrencies, meter)) throw new ActionError(`Cannot provision ${input.id}: meters: no meter named ${meter} in the config`, 400);
      }
      if (!Object.hasOwn(parts.known.payerCurrencies, input.payer)) throw new ActionError(`Cannot provision ${input.id}: payer: no payer named ${input.payer} in the config`, 400);
      if (registry.get(input.id)) throw new ActionError(`Cannot provision ${input.id}: it is already provisioned (rotate gives it a new password)`, 409);
      const password = await addDevice(parts.devicesFile, input).catch(refusedInput);
      reload();
      return credentials(input.id, password);
    },
    async rotateDevice(id) {
      known(id);
      const password = await rotateDevice(parts.devicesFile, id);
      reload();
      parts.disconnect?.(id); // its session was opened with the old password
      return credentials(id, password);
    },
    async revokeDevice(id) {
      known(id);
      revokeDevice(parts.devicesFile, id);
      reload();
      parts.disconnect?.(id);
    },
    sealNow: () => parts.sealNow(),
    settleNow: () => parts.settler.tick(),
    async retryBatch(batchNo, by) {
      const batch = await parts.batches.get(batchNo);
      if (!batch) throw new ActionError(`Cannot retry batch ${batchNo}: no such batch`, 404);
      if (batch.state !== 'held') throw new ActionError(`Cannot retry batch ${batchNo}: it is ${batch.state}, only a held batch can be retried`, 409);
      // Held until now: the settler's next look sends it if the consent's limit has room, or holds it again and says why.
      await parts.batches.transition(batchNo, 'held', { heldUntil: parts.clock().toISOString() }, `retry asked by ${by}`);
      await parts.settler.tick();
      const after = await parts.batches.get(batchNo);
      return { batchNo, state: after?.state ?? batch.state };
    },
    async acknowledgeAlert(alertNo, by) {
      try {
        await parts.alerts.acknowledge(alertNo, by);
      } catch (error) {
        throw new ActionError((error as Error).message, 404);
      }
    },
    async correct(entryNo, reason, by) {
      try {
        const result = await parts.batches.accounts.reverse(entryNo, { operator: by, reason });
        return { entryNo: result.status === 'posted' ? result.entry.no : result.entryNo };
      } catch (error) {
        if (error instanceof RangeError) throw new ActionError(error.message, /no such entry/.test(error.message) ? 404 : 400);
        throw error;
      }
    },
    deviceDetail(id) {
      if (!registry.get(id)) return undefined;
      return {
        id,
        usagePerMinute: parts.rates.perMinute(id, Date.now()),
        rejections: parts.rejections.recent(500).filter((r) => r.deviceId === id || r.topic === usageTopic(id)).slice(0, DEVICE_REJECTIONS_SHOWN),
      };
    },
  };
}
