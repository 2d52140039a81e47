import { describe, expect, it } from 'vitest';
import { SparkplugDataType as T } from './datatype.ts';
import { decodeSparkplugPayload, type SparkplugPayload } from './payload.ts';
import { encodePayload, type PayloadSpec } from './payload-encoder.ts';
import { SparkplugSequenceTracker, type SparkplugSequenceEvent } from './sequence.ts';
import { parseSparkplugTopic, type SparkplugTopic } from './topic.ts';

const T0 = Date.parse('2026-11-27T15:00:00.000Z');

function topic(text: string): SparkplugTopic {
  const parsed = parseSparkplugTopic(text);
  if (!parsed.ok) throw new Error(parsed.detail);
  return parsed.topic;
}

function payload(spec: PayloadSpec): SparkplugPayload {
  const decoded = decodeSparkplugPayload(encodePayload(spec));
  if (!decoded.ok) throw new Error(decoded.detail);
  return decoded.payload;
}

const bdSeqMetric = (bdSeq: number) => ({ name: 'bdSeq', datatype: T.Int64, timestamp: T0, value: { long: bdSeq } });

/** Feeds messages to one tracker: `type` alone, with `seq`, or with a bdSeq for births and deaths. */
function feed(tracker: SparkplugSequenceTracker, messages: Array<[string, number | undefined, number?]>): SparkplugSequenceEvent[] {
  const events: SparkplugSequenceEvent[] = [];
  messages.forEach(([type, seq, bdSeq], i) => {
    const device = type.startsWith('D') ? '/press' : '';
    const spec: PayloadSpec = { timestamp: T0, ...(seq === undefined ? {} : { seq }), metrics: bdSeq === undefined ? [] : [bdSeqMetric(bdSeq)] };
    events.push(...tracker.observe(topic(`spBv1.0/plant/${type}/line${device}`), payload(spec), T0 + i));
  });
  return events;
}

const kinds = (events: SparkplugSequenceEvent[]) => events.map((e) => e.kind);

describe('SparkplugSequenceTracker seq', () => {
  it('follows seq across NBIRTH, DBIRTH, NDATA, DDATA and DDEATH without reporting anything but the birth', () => {
    const tracker = new SparkplugSequenceTracker();
    const events = feed(tracker, [['NBIRTH', 0, 0], ['DBIRTH', 1], ['NDATA', 2], ['DDATA', 3], ['DDEATH', 4]]);
    expect(kinds(events)).toEqual(['birth']);
    expect(tracker.status('plant/line')).toMatchObject({ state: 'online', bdSeq: 0, expectedSeq: 5, gaps: 0 });
  });

  it('reports a gap with the seq expected, the seq received and when', () => {
    const tracker = new SparkplugSequenceTracker();
    const events = feed(tracker, [['NBIRTH', 0, 0], ['DDATA', 1], ['DDATA', 4], ['DDATA', 5]]);
    expect(events.filter((e) => e.kind === 'gap')).toEqual([{ kind: 'gap', node: 'plant/line', type: 'DDATA', expected: 2, got: 4, missed: 2, at: '2026-11-27T15:00:00.002Z' }]);
    expect(tracker.status('plant/line')!.gaps).toBe(1);
  });

  it('wraps from 255 to 0 without a gap', () => {
    const events = feed(new SparkplugSequenceTracker(), [['NBIRTH', 254, 3], ['DDATA', 255], ['DDATA', 0], ['DDATA', 1]]);
    expect(kinds(events)).toEqual(['birth']);
  });

  it('reports 255 followed by 1 as a gap where 0 was expected', () => {
    const events = feed(new SparkplugSequenceTracker(), [['NBIRTH', 254, 3], ['DDATA', 255], ['DDATA', 1]]);
    expect(events[1]).toMatchObject({ kind: 'gap', expected: 0, got: 1, missed: 1 });
  });

  it('reports a redelivered or reordered message as late and keeps counting from the newest', () => {
    const events = feed(new SparkplugSequenceTracker(), [['NBIRTH', 0, 0], ['DDATA', 1], ['DDATA', 2], ['DDATA', 2], ['DDATA', 3]]);
    expect(kinds(events)).toEqual(['birth', 'late']);
    expect(events[1]).toMatchObject({ expected: 3, got: 2 });
  });

  it('reports a missing seq and one above 255 as invalid, then resynchronises', () => {
    const events = feed(new SparkplugSequenceTracker(), [['NBIRTH', 0, 0], ['DDATA', undefined], ['DDATA', 300], ['DDATA', 7], ['DDATA', 8]]);
    expect(events.slice(1)).toEqual([
      expect.objectContaining({ kind: 'invalid_seq', got: null }),
      expect.objectContaining({ kind: 'invalid_seq', got: '300' }),
    ]);
  });

  it('starts counting from the first message of a node whose birth it missed, and says so once', () => {
    const tracker = new SparkplugSequenceTracker();
    const events = feed(tracker, [['DDATA', 40], ['DDATA', 41], ['NDATA', 42]]);
    expect(kinds(events)).toEqual(['before_birth']);
    expect(tracker.status('plant/line')).toMatchObject({ state: 'unknown', expectedSeq: 43 });
  });

  it('does not report data after a birth as before_birth', () => {
    expect(kinds(feed(new SparkplugSequenceTracker(), [['NBIRTH', 0, 1], ['DDATA', 1]]))).toEqual(['birth']);
  });

  it('ignores commands and host STATE messages, which are not from the edge node', () => {
    const tracker = new SparkplugSequenceTracker();
    expect(tracker.observe(topic('spBv1.0/plant/NCMD/line'), payload({}), T0)).toEqual([]);
    expect(tracker.observe(topic('spBv1.0/STATE/scada'), payload({}), T0)).toEqual([]);
    expect(tracker.status('plant/line')).toBeUndefined();
  });
});

describe('SparkplugSequenceTracker bdSeq', () => {
  it('reports a death whose bdSeq matches the birth, then the next birth as a rebirth after it', () => {
    const tracker = new SparkplugSequenceTracker();
    const events = feed(tracker, [['NBIRTH', 0, 0], ['NDEATH', undefined, 0], ['NBIRTH', 0, 1]]);
    expect(events).toEqual([
      { kind: 'birth', node: 'plant/line', bdSeq: 0, at: '2026-11-27T15:00:00.000Z' },
      { kind: 'death', node: 'plant/line', bdSeq: 0, at: '2026-11-27T15:00:00.001Z' },
      { kind: 'rebirth', node: 'plant/line', bdSeq: 1, previousBdSeq: 0, previousState: 'offline', at: '2026-11-27T15:00:00.002Z' },
    ]);
    expect(tracker.status('plant/line')).toMatchObject({ state: 'online', bdSeq: 1, rebirths: 1 });
  });

  it('ignores a death whose bdSeq belongs to an earlier session, and keeps the node online', () => {
    const tracker = new SparkplugSequenceTracker();
    const events = feed(tracker, [['NBIRTH', 0, 4], ['NBIRTH', 0, 5], ['NDEATH', undefined, 4], ['DDATA', 1]]);
    expect(kinds(events)).toEqual(['birth', 'rebirth', 'stale_death']);
    expect(events[1]).toMatchObject({ bdSeq: 5, previousBdSeq: 4, previousState: 'online' });
    expect(events[2]).toMatchObject({ expected: 5, got: 4 });
    expect(tracker.status('plant/line')!.state).toBe('online');
  });

  it('reports a rebirth in the same session (a Rebirth command) with an unchanged bdSeq and restarts seq', () => {
    const events = feed(new SparkplugSequenceTracker(), [['NBIRTH', 0, 2], ['DDATA', 1], ['NBIRTH', 9, 2], ['DDATA', 10]]);
    expect(events[1]).toMatchObject({ kind: 'rebirth', bdSeq: 2, previousBdSeq: 2, previousState: 'online' });
    expect(events).toHaveLength(2);
  });

  it('ignores quietly the will message that repeats an NDEATH already received', () => {
    expect(kinds(feed(new SparkplugSequenceTracker(), [['NBIRTH', 0, 2], ['NDEATH', undefined, 2], ['NDEATH', undefined, 2]]))).toEqual(['birth', 'death']);
  });

  it('reports an NDEATH without bdSeq as stale: it cannot be matched to the session', () => {
    expect(kinds(feed(new SparkplugSequenceTracker(), [['NBIRTH', 0, 2], ['NDEATH', undefined]]))).toEqual(['birth', 'stale_death']);
  });
});

describe('SparkplugSequenceTracker bounds', () => {
  it('keeps at most nodesMax nodes, forgetting the least recently seen', () => {
    const tracker = new SparkplugSequenceTracker({ nodesMax: 2 });
    for (const node of ['a', 'b', 'a', 'c']) tracker.observe(topic(`spBv1.0/g/NDATA/${node}`), payload({ seq: 0 }), T0);
    expect(tracker.status('g/a')).toBeDefined();
    expect(tracker.status('g/b')).toBeUndefined();
    expect(tracker.status('g/c')).toBeDefined();
    expect(tracker.nodesForgotten).toBe(1);
  });

  it('keeps at most eventsKept events, newest first, and counts them all', () => {
    const tracker = new SparkplugSequenceTracker({ eventsKept: 2 });
    feed(tracker, [['NBIRTH', 0, 0], ['DDATA', 5], ['DDATA', 9]]);
    expect(kinds(tracker.recentEvents())).toEqual(['gap', 'gap']);
    expect(tracker.recentEvents(1)[0]).toMatchObject({ got: 9 });
    expect(Object.fromEntries(tracker.countsByKind())).toEqual({ birth: 1, gap: 2 });
  });

  it('refuses limits that are not positive integers', () => {
    expect(() => new SparkplugSequenceTracker({ nodesMax: 0 })).toThrow(/nodesMax: must be an integer from 1/);
    expect(() => new SparkplugSequenceTracker({ eventsKept: 1.5 })).toThrow(RangeError);
  });
});
