/**
 * The embedded MQTT broker (aedes). Devices authenticate with their provisioned
 * credentials (client id = username = device id) and may publish only to their own
 * usage topic and subscribe only to their own rejection topic.
 *
 * Ack after durable: QoS 1 usage on the device's own topic is stored on a pipelined
 * path that writes its PUBACK when the record is durable (see pipelineUsage). Anything
 * else aedes handles itself; it writes a QoS 1 PUBACK right after `authorizePublish`
 * calls back (aedes lib/handlers/publish.js), so there the durable write happens inside
 * `authorizePublish`. A message that cannot be stored
 * gets no PUBACK (the connection is closed and the device resends); a message that
 * can never be valid is acknowledged, refused, and explained on the rejection topic,
 * so the device does not resend it forever.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, TLSSocket } from 'node:tls';
import { Aedes, type AuthenticateError, type Client, type PublishPacket } from 'aedes';
import type { Logger } from 'pino';
import { rejectionTopic, usageTopic } from '../../protocol/usage-message.ts';
import { JournalFullError } from '../ledger/journal.ts';
import { guardPacketSize } from './packet-size-guard.ts';
import { SPARKPLUG_TOPIC_PREFIX, type SparkplugIntake } from './sparkplug-intake.ts';
import { StorageLowError } from './storage-guard.ts';
import { OutboxFullError } from '../uplink/outbox.ts';
import type { DeviceEntry, DeviceRegistry } from './device-registry.ts';
import type { Intake } from './intake.ts';
import type { RejectReason, RejectionLog } from './rejection-log.ts';

export interface BrokerLimits {
  packetBytesMax: number;
  topicLevelsMax: number;
  deviceRatePerSMax: number;
  deviceInflightMax: number;
  connectionsPerIpMax: number;
}

export interface MqttBrokerOptions {
  host: string;
  port: number;
  registry: DeviceRegistry;
  intake: Intake;
  rejections: RejectionLog;
  logger: Logger;
  connectionsMax: number;
  limits: BrokerLimits;
  /** Sparkplug B edge nodes, when mappings are configured. */
  sparkplug?: SparkplugIntake;
  /** PEM material: serve MQTT over TLS; with `ca` and `clientCertRequired`, mutual TLS. */
  tls?: { cert: string; key: string; ca?: string; clientCertRequired: boolean };
}

/** The device id a verified client certificate names (its subject CN), if any. */
function certifiedDeviceId(client: Client): string | undefined {
  const conn = (client as unknown as { conn?: TLSSocket }).conn;
  if (!conn || !(conn instanceof TLSSocket) || !conn.authorized) return undefined;
  const cn = conn.getPeerCertificate().subject?.CN;
  return typeof cn === 'string' ? cn : undefined;
}

/** Per connection: a token bucket for the message rate and a count of messages in flight. */
interface DeviceSession {
  device: DeviceEntry;
  /** The device's usage topic, built once per connection. */
  usageTopic: string;
  tokens: number;
  refilledAtMs: number;
  inflight: number;
  /** Its socket is corked until the next tick (corkUntilNextTick). */
  corked: boolean;
}

/** A rate-limited message waits at most this long for a token before it is refused unacknowledged. */
const RATE_WAIT_MS_MAX = 2_000;

export interface MqttBroker {
  port: number;
  connectedDevices(): string[];
  /** Closes a device's connection, if it has one (after its password was rotated or revoked). */
  disconnect(deviceId: string): void;
  close(): Promise<void>;
}

/**
 * A group commit releases hundreds of acks in one burst of microtasks; corking the
 * socket until the next tick sends each connection's acks in one write instead of one
 * syscall each. Once per connection and tick, not once per ack.
 */
function corkUntilNextTick(client: Client, session: DeviceSession): void {
  if (session.corked) return;
  const conn = (client as unknown as { conn?: Socket }).conn;
  if (!conn || conn.destroyed) return;
  conn.cork();
  session.corked = true;
  process.nextTick(() => {
    session.corked = false;
    conn.uncork();
  });
}

class RateLimitedError extends Error {
  readonly code = 'MB_RATE_LIMITED';
}

/** MQTT 3.1.1 §3.4: PUBACK, fixed header byte (type 4, no flags); remaining length 2, then the packet id. */
const PUBACK_HEADER = 0x40;

// MQTT 3.1.1 §3.2.2.3 CONNACK return codes.
const BAD_USERNAME_OR_PASSWORD = 4;
const NOT_AUTHORIZED = 5;

function authError(message: string, returnCode: number): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

export async function startMqttBroker(options: MqttBrokerOptions): Promise<MqttBroker> {
  const { registry, intake, rejections, logger } = options;
  const { limits } = options;
  const sessions = new WeakMap<Client, DeviceSession>();

  const refuse = (client: Client, topic: string, reason: RejectReason, detail: string): void => {
    rejections.add({ at: new Date().toISOString(), deviceId: client.id, topic, reason, detail });
    logger.warn({ deviceId: client.id, topic, reason }, detail);
  };

  const broker = await Aedes.createBroker({
    heartbeatInterval: 60_000,
    maxTopicLevels: limits.topicLevelsMax,
    authenticate(client, username, password, done) {
      const deviceId = username ?? '';
      if (!password || deviceId !== client.id) {
        refuse(client, '', 'auth_failed', 'client id and username must both be the device id, with a password');
        return done(authError('bad credentials', deviceId === client.id ? BAD_USERNAME_OR_PASSWORD : NOT_AUTHORIZED), false);
      }
      if (options.tls?.ca) {
        // Mutual TLS: a certificate, when presented, must name this very device.
        const certified = certifiedDeviceId(client);
        if ((certified === undefined && options.tls.clientCertRequired) || (certified !== undefined && certified !== deviceId)) {
          refuse(client, '', 'auth_failed', `client certificate names ${certified ?? 'nobody'}, not ${deviceId}`);
          return done(authError('certificate does not match the device', NOT_AUTHORIZED), false);
        }
      }
      registry.authenticate(deviceId, password.toString('utf8')).then((device) => {
        if (!device) {
          refuse(client, '', 'auth_failed', `wrong password or unknown device ${deviceId}`);
          return done(authError('bad credentials', BAD_USERNAME_OR_PASSWORD), false);
        }
        sessions.set(client, { device, usageTopic: usageTopic(device.id), tokens: limits.deviceRatePerSMax, refilledAtMs: Date.now(), inflight: 0, corked: false });
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
      const session = sessions.get(client);
      if (session && options.sparkplug && packet.topic.startsWith(SPARKPLUG_TOPIC_PREFIX) && options.sparkplug.allowed(session.device, packet.topic)) {
        // Durable before the ack, as for usage messages.
        options.sparkplug.receive(session.device, packet.topic, packet.payload as Buffer).then(() => done(null), (error: unknown) => done(error as Error));
        return;
      }
      if (!session || packet.topic !== session.usageTopic) {
        refuse(client, packet.topic, 'topic_not_allowed', `device ${client.id} may publish only to ${usageTopic(client.id)}`);
        return done(new Error('topic not allowed')); // aedes closes the connection (MQTT-3.3.5-2)
      }
      storeUsage(client, session, packet).then(() => done(null), (error: unknown) => done(error as Error));
    },
  });

  /**
   * Stores one usage message; resolves once it is durable (or was refused for good and
   * explained), rejects when it must not be acknowledged (the device sends it again).
   */
  function storeUsage(client: Client, session: DeviceSession, packet: PublishPacket): Promise<void> {
    if (session.inflight >= limits.deviceInflightMax) {
      refuse(client, packet.topic, 'rate_limited', `more than ${limits.deviceInflightMax} messages in flight; not acknowledged, send again later`);
      return Promise.reject(new Error('in-flight limit'));
    }
    session.inflight += 1;
    return receiveUsage(client, session, packet).then(() => {
      session.inflight -= 1;
      corkUntilNextTick(client, session);
    }, (error: unknown) => {
      session.inflight -= 1;
      if (error instanceof JournalFullError || error instanceof StorageLowError || error instanceof OutboxFullError) {
        refuse(client, packet.topic, error instanceof JournalFullError ? 'intake_overloaded' : error instanceof StorageLowError ? 'storage_low' : 'outbox_full', error.message);
      } else if (!(error instanceof RateLimitedError)) logger.error({ err: error, deviceId: session.device.id }, 'usage not stored; not acknowledging');
      throw error;
    });
  }

  /**
   * Pipelined QoS 1 usage. aedes reads a connection's next packets only once the
   * packets of its previous read have been handled (lib/client.js, nextBatch; a new
   * 'readable' event lets one more read through), and the durable write happens inside
   * that handling, so under load a device's next messages wait in the socket for a whole
   * group commit before they are even read, and then for their own. QoS 1
   * usage on the device's own topic is therefore taken off aedes's per-connection queue:
   * it is parsed by aedes's parser as before, stored while aedes reads on, and its
   * PUBACK is written when it is durable. The device's in-flight limit still bounds what
   * is held per connection. Everything else (CONNECT, PINGREQ, QoS 0 and 2, other
   * topics, Sparkplug) goes through aedes unchanged.
   */
  function pipelineUsage(client: Client): void {
    const internals = client as unknown as { _parser?: { listeners(event: 'packet'): Array<(packet: unknown) => void>; removeListener(event: 'packet', listener: (packet: unknown) => void): void; on(event: 'packet', listener: (packet: unknown) => void): void }; connackSent?: boolean; connected?: boolean; conn?: Socket };
    const parser = internals._parser;
    const enqueue = parser?.listeners('packet')[0];
    if (!parser || !enqueue || typeof internals.connackSent !== 'boolean') {
      // An aedes without the internals this relies on: every message takes aedes's path, still acked after durable.
      if (!pipelineUnavailableLogged) logger.warn('aedes internals changed: usage is not pipelined per connection (correct, but slower)');
      pipelineUnavailableLogged = true;
      return;
    }
    parser.removeListener('packet', enqueue);
    // PUBACKs go out in the order their PUBLISHes came in (MQTT 3.1.1 §4.6, MQTT-4.6.0-2),
    // even when a later message is done first (refused at once, or a duplicate).
    const acks: Array<{ id: number; ready: boolean }> = [];
    const sendReadyAcks = (): void => {
      const conn = internals.conn;
      while (acks.length > 0 && acks[0]!.ready) {
        const { id } = acks.shift()!;
        // Durable either way; a device that is gone resends and gets a duplicate's ack.
        if (internals.connected && conn && !conn.destroyed) conn.write(Buffer.from([PUBACK_HEADER, 2, id >> 8, id & 0xff]));
      }
    };
    parser.on('packet', function (this: unknown, raw: unknown) {
      const packet = raw as PublishPacket;
      const session = internals.connackSent ? sessions.get(client) : undefined;
      if (!session || packet.cmd !== 'publish' || packet.qos !== 1 || packet.topic !== session.usageTopic) return enqueue.call(this, raw);
      const ack = { id: packet.messageId ?? 0, ready: false };
      acks.push(ack);
      storeUsage(client, session, packet).then(() => {
        ack.ready = true;
        sendReadyAcks();
      }, (error: unknown) => {
        acks.length = 0;
        client.emit('error', error as Error); // as aedes does for a refused packet: the connection is closed, nothing more acknowledged
      });
    });
  }
  let pipelineUnavailableLogged = false;

  // A usage message ends at the ledger: authorizeSubscribe lets nobody subscribe to a
  // usage topic, so aedes's routing after the PUBACK (a packet copy, the retained store,
  // a topic-tree match, the offline-queue lookup) would only cost time and garbage on
  // every message. Everything else (rejection notices, Sparkplug) is routed as usual.
  const route = broker.publish.bind(broker) as unknown as (packet: PublishPacket, client: Client | null, done?: (error?: Error) => void) => void;
  (broker as unknown as { publish: typeof route }).publish = (packet, client, done) => {
    if (typeof client === 'function') return route(packet, null, client);
    if (client && sessions.get(client)?.usageTopic === packet.topic) return done?.();
    route(packet, client, done);
  };

  const notify = (client: Client, body: Record<string, unknown>): void => {
    broker.publish({ cmd: 'publish', topic: rejectionTopic(client.id), payload: Buffer.from(JSON.stringify(body)), qos: 1, retain: false, dup: false }, () => {});
  };

  /** Backpressure first: a fast device sees slower acks; only a flood is refused. Undefined when no wait is needed (the usual case: no promise allocated). */
  function takeToken(client: Client, session: DeviceSession, topic: string): Promise<void> | undefined {
    const nowMs = Date.now();
    session.tokens = Math.min(limits.deviceRatePerSMax, session.tokens + ((nowMs - session.refilledAtMs) / 1000) * limits.deviceRatePerSMax);
    session.refilledAtMs = nowMs;
    session.tokens -= 1;
    if (session.tokens >= 0) return undefined;
    const waitMs = (-session.tokens / limits.deviceRatePerSMax) * 1000;
    if (waitMs > RATE_WAIT_MS_MAX) {
      session.tokens += 1;
      refuse(client, topic, 'rate_limited', `more than ${limits.deviceRatePerSMax} messages/s; not acknowledged, send again later`);
      return Promise.reject(new RateLimitedError(`device ${session.device.id} is over its rate`));
    }
    return new Promise((resolve) => setTimeout(resolve, waitMs));
  }

  async function receiveUsage(client: Client, session: DeviceSession, packet: PublishPacket): Promise<void> {
    const { device } = session;
    const wait = takeToken(client, session, packet.topic);
    if (wait) await wait;
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

  broker.on('clientError', (client, error) => {
    if (error.message === 'topic has too many levels') refuse(client, '', 'topic_too_deep', `topics may have at most ${limits.topicLevelsMax} levels`);
    logger.debug({ deviceId: client.id, err: error.message }, 'client error');
  });
  broker.on('connectionError', (client, error) => logger.debug({ deviceId: client.id, err: error.message }, 'connection error'));

  const perIp = new Map<string, number>();
  // noDelay: an ack is a few bytes; Nagle plus delayed ACKs would add ~40 ms to every one.
  const onConnection = (socket: Socket): void => {
    const ip = socket.remoteAddress ?? 'unknown';
    const open = (perIp.get(ip) ?? 0) + 1;
    if (open > limits.connectionsPerIpMax) {
      rejections.add({ at: new Date().toISOString(), deviceId: '', topic: '', reason: 'too_many_connections', detail: `more than ${limits.connectionsPerIpMax} connections from ${ip}` });
      socket.destroy();
      return;
    }
    perIp.set(ip, open);
    socket.once('close', () => {
      const left = (perIp.get(ip) ?? 1) - 1;
      if (left <= 0) perIp.delete(ip);
      else perIp.set(ip, left);
    });
    guardPacketSize(socket, limits.packetBytesMax, (error) => {
      rejections.add({ at: new Date().toISOString(), deviceId: '', topic: '', reason: 'payload_too_large', detail: `${error.message} from ${ip}; connection dropped` });
    });
    pipelineUsage(broker.handle(socket) as Client);
  };
  const server: Server = options.tls
    ? createTlsServer({ cert: options.tls.cert, key: options.tls.key, ...(options.tls.ca ? { ca: options.tls.ca, requestCert: true, rejectUnauthorized: options.tls.clientCertRequired } : {}), noDelay: true }, onConnection)
    : createServer({ noDelay: true }, onConnection);
  server.maxConnections = options.connectionsMax;
  server.listen(options.port, options.host);
  await once(server, 'listening');
  if (options.tls) server.on('tlsClientError', (error: Error) => logger.debug({ err: error.message }, 'TLS handshake refused'));
  const port = (server.address() as AddressInfo).port;
  logger.info({ port, host: options.host }, 'MQTT broker listening');

  return {
    port,
    connectedDevices: () => Object.keys((broker as unknown as { clients: Record<string, Client> }).clients),
    disconnect: (deviceId) => (broker as unknown as { clients: Record<string, Client | undefined> }).clients[deviceId]?.close(),
    async close() {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
