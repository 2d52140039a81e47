/**
 * Per edge node session tracking for the operator (Sparkplug 3.0 §5, §6.4.1):
 *
 * - `seq`: every NBIRTH, DBIRTH, NDATA, DDATA and DDEATH of an edge node carries the next
 *   number, 0..255 then 0 again ([tck-id-payloads-sequence-num-incrementing]). A jump
 *   ahead is a `gap` (messages lost: NBIRTH and NDATA are QoS 0); a number behind the
 *   expected one is `late` (a redelivery or reordering) and does not move the count back.
 * - `bdSeq`: the NBIRTH and the NDEATH (the MQTT will) of one session carry the same bdSeq
 *   metric, so an NDEATH whose bdSeq is not the current session's is `stale_death` and is
 *   ignored ([tck-id-operational-behavior-edge-node-intentional-disconnect-ndeath] and §5.3).
 *
 * Read-only: this never asks a node to rebirth; it records what happened. Pure: the caller
 * passes the receive time. Bounded: at most `nodesMax` nodes (least recently seen dropped
 * first, counted) and `eventsKept` recent events.
 */
import { readInteger, SparkplugDataType } from './datatype.ts';
import type { SparkplugPayload } from './payload.ts';
import { edgeNodeKey, type SparkplugTopic } from './topic.ts';

type SeqMessageType = 'NBIRTH' | 'DBIRTH' | 'NDATA' | 'DDATA' | 'DDEATH';

export type SparkplugSequenceEvent =
  | { kind: 'gap'; node: string; type: SeqMessageType; expected: number; got: number; missed: number; at: string }
  | { kind: 'late'; node: string; type: SeqMessageType; expected: number; got: number; at: string }
  /** seq missing, or above 255; `got` is the decimal value sent, if any. */
  | { kind: 'invalid_seq'; node: string; type: SeqMessageType; got: string | null; at: string }
  /** Data from a node whose NBIRTH we have not seen (since start, or since its death). Reported once until the next NBIRTH. */
  | { kind: 'before_birth'; node: string; type: SeqMessageType; at: string }
  /** The first NBIRTH we see from a node. */
  | { kind: 'birth'; node: string; bdSeq: number | null; at: string }
  /**
   * Any later NBIRTH. After a death (`previousState: 'offline'`) it is a reconnect. While
   * online, the same bdSeq means a rebirth in the same MQTT session (a Rebirth command);
   * a new bdSeq means a reconnect whose NDEATH has not (yet) arrived.
   */
  | { kind: 'rebirth'; node: string; bdSeq: number | null; previousBdSeq: number | null; previousState: 'online' | 'offline'; at: string }
  | { kind: 'death'; node: string; bdSeq: number | null; at: string }
  | { kind: 'stale_death'; node: string; expected: number | null; got: number | null; at: string };

export type SparkplugSequenceEventKind = SparkplugSequenceEvent['kind'];

export interface EdgeNodeStatus {
  node: string;
  /** `unknown`: seen, but no NBIRTH since we started. */
  state: 'unknown' | 'online' | 'offline';
  bdSeq: number | null;
  /** The seq the next message should carry; null until one is known. */
  expectedSeq: number | null;
  gaps: number;
  rebirths: number;
  lastSeenAt: string;
}

export interface SequenceTrackerOptions {
  nodesMax?: number;
  eventsKept?: number;
}

interface NodeState {
  state: EdgeNodeStatus['state'];
  bdSeq: number | null;
  expectedSeq: number | null;
  gaps: number;
  rebirths: number;
  lastSeenAt: string;
  reportedBeforeBirth: boolean;
}

const SEQ_MODULUS = 256;

function checkCount(value: number, name: string, max: number): number {
  if (!Number.isSafeInteger(value) || value < 1 || value > max) throw new RangeError(`${name}: must be an integer from 1 to ${max}, got ${value}`);
  return value;
}

/** The `bdSeq` metric of an NBIRTH or NDEATH (Int64 per Sparkplug 3.0), as a number; null if absent or unusable. */
export function bdSeqOf(payload: SparkplugPayload): number | null {
  const metric = payload.metrics.find((m) => m.name === 'bdSeq');
  if (!metric || metric.isNull) return null;
  const value = readInteger(metric.datatype ?? SparkplugDataType.Int64, metric.value);
  if (!value.ok || value.value < 0n || value.value > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return Number(value.value);
}

export class SparkplugSequenceTracker {
  readonly #nodes = new Map<string, NodeState>();
  readonly #nodesMax: number;
  readonly #eventsKept: number;
  readonly #events: SparkplugSequenceEvent[] = [];
  readonly #counts = new Map<SparkplugSequenceEventKind, number>();
  #nodesForgotten = 0;

  constructor(options: SequenceTrackerOptions = {}) {
    this.#nodesMax = checkCount(options.nodesMax ?? 10_000, 'nodesMax', 1_000_000);
    this.#eventsKept = checkCount(options.eventsKept ?? 1_000, 'eventsKept', 1_000_000);
  }

  /** Notes one message from an edge node; returns what the operator should know about it. `receivedAtMs` is the gateway clock (a bad one is a bug and throws). */
  observe(topic: SparkplugTopic, payload: SparkplugPayload, receivedAtMs: number): SparkplugSequenceEvent[] {
    if (topic.type === 'STATE' || topic.type === 'NCMD' || topic.type === 'DCMD') return []; // sent by hosts, not edge nodes
    const at = new Date(receivedAtMs).toISOString();
    const node = edgeNodeKey(topic.group, topic.node);
    const state = this.#touch(node, at);
    const events: SparkplugSequenceEvent[] = [];
    if (topic.type === 'NBIRTH') this.#birth(node, state, bdSeqOf(payload), at, events);
    if (topic.type === 'NDEATH') {
      this.#death(node, state, bdSeqOf(payload), at, events);
    } else {
      if (topic.type !== 'NBIRTH' && state.state !== 'online' && !state.reportedBeforeBirth) {
        state.reportedBeforeBirth = true;
        events.push({ kind: 'before_birth', node, type: topic.type, at });
      }
      this.#checkSeq(node, state, topic.type, payload.seq, at, events);
    }
    for (const event of events) this.#keep(event);
    return events;
  }

  #birth(node: string, state: NodeState, bdSeq: number | null, at: string, events: SparkplugSequenceEvent[]): void {
    if (state.state === 'unknown') {
      events.push({ kind: 'birth', node, bdSeq, at });
    } else {
      state.rebirths += 1;
      events.push({ kind: 'rebirth', node, bdSeq, previousBdSeq: state.bdSeq, previousState: state.state, at });
    }
    state.state = 'online';
    state.bdSeq = bdSeq;
    state.expectedSeq = null; // an NBIRTH starts the count afresh, from whatever it carries
    state.reportedBeforeBirth = false;
  }

  #death(node: string, state: NodeState, bdSeq: number | null, at: string, events: SparkplugSequenceEvent[]): void {
    if (state.state === 'online') {
      if (bdSeq === null || bdSeq !== state.bdSeq) {
        events.push({ kind: 'stale_death', node, expected: state.bdSeq, got: bdSeq, at });
        return;
      }
    } else if (state.state === 'offline') {
      // The will message after an explicit NDEATH repeats its bdSeq: ignore it quietly (§5.3).
      if (bdSeq !== state.bdSeq) events.push({ kind: 'stale_death', node, expected: state.bdSeq, got: bdSeq, at });
      return;
    }
    events.push({ kind: 'death', node, bdSeq, at });
    state.state = 'offline';
    state.bdSeq = bdSeq;
    state.expectedSeq = null;
  }

  #checkSeq(node: string, state: NodeState, type: SeqMessageType, seq: bigint | undefined, at: string, events: SparkplugSequenceEvent[]): void {
    if (seq === undefined || seq >= BigInt(SEQ_MODULUS)) {
      events.push({ kind: 'invalid_seq', node, type, got: seq === undefined ? null : seq.toString(), at });
      state.expectedSeq = null; // resynchronise on the next valid seq
      return;
    }
    const got = Number(seq);
    const expected = state.expectedSeq;
    if (expected !== null && got !== expected) {
      const ahead = (got - expected + SEQ_MODULUS) % SEQ_MODULUS;
      // Up to half the ring ahead reads as lost messages; further is behind us: a late arrival.
      if (ahead >= SEQ_MODULUS / 2) {
        events.push({ kind: 'late', node, type, expected, got, at });
        return;
      }
      state.gaps += 1;
      events.push({ kind: 'gap', node, type, expected, got, missed: ahead, at });
    }
    state.expectedSeq = (got + 1) % SEQ_MODULUS;
  }

  #touch(node: string, at: string): NodeState {
    let state = this.#nodes.get(node);
    if (state) {
      this.#nodes.delete(node); // re-inserted below: Map order is then least recently seen first
    } else {
      state = { state: 'unknown', bdSeq: null, expectedSeq: null, gaps: 0, rebirths: 0, lastSeenAt: at, reportedBeforeBirth: false };
      if (this.#nodes.size >= this.#nodesMax) {
        const oldest = this.#nodes.keys().next();
        if (!oldest.done) this.#nodes.delete(oldest.value);
        this.#nodesForgotten += 1;
      }
    }
    state.lastSeenAt = at;
    this.#nodes.set(node, state);
    return state;
  }

  #keep(event: SparkplugSequenceEvent): void {
    this.#counts.set(event.kind, (this.#counts.get(event.kind) ?? 0) + 1);
    this.#events.push(event);
    if (this.#events.length > this.#eventsKept) this.#events.shift();
  }

  /** What we know of one edge node (`<group>/<node>`), or undefined if never seen or forgotten. */
  status(node: string): EdgeNodeStatus | undefined {
    const state = this.#nodes.get(node);
    if (!state) return undefined;
    const { reportedBeforeBirth: _, ...status } = state;
    return { node, ...status };
  }

  /** Newest first. */
  recentEvents(limit = this.#eventsKept): SparkplugSequenceEvent[] {
    return this.#events.slice(-limit).reverse();
  }

  /** Events by kind since start (for /metrics), including those no longer kept. */
  countsByKind(): ReadonlyMap<SparkplugSequenceEventKind, number> {
    return this.#counts;
  }

  /** Nodes dropped to stay within `nodesMax`; their next message starts them afresh. */
  get nodesForgotten(): number {
    return this.#nodesForgotten;
  }
}
