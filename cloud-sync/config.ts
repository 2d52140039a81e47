/**
 * cloud-sync's one config schema: filled with defaults, validated, frozen. A bad value
 * fails at start naming the key. The admin token has no default: without one the fleet
 * API would be open or unusable, so cloud-sync refuses to start.
 */
import { z } from 'zod';
import { ALERTS_PER_GATEWAY_MAX } from './alerts.ts';
import { HEALTH_REPORTS_PER_GATEWAY_MAX } from './ingest.ts';

export const ADMIN_TOKEN_CHARS_MIN = 16;

export const cloudSyncConfigSchema = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65_535).default(8070),
  /** PGlite's folder; ignored when databaseUrl is set; undefined with neither: in memory. */
  dataDir: z.string().min(1).optional(),
  /** A real PostgreSQL: postgres://user:password@host:port/database. */
  databaseUrl: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').optional(),
  adminToken: z.string().min(ADMIN_TOKEN_CHARS_MIN, `must be at least ${ADMIN_TOKEN_CHARS_MIN} characters (e.g. openssl rand -hex 32)`),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** PostgreSQL connections per instance; each upload in progress holds one. */
  connectionsMax: z.number().int().min(1).max(200).default(10),
  alertsPerGatewayMax: z.number().int().min(10).max(1_000_000).default(ALERTS_PER_GATEWAY_MAX),
  healthReportsPerGatewayMax: z.number().int().min(1).max(100_000).default(HEALTH_REPORTS_PER_GATEWAY_MAX),
});

export type CloudSyncConfig = Readonly<z.output<typeof cloudSyncConfigSchema>>;

export function parseCloudSyncConfig(input: unknown): CloudSyncConfig {
  const result = cloudSyncConfigSchema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new RangeError(`Cannot start cloud-sync: ${issue.path.join('.') || 'config'}: ${issue.message}`);
  }
  return Object.freeze(result.data);
}

/** The URL with its password replaced, for logs and the start-up line. */
export function redactedUrl(url: string): string {
  if (!URL.canParse(url)) return '(unparsable URL)';
  const parsed = new URL(url);
  if (parsed.password !== '') parsed.password = 'redacted';
  return parsed.toString();
}
