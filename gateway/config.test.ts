import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { demoGatewayConfig } from '../cli/demo-setup.ts';
import { ConfigError, loadConfig, parseConfig } from './config.ts';

const base = (): Record<string, unknown> => {
  const raw = demoGatewayConfig({ mqtt: 1883, http: 8080, bank: 8090 }, '* * * * *');
  return { ...raw, settlement: { ...(raw.settlement as object), bank: { url: 'http://127.0.0.1:8090/open-banking/v4.0/pisp', token: 't' } } };
};

describe('gateway config', () => {
  it('fills defaults and freezes the result', () => {
    const config = parseConfig(base());
    expect(config.limits.intakeBatchMax).toBe(500);
    expect(config.http.host).toBe('127.0.0.1');
    expect(Object.isFrozen(config.limits)).toBe(true);
  });

  it('names the key of a price that cannot be exact', () => {
    const raw = base();
    (raw.tariffs as Record<string, { unitPrice: string }>).cycles!.unitPrice = '0.0000000001';
    expect(() => parseConfig(raw)).toThrow(/tariffs\.cycles\.unitPrice: must be a decimal string with at most 9 decimals/);
  });

  it('reads the example deployment config with its tariff schedules', () => {
    const config = loadConfig({ file: new URL('../deploy/gateway.json', import.meta.url).pathname, env: { MB_BANK_TOKEN: 't' } });
    expect(config.tariffs.distance?.versions?.[0]?.overrides['northline-logistics']).toBeDefined();
  });

  it('reads the docker-compose config: external broker, uplink to cloud-sync, secrets from files the compose file mounts', () => {
    const config = loadConfig({ file: new URL('../deploy/gateway-compose.json', import.meta.url).pathname, env: {} });
    expect(config.mqtt.mode).toBe('external');
    expect(config.uplink.url).toBe('http://cloud-sync:8070');
    const compose = readFileSync(new URL('../docker-compose.yml', import.meta.url), 'utf8');
    for (const service of ['mosquitto:', 'postgres:', 'cloud-sync:', 'gateway:', 'bank-sandbox:', 'firmware-sim:']) expect(compose).toContain(`\n  ${service}`);
    for (const secret of [config.mqtt.external!.passwordFile!, config.settlement.bank.tokenFile!]) expect(compose).toContain(`${path.basename(secret)}:\n    file: ./deploy/secrets/${path.basename(secret)}`);
    expect(compose).toContain('/config/gateway-compose.json');
  });

  it('names the field of a tariff schedule that cannot be priced', () => {
    const raw = base();
    (raw.tariffs as Record<string, unknown>).cycles = { versions: [{ version: '1', effectiveFrom: '2026-01-01T00:00:00Z', currency: 'EUR', rule: { type: 'graduated', tiers: [{ upTo: '10', unitPrice: '0.1' }, { upTo: '5', unitPrice: '0.2' }, { upTo: null, unitPrice: '0.05' }] } }] };
    expect(() => parseConfig(raw)).toThrow(/tariffs\.cycles\.versions\.0: .*tiers\.1\.upTo/);
    (raw.tariffs as Record<string, unknown>).cycles = { versions: [{ version: '1', effectiveFrom: '2026-01-01T00:00:00Z', currency: 'EUR', priceUnit: 'mile', rule: { type: 'per_unit', unitPrice: '0.1' } }] };
    expect(() => parseConfig(raw)).toThrow(/tariffs\.cycles\.versions\.0: .*priceUnit/);
    (raw.tariffs as Record<string, unknown>).cycles = { unitPrice: '0.1', currency: 'EUR', versions: [] };
    expect(() => parseConfig(raw)).toThrow(/tariffs\.cycles/);
  });

  it('refuses to start without bank credentials rather than use a default', () => {
    const raw = base();
    (raw.settlement as { bank: Record<string, unknown> }).bank = { url: 'http://127.0.0.1:8090/' };
    expect(() => parseConfig(raw)).toThrow(ConfigError);
    expect(() => parseConfig(raw)).toThrow(/settlement\.bank\.token/);
  });

  it('refuses unknown keys, naming them', () => {
    expect(() => parseConfig({ ...base(), colour: 'blue' })).toThrow(/colour/);
  });

  it('refuses a meter without a tariff', () => {
    const raw = base();
    (raw.meters as Record<string, unknown>).hours = { unit: 'h' };
    expect(() => parseConfig(raw)).toThrow(/tariffs\.hours: meter hours has no tariff/);
  });

  it('takes overrides from MB_ environment variables and refuses a non-numeric port', () => {
    const env = { MB_CONFIG: undefined, MB_BANK_TOKEN: 'from-env', MB_MQTT_PORT: '2883' };
    const raw = base();
    delete (raw.settlement as { bank: Record<string, unknown> }).bank.token;
    const file = `/tmp/mb-config-${process.pid}.json`;
    writeFileSync(file, JSON.stringify(raw));
    const config = loadConfig({ file, env });
    expect(config.mqtt.port).toBe(2883);
    expect(config.settlement.bank.token).toBe('from-env');
    expect(() => loadConfig({ file, env: { ...env, MB_MQTT_PORT: 'abc' } })).toThrow(/MB_MQTT_PORT="abc" is not a whole number/);
  });
});

describe('gateway config schedule', () => {
  it('refuses a seal schedule that is not a cron expression', () => {
    const raw = base();
    (raw.settlement as Record<string, unknown>).sealCron = 'every minute';
    expect(() => parseConfig(raw)).toThrow(/settlement\.sealCron: must be a node-cron expression/);
  });

  const withPayerSettlement = (settlement: Record<string, unknown>): Record<string, unknown> => {
    const raw = base();
    (raw.payers as Record<string, Record<string, unknown>>)['northline-logistics']!.settlement = settlement;
    return raw;
  };

  it('takes a payer\'s own settlement schedule and thresholds; others default to sealCron and timezone', () => {
    const config = parseConfig(withPayerSettlement({ cron: '30 1 * * *', timeZone: 'Europe/London', settleAtBalance: '250.00', minimumPayment: '5' }));
    expect(config.payers['northline-logistics']!.settlement).toEqual({ cron: '30 1 * * *', timeZone: 'Europe/London', settleAtBalance: '250.00', minimumPayment: '5' });
    expect(config.payers['acme-plant']!.settlement).toBeUndefined();
    expect(Object.isFrozen(config.payers['northline-logistics']!.settlement)).toBe(true);
  });

  it('refuses a payer schedule that is not a cron expression, naming the field', () => {
    expect(() => parseConfig(withPayerSettlement({ cron: '61 * * * *' }))).toThrow(/payers\.northline-logistics\.settlement\.cron: must be a node-cron expression/);
  });

  it('refuses a time zone Intl does not know, naming the field', () => {
    expect(() => parseConfig(withPayerSettlement({ timeZone: 'Europe/Atlantis' }))).toThrow(/payers\.northline-logistics\.settlement\.timeZone: must be an IANA time zone/);
    const raw = base();
    (raw.settlement as Record<string, unknown>).timezone = 'GMT+25';
    expect(() => parseConfig(raw)).toThrow(/settlement\.timezone: must be an IANA time zone/);
  });

  it('refuses a negative or inexact threshold, naming the field', () => {
    expect(() => parseConfig(withPayerSettlement({ minimumPayment: '-5.00' }))).toThrow(/payers\.northline-logistics\.settlement\.minimumPayment: must be a non-negative decimal/);
    expect(() => parseConfig(withPayerSettlement({ settleAtBalance: '-1' }))).toThrow(/payers\.northline-logistics\.settlement\.settleAtBalance: must be a non-negative decimal/);
    expect(() => parseConfig(withPayerSettlement({ settleAtBalance: '10.001' }))).toThrow(/payers\.northline-logistics\.settlement\.settleAtBalance: "10\.001" has 3 decimal places, at most 2/);
  });

  it('refuses thresholds that could never pay: settleAtBalance of 0 or below minimumPayment', () => {
    expect(() => parseConfig(withPayerSettlement({ settleAtBalance: '0' }))).toThrow(/payers\.northline-logistics\.settlement\.settleAtBalance: must be above 0/);
    expect(() => parseConfig(withPayerSettlement({ settleAtBalance: '4.99', minimumPayment: '5.00' }))).toThrow(/payers\.northline-logistics\.settlement\.settleAtBalance: 4\.99 is below minimumPayment 5\.00/);
    expect(() => parseConfig(withPayerSettlement({ speed: 'fast' }))).toThrow(/payers\.northline-logistics\.settlement.*speed/);
  });
});
