/**
 * Suites that need a server binary (mosquitto, postgres, chromium) may skip where it is
 * missing locally, but never under CI=true: there a missing binary fails the run.
 */
import { accessSync, constants } from 'node:fs';

export function findBinary(name: string, candidates: readonly string[]): string | undefined {
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // try the next place
    }
  }
  return undefined;
}

/** The path of a binary; undefined (skip) locally when missing; throws under CI=true. */
export function requireBinary(name: string, candidates: readonly string[]): string | undefined {
  const found = findBinary(name, candidates);
  if (!found && process.env.CI === 'true') {
    throw new Error(`${name} is required under CI=true but none of ${candidates.join(', ')} exists: .ci/run must install it`);
  }
  return found;
}

export const MOSQUITTO = requireBinary('mosquitto', ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto']);
export const MOSQUITTO_PASSWD = requireBinary('mosquitto_passwd', ['/usr/bin/mosquitto_passwd', '/usr/local/bin/mosquitto_passwd']);
