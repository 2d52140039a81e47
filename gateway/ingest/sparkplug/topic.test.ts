import { describe, expect, it } from 'vitest';
import { edgeNodeKey, isSparkplugId, parseSparkplugTopic, sparkplugSubscriptions, type SparkplugTopicResult } from './topic.ts';

function refusal(result: SparkplugTopicResult): { reason: string; detail: string } {
  if (result.ok) throw new Error(`expected a refusal, got ${JSON.stringify(result.topic)}`);
  return { reason: result.reason, detail: result.detail };
}

describe('parseSparkplugTopic', () => {
  it('parses a DDATA topic with its device', () => {
    expect(parseSparkplugTopic('spBv1.0/Plant 1/DDATA/press-line/press 7')).toEqual({ ok: true, topic: { type: 'DDATA', group: 'Plant 1', node: 'press-line', device: 'press 7' } });
  });

  it('refuses a DDATA topic without a device', () => {
    expect(refusal(parseSparkplugTopic('spBv1.0/plant/DDATA/line'))).toEqual({ reason: 'malformed_topic', detail: expect.stringMatching(/DDATA topics have 5 levels \(with a device id\), this one has 4/) });
  });

  it('parses an NBIRTH topic, which names no device', () => {
    expect(parseSparkplugTopic('spBv1.0/plant/NBIRTH/line')).toEqual({ ok: true, topic: { type: 'NBIRTH', group: 'plant', node: 'line' } });
  });

  it('refuses an NBIRTH topic that names a device', () => {
    expect(refusal(parseSparkplugTopic('spBv1.0/plant/NBIRTH/line/press')).detail).toMatch(/NBIRTH topics have 4 levels \(without a device id\)/);
  });

  it('parses every Sparkplug message type', () => {
    for (const type of ['NBIRTH', 'NDEATH', 'NDATA', 'NCMD']) expect(parseSparkplugTopic(`spBv1.0/g/${type}/n`).ok).toBe(true);
    for (const type of ['DBIRTH', 'DDEATH', 'DDATA', 'DCMD']) expect(parseSparkplugTopic(`spBv1.0/g/${type}/n/d`).ok).toBe(true);
  });

  it('refuses a message type the spec does not define, and a lower-case one', () => {
    expect(refusal(parseSparkplugTopic('spBv1.0/g/NSTATUS/n')).reason).toBe('unknown_message_type');
    expect(refusal(parseSparkplugTopic('spBv1.0/g/ddata/n/d')).reason).toBe('unknown_message_type');
  });

  it('parses the host application STATE topic of Sparkplug 3.0', () => {
    expect(parseSparkplugTopic('spBv1.0/STATE/scada-1')).toEqual({ ok: true, topic: { type: 'STATE', hostId: 'scada-1' } });
  });

  it('refuses the Sparkplug 2.2 STATE topic, which is outside the namespace', () => {
    expect(refusal(parseSparkplugTopic('STATE/scada-1')).reason).toBe('not_sparkplug');
  });

  it('refuses other namespaces, including Sparkplug A', () => {
    expect(refusal(parseSparkplugTopic('spAv1.0/g/DDATA/n/d')).reason).toBe('not_sparkplug');
    expect(refusal(parseSparkplugTopic('meterbridge/v1/devices/cnc-1/usage')).reason).toBe('not_sparkplug');
  });

  it('refuses empty ids and the reserved characters + and #', () => {
    expect(refusal(parseSparkplugTopic('spBv1.0//DDATA/n/d')).detail).toMatch(/group id is empty/);
    expect(refusal(parseSparkplugTopic('spBv1.0/g/DDATA/n/')).detail).toMatch(/device id is empty/);
    expect(refusal(parseSparkplugTopic('spBv1.0/g/DDATA/+/d')).detail).toMatch(/edge node id "\+" contains/);
    expect(refusal(parseSparkplugTopic('spBv1.0/g#/NDATA/n')).detail).toMatch(/group id "g#" contains/);
    expect(refusal(parseSparkplugTopic('spBv1.0/g/NDATA/n\u0000')).reason).toBe('malformed_topic');
    expect(refusal(parseSparkplugTopic('spBv1.0/g/NDATA/\ud800')).reason).toBe('malformed_topic');
  });

  it('refuses topics with too few levels or over the length limit', () => {
    expect(refusal(parseSparkplugTopic('spBv1.0/g/NDATA')).reason).toBe('malformed_topic');
    expect(refusal(parseSparkplugTopic('spBv1.0')).reason).toBe('malformed_topic');
    expect(refusal(parseSparkplugTopic(`spBv1.0/g/NDATA/${'n'.repeat(1_100)}`)).detail).toMatch(/at most 1024 allowed/);
  });
});

describe('sparkplugSubscriptions', () => {
  it('subscribes to every message that carries seq or bdSeq, once per group', () => {
    expect(sparkplugSubscriptions(['plant', 'plant'])).toEqual([
      'spBv1.0/plant/NBIRTH/+',
      'spBv1.0/plant/NDEATH/+',
      'spBv1.0/plant/NDATA/+',
      'spBv1.0/plant/DBIRTH/+/+',
      'spBv1.0/plant/DDEATH/+/+',
      'spBv1.0/plant/DDATA/+/+',
    ]);
  });

  it('refuses a group that would be a wildcard', () => {
    expect(() => sparkplugSubscriptions(['#'])).toThrow(RangeError);
  });

  it('keys edge nodes by group and node, and accepts ids with spaces and unicode', () => {
    expect(edgeNodeKey('g', 'n')).toBe('g/n');
    expect(isSparkplugId('Presse Süd 7')).toBe(true);
  });

  it('does not accept ids with a slash', () => {
    expect(isSparkplugId('a/b')).toBe(false);
  });
});
