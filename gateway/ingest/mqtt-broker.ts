/**
 * The embedded MQTT broker (aedes). Devices authenticate with their provisioned
 * credentials (client id = username = device id) and may publish only to their own
 * usage topic and subscribe only to their own rejection topic.
 *
 * Ack after durable: aedes writes the QoS 1 PUBACK right after `authorizePublish`
 * calls back and before `published` runs (aedes lib/handlers/publish.js), so the
 * durable write happens inside `authorizePublish`. A message that cannot be stored
 * gets no PUBACK (the connection is closed and the device resends); a message that
 * can never be valid is acknowledged, refused, and explained on the rejection topic,
 * so the device does not resend it forever.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { Aedes, type AuthenticateError, type Client, type PublishPacket } from 'aedes';
import type { Logger } from 'pino';
import { rejectionTopic, usageTopic } from '../../protocol/usage-message.ts';
import { JournalFullError } from '../ledger/journal.ts';
import type { DeviceEntry, DeviceRegistry } from './device-registry.ts';
import type { Intake } from './intake.ts';
import type { RejectReason, RejectionLog } from './rejection-log.ts';

export interface MqttBrokerOptions {
  host: string;
  port: number;
  registry: DeviceRegistry;
  intake: Intake;
  rejections: RejectionLog;
  logger: Logger;
  connectionsMax: number;
}

export interface MqttBroker {
  port: number;
  connectedDevices(): string[];
  close(): Promise<void>;
}

// MQTT 3.1.1 §3.2.2.3 CONNACK return codes.
const BAD_USERNAME_OR_PASSWORD = 4;
const NOT_AUTHORIZED = 5;

function authError(message: string, returnCode: number): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

export async function startMqttBroker(options: MqttBrokerOptions): Promise<MqttBroker> {
  const { registry, intake, rejections, logger } = options;
  const devices = new WeakMap<Client, DeviceEntry>();

  const refuse = (client: Client, topic: string, reason: RejectReason, detail: string): void => {
    rejections.add({ at: new Date().toISOString(), deviceId: client.id, topic, reason, detail });
    logger.warn({ deviceId: client.id, topic, reason }, detail);
  };

  const broker = await Aedes.createBroker({
    heartbeatInterval: 60_000,
    authenticate(client, username, password, done) {
      const deviceId = username ?? '';
      if (!password || deviceId !== client.id) {
        refuse(client, '', 'auth_failed', 'client id and username must both be the device id, with a password');
        return done(authError('bad credentials', deviceId === client.id ? BAD_USERNAME_OR_PASSWORD : NOT_AUTHORIZED), false);
      }
      registry.authenticate(deviceId, password.toString('utf8')).then((device) => {
        if (!device) {
          refuse(client, '', 'auth_failed', `wrong password or unknown device ${deviceId}`);
          return done(authError('bad credentials', BAD_USERNAME_OR_PASSWORD), false);
        }
        devices.set(client, device);
        done(null, true);
      }, (error: unknown) => done(authError(`authentication failed: ${(error as Error).message}`, NOT_AUTHORIZED), false));
    },
    authorizeSubscribe(client, subscription, done) {
      if (subscription.topic !== rejectionTopic(client.id)) {
        refuse(client, subscription.topic, 'subscribe_not_allowed', `device ${client.id} may subscribe only to ${rejectionTopic(client.id)}`);
        return done(new Error('subscription not allowed'));
      }
      done(null, subscription);
    },
    authorizePublish(client, packet, done) {
      if (!client) return done(new Error('no anonymous publishing'));
      const device = devices.get(client);
      if (!device || packet.topic !== usageTopic(device.id)) {
        refuse(client, packet.topic, 'topic_not_allowed', `device ${client.id} may publish only to ${usageTopic(client.id)}`);
        return done(new Error('topic not allowed')); // aedes closes the connection (MQTT-3.3.5-2)
      }
      receiveUsage(client, device, packet).then(() => done(null), (error: unknown) => {
        if (error instanceof JournalFullError) refuse(client, packet.topic, 'intake_overloaded', error.message);
        else logger.error({ err: error, deviceId: device.id }, 'usage not stored; not acknowledging');
        done(error as Error); // no PUBACK: the device keeps the message and sends it again
      });
    },
  });

  const notify = (client: Client, body: Record<string, unknown>): void => {
    broker.publish({ cmd: 'publish', topic: rejectionTopic(client.id), payload: Buffer.from(JSON.stringify(body)), qos: 1, retain: false, dup: false }, () => {});
  };

  async function receiveUsage(client: Client, device: DeviceEntry, packet: PublishPacket): Promise<void> {
    if (packet.qos === 0) {
      refuse(client, packet.topic, 'qos_not_supported', 'usage must be published with QoS 1 or 2: QoS 0 cannot be acknowledged');
      notify(client, { reason: 'qos_not_supported', detail: 'publish usage with QoS 1' });
      return;
    }
    const result = await intake.submit(device, packet.topic, packet.payload as Buffer);
    if (result.status === 'rejected') {
      let seq: unknown;
      try {
        seq = (JSON.parse((packet.payload as Buffer).toString('utf8')) as { seq?: unknown }).seq;
      } catch {
        seq = undefined;
      }
      notify(client, { reason: result.reason, field: result.field, detail: result.detail, seq, messageId: packet.messageId });
    }
  }

  broker.on('clientError', (client, error) => logger.debug({ deviceId: client.id, err: error.message }, 'client error'));
  broker.on('connectionError', (client, error) => logger.debug({ deviceId: client.id, err: error.message }, 'connection error'));

  const server: Server = createServer(broker.handle as (socket: import('node:net').Socket) => void);
  server.maxConnections = options.connectionsMax;
  server.listen(options.port, options.host);
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  logger.info({ port, host: options.host }, 'MQTT broker listening');

  return {
    port,
    connectedDevices: () => Object.keys((broker as unknown as { clients: Record<string, Client> }).clients),
    async close() {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
