/**
 * Prometheus metrics. Values are read from the ledger's own counts at scrape time, so
 * they stay true across restarts and never drift from what the ledger holds.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { Intake } from '../ingest/intake.ts';
import { REJECT_REASONS, type RejectionLog } from '../ingest/rejection-log.ts';
import type { Journal } from '../ledger/journal.ts';
import { BATCH_STATES, type BatchBook } from '../settlement/batch-book.ts';

export interface MetricSources {
  journal: Journal;
  intake: Intake;
  rejections: RejectionLog;
  batches: BatchBook;
  sparkplugEventCounts: () => ReadonlyMap<string, number>;
}

export function createMetrics(sources: MetricSources): Registry {
  const registry = new Registry();
  new Counter({
    name: 'meterbridge_usage_records_total',
    help: 'Usage records durably in the ledger.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(sources.journal.head.index);
    },
  });
  new Counter({
    name: 'meterbridge_duplicate_messages_total',
    help: 'Usage messages recognised as already recorded (same device, seq and content) since start.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(sources.intake.duplicateCount);
    },
  });
  new Counter({
    name: 'meterbridge_rejected_messages_total',
    help: 'Refused messages and connections since start, by reason.',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      // Every known reason is exported, at 0 until it happens, so alerts can rate() it from the start.
      const counts = sources.rejections.countsByReason();
      for (const reason of REJECT_REASONS) this.inc({ reason }, counts.get(reason) ?? 0);
    },
  });
  new Counter({
    name: 'meterbridge_rejections_dropped_total',
    help: 'Refused messages no longer kept for the operator (oldest dropped first).',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(sources.rejections.dropped);
    },
  });
  new Counter({
    name: 'meterbridge_batches_total',
    help: 'Batches by current settlement state.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      const counts = sources.batches.countByState();
      for (const state of BATCH_STATES) this.inc({ state }, counts.get(state) ?? 0);
    },
  });
  new Counter({
    name: 'meterbridge_settled_minor_units_total',
    help: 'Money settled with the bank, in minor units of each currency.',
    labelNames: ['currency'],
    registers: [registry],
    collect() {
      this.reset();
      // Counter values are float64; exact up to 2^53 minor units (9e13 EUR), far past a gateway's life.
      for (const [currency, minor] of sources.batches.settledMinorByCurrency()) this.inc({ currency }, Number(minor));
    },
  });
  new Counter({
    name: 'meterbridge_sparkplug_events_total',
    help: 'Sparkplug B sequence events since start, by kind (gap, birth, rebirth, death…).',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [kind, count] of sources.sparkplugEventCounts()) this.inc({ kind }, count);
    },
  });
  new Gauge({
    name: 'meterbridge_sequence_numbers_missing',
    help: 'Sequence numbers not (yet) received below each device\'s highest, summed over devices.',
    registers: [registry],
    collect() {
      this.set(sources.intake.gaps.missingTotal());
    },
  });
  new Gauge({
    name: 'meterbridge_intake_queue_length',
    help: 'Usage messages waiting for their durable write.',
    registers: [registry],
    collect() {
      this.set(sources.journal.queueLength);
    },
  });
  return registry;
}
