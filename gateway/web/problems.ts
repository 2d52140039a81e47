/**
 * What needs an operator, worst first, each with what to do: the operator page shows these
 * before anything else. Pure: read from a snapshot.
 */
import type { Snapshot } from './snapshot.ts';

export interface Problem {
  severity: 'error' | 'warning';
  kind: string;
  title: string;
  detail: string;
  /** What the operator should do about it. */
  action: string;
}

/** What to do about refused messages, by reason; others get the generic advice. */
const REJECTION_ADVICE: Readonly<Record<string, string>> = {
  auth_failed: 'Check the device\'s credentials; if it was re-flashed, rotate its password and flash the new one.',
  topic_not_allowed: 'The device publishes to another device\'s topic: check its configuration (its id must be in its topic).',
  malformed_json: 'The device\'s firmware sends payloads that are not JSON: check its version against docs/protocol.md.',
  invalid_field: 'The device sends a field the gateway cannot accept: the detail names the field; fix the firmware or its config.',
  missing_field: 'The device leaves out a required field: see docs/protocol.md.',
  unknown_field: 'The device sends a field usage messages do not have: check its firmware version.',
  seq_conflict: 'The device reused a sequence number with other content: its storage or counter was reset; check it.',
  time_in_future: 'The device clock is ahead of the gateway\'s: set up NTP on the device.',
  time_too_old: 'Old messages are arriving (a replay, or a device that was offline for long): check the device.',
  bad_signature: 'A message did not carry the device\'s valid signature: the device key may have changed, or someone forges messages.',
  signature_required: 'The device is registered with a key but sent unsigned messages: check its firmware.',
  payload_too_large: 'The device sends payloads over the size limit: check its firmware.',
  device_mismatch: 'A message names another device than the one that sent it: check the device\'s configuration.',
  no_tariff: 'No tariff is in force for the usage\'s time: add or fix the tariff\'s effectiveFrom in the config.',
  stale_reading: 'A counter reading older than one already accepted arrived late: its usage is already counted; nothing to do unless it repeats.',
  qos_not_supported: 'The device publishes usage with QoS 0, which cannot be acknowledged: configure QoS 1.',
  unsupported_version: 'The device speaks a newer usage message version: update the gateway or check the firmware.',
  rate_limited: 'A device sends faster than limits.deviceRatePerSMax allows: check it, or raise the limit.',
  storage_low: 'The data disk is nearly full: free space (the gateway refuses usage rather than lose it).',
  intake_overloaded: 'The ledger could not keep up: the device will resend; check the disk and CPU.',
  unknown_meter: 'A device reports a meter the gateway does not know: add it to the config or fix the device.',
  meter_not_allowed: 'A device reports a meter it is not provisioned for: provision it, or fix the device.',
  unit_mismatch: 'A device reports in another unit than its meter\'s: fix the device.',
  counter_decreased: 'A counter went backwards without a new epoch: the meter was reset or replaced; check it.',
};

const GAPS_SHOWN_MAX = 5;
const REASONS_SHOWN_MAX = 8;

export function findProblems(s: Snapshot): Problem[] {
  const problems: Problem[] = [];
  const add = (problem: Problem): void => {
    problems.push(problem);
  };
  if (!s.chain.ok) {
    add({ severity: 'error', kind: 'chain', title: 'Ledger verification failed: settlement is stopped', detail: s.chain.problems.slice(0, 3).join('; '), action: 'Keep the data folder as it is (it is the evidence). Compare with the last backup and the trusted head file; docs/receipts.md says what each finding means.' });
  }
  if (!s.health.clock.ok) add({ severity: 'error', kind: 'clock', title: 'The gateway clock looks wrong', detail: s.health.clock.detail, action: 'Set up NTP on the gateway: times in records and settlement schedules depend on it.' });
  const { diskFreeBytes, diskFloorBytes } = s.health;
  if (diskFreeBytes >= 0 && diskFreeBytes < diskFloorBytes) {
    add({ severity: 'error', kind: 'disk', title: 'Data disk full: usage is refused', detail: `${mib(diskFreeBytes)} MiB free, the floor is ${mib(diskFloorBytes)} MiB`, action: 'Free space on the data disk; devices keep their messages and send them again.' });
  } else if (diskFreeBytes >= 0 && diskFreeBytes < 2 * diskFloorBytes) {
    add({ severity: 'warning', kind: 'disk', title: 'Data disk nearly full', detail: `${mib(diskFreeBytes)} MiB free, usage is refused below ${mib(diskFloorBytes)} MiB`, action: 'Free space on the data disk soon.' });
  }
  if (!s.health.brokerConnected) add({ severity: 'error', kind: 'broker', title: 'Not connected to the MQTT broker', detail: 'no usage arrives while the broker is away', action: 'Check that Mosquitto runs and that the gateway\'s broker credentials are right; the gateway reconnects by itself.' });
  if (s.health.bank.reachable === false) add({ severity: 'warning', kind: 'bank', title: 'The bank does not answer', detail: s.health.bank.lastError ?? '', action: 'Check the network to the bank; payments wait and are retried with the same idempotency keys, so nothing is paid twice.' });
  const { uplink } = s.health;
  if (uplink.configured) {
    const usedMib = `${mib(uplink.fill.bytes)} of ${mib(uplink.fill.budgetBytes)} MiB`;
    if (uplink.fill.full) add({ severity: 'error', kind: 'uplink', title: 'The uplink outbox is full: usage is refused', detail: `${usedMib} wait for cloud-sync${uplink.lastError ? `; ${uplink.lastError}` : ''}`, action: 'Restore the connection to cloud-sync (its URL, network, TLS); nothing is dropped, and devices resend their usage once there is room.' });
    else if (uplink.fill.warning) add({ severity: 'warning', kind: 'uplink', title: 'The uplink outbox is filling up', detail: `${usedMib} wait for cloud-sync`, action: 'Check the connection to cloud-sync: at 100% the gateway refuses new usage rather than drop billing data.' });
    if (uplink.state === 'stopped') add({ severity: 'error', kind: 'uplink', title: 'cloud-sync refuses this gateway\'s uploads', detail: uplink.lastError ?? '', action: 'This needs an operator: check that the gateway is registered in cloud-sync with its current key; the items wait and are sent again.' });
    else if (uplink.state === 'retrying' && uplink.waiting > 0) add({ severity: 'warning', kind: 'uplink', title: 'cloud-sync cannot be reached', detail: `${uplink.waiting} items wait${uplink.lastError ? `; ${uplink.lastError}` : ''}`, action: 'Check the network to cloud-sync; items are sent in order once it answers.' });
    if (uplink.batchError) add({ severity: 'error', kind: 'uplink', title: 'A sealed batch could not be queued for cloud-sync', detail: uplink.batchError, action: 'See the gateway log; the batch is queued again at the next seal.' });
  }
  for (const alert of s.alerts) {
    add({ severity: 'error', kind: 'reconciliation', title: `Reconciliation: ${alert.kind}${alert.batchId ? ` (${alert.batchId})` : ''}`, detail: alert.detail, action: 'Compare with the bank statement, then acknowledge the alert once it is understood.' });
  }
  for (const batch of s.batches) {
    if (batch.state === 'rejected') add({ severity: 'error', kind: 'settlement', title: `Batch ${batch.batchNo} for ${batch.payer} was rejected by the bank`, detail: batch.reason ?? batch.lastError ?? '', action: 'Check the payer\'s account and consent with the bank; the amount stays owed.' });
    else if (batch.state === 'unknown') add({ severity: 'error', kind: 'settlement', title: `Batch ${batch.batchNo}: the bank's answer was lost`, detail: batch.reason ?? '', action: 'The gateway looks the payment up and never pays twice; if it stays unknown, ask the bank about its EndToEndIdentification.' });
    else if (batch.state === 'held') add({ severity: 'warning', kind: 'settlement', title: `Batch ${batch.batchNo} for ${batch.payer} is held`, detail: batch.reason ?? '', action: 'It is sent when the consent\'s limit has room again; "Retry" tries now.' });
    else if (batch.lastError) add({ severity: 'warning', kind: 'settlement', title: `Batch ${batch.batchNo}: the last bank call failed`, detail: batch.lastError, action: 'It is retried with the same idempotency key; nothing is paid twice.' });
  }
  const reasons = Object.entries(s.rejectionsByReason).sort((a, b) => b[1] - a[1]).slice(0, REASONS_SHOWN_MAX);
  for (const [reason, count] of reasons) {
    add({ severity: 'warning', kind: 'rejections', title: `${count} message${count === 1 ? '' : 's'} refused: ${reason}`, detail: s.rejections.find((r) => r.reason === reason)?.detail ?? '', action: REJECTION_ADVICE[reason] ?? 'See the refused messages below for the device and the detail.' });
  }
  for (const device of s.devices.filter((d) => d.gaps.length > 0).slice(0, GAPS_SHOWN_MAX)) {
    const ranges = device.gaps.map((g) => (g.from === g.to ? `${g.from}` : `${g.from}–${g.to}`)).join(', ');
    add({ severity: 'warning', kind: 'gaps', title: `${device.id} skipped sequence numbers`, detail: ranges, action: 'Those messages never reached the gateway: check the device\'s storage and network. Counter readings merge a loss into the next delta; events do not.' });
  }
  for (const device of s.devices.filter((d) => d.status === 'silent')) {
    add({ severity: 'warning', kind: 'silent', title: `${device.id} is silent`, detail: `nothing for ${Math.round((device.silentForS ?? 0) / 60)} minutes`, action: 'Check the machine and its network; its usage is not billed while it cannot report.' });
  }
  return problems.sort((a, b) => (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1));
}

const mib = (bytes: number): number => Math.floor(bytes / 1_048_576);
