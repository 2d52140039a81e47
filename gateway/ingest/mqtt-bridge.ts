/**
 * External broker mode: the gateway is a client of a broker such as Mosquitto, which
 * authenticates devices and enforces their topics (generated ACL). The gateway holds a
 * persistent session (clean session off, QoS 2 subscription) and acknowledges each
 * PUBLISH to the broker only after the intake made it durable, exactly as in embedded
 * mode; until then the broker keeps the message in the session and redelivers it.
 *
 * Written on mqtt-packet rather than MQTT.js because MQTT.js handles incoming packets
 * one at a time (the next waits for the previous ack), which would put one fsync per
 * message on the critical path. Here many messages are in flight at once and share the
 * journal's group commit, and acks still leave in the order the PUBLISHes arrived
 * (MQTT-4.6.0-2).
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import mqttPacket, { type IPublishPacket, type Packet } from 'mqtt-packet';
import type { Logger } from 'pino';
import { rejectionTopic, TOPIC_ROOT } from '../../protocol/usage-message.ts';
import type { DeviceRegistry } from './device-registry.ts';
import type { Intake } from './intake.ts';
import type { RejectionLog } from './rejection-log.ts';

export interface MqttBridgeOptions {
  url: string;
  clientId: string;
  username: string;
  password: string;
  keepaliveS: number;
  registry: DeviceRegistry;
  intake: Intake;
  rejections: RejectionLog;
  logger: Logger;
  /** Trusted CA (PEM) for mqtts:// brokers with a private CA. */
  ca?: string;
  /** Unacknowledged messages in hand at once; beyond it the socket stops reading (TCP backpressure). */
  inflightMax?: number;
}

export interface MqttBridge {
  readonly connected: boolean;
  /** Resolves once subscribed the first time; rejects if the broker refuses our credentials. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

const USAGE_SUBSCRIPTION = `${TOPIC_ROOT}/+/usage`;
const USAGE_TOPIC = new RegExp(`^${TOPIC_ROOT.replace(/\//g, '\\/')}\\/([^/]+)\\/usage$`);
const RECONNECT_MS_MAX = 10_000;

interface AckSlot {
  packet: Packet;
  ready: boolean;
}

interface Connection {
  socket: Socket;
  /** Acks leave in arrival order (MQTT-4.6.0-2): a slot per QoS 1/2 PUBLISH, flushed from the front. */
  acks: AckSlot[];
  inflight: number;
  paused: boolean;
  flushAcks: () => void;
}

/** Connects in the background and keeps reconnecting; see {@link MqttBridge.ready}. */
export function startMqttBridge(options: MqttBridgeOptions): MqttBridge {
  const { logger } = options;
  const target = new URL(options.url);
  let socket: Socket | undefined;
  let connected = false;
  let closing = false;
  let reconnectMs = 250;
  let nextMessageId = 1;
  let pingTimer: NodeJS.Timeout | undefined;
  let firstConnect: { resolve: () => void; reject: (error: Error) => void } | undefined;

  const send = (packet: Packet): void => {
    if (socket && !socket.destroyed) socket.write(mqttPacket.generate(packet));
  };
  const messageId = (): number => {
    nextMessageId = nextMessageId >= 65_535 ? 1 : nextMessageId + 1;
    return nextMessageId;
  };

  function open(): void {
    const port = Number(target.port || (target.protocol === 'mqtts:' ? 8883 : 1883));
    const s = target.protocol === 'mqtts:'
      ? tlsConnect({ host: target.hostname, port, ...(options.ca ? { ca: options.ca } : {}) })
      : netConnect({ host: target.hostname, port });
    // Acks are a few bytes: without noDelay, Nagle and delayed ACKs add ~40 ms to each.
    s.setNoDelay(true);
    socket = s;
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    // Everything about one connection lives here: a result that arrives after a reconnect
    // must not ack on (or drop) the new connection.
    const connection: Connection = {
      socket: s,
      acks: [],
      inflight: 0,
      paused: false,
      flushAcks: () => {
        while (connection.acks.length > 0 && connection.acks[0]!.ready && !s.destroyed) s.write(mqttPacket.generate(connection.acks.shift()!.packet));
      },
    };
    parser.on('packet', (packet: Packet) => onPacket(packet, connection));
    parser.on('error', (error: Error) => {
      logger.error({ err: error.message }, 'broker sent a malformed packet; reconnecting');
      s.destroy();
    });
    s.on('connect', () => send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, clientId: options.clientId, keepalive: options.keepaliveS, username: options.username, password: Buffer.from(options.password) }));
    s.on('secureConnect', () => s.emit('connect'));
    s.on('data', (chunk: Buffer) => parser.parse(chunk));
    s.on('error', (error: Error) => logger.warn({ err: error.message, url: redactUrl(target) }, 'broker connection error'));
    s.on('close', () => {
      connected = false;
      clearInterval(pingTimer);
      if (closing) return;
      logger.warn({ retryInMs: reconnectMs }, 'broker connection lost; unacknowledged usage stays in the broker session');
      setTimeout(open, reconnectMs).unref();
      reconnectMs = Math.min(RECONNECT_MS_MAX, reconnectMs * 2);
    });
  }

  function onPacket(packet: Packet, connection: Connection): void {
    switch (packet.cmd) {
      case 'connack':
        if (packet.returnCode !== 0) {
          const error = new Error(`broker refused the gateway's connection (CONNACK ${packet.returnCode})`);
          logger.error(error.message);
          firstConnect?.reject(error);
          firstConnect = undefined;
          closing = true; // wrong credentials do not fix themselves by retrying
          socket?.destroy();
          return;
        }
        connected = true;
        reconnectMs = 250;
        // MQTT-3.8.3: QoS 2 grant, so QoS 2 messages keep exactly-once to us.
        send({ cmd: 'subscribe', messageId: messageId(), subscriptions: [{ topic: USAGE_SUBSCRIPTION, qos: 2 }] });
        pingTimer = setInterval(() => send({ cmd: 'pingreq' }), (options.keepaliveS * 1000) / 2);
        pingTimer.unref();
        return;
      case 'suback':
        logger.info({ subscription: USAGE_SUBSCRIPTION }, 'subscribed to usage on the broker');
        firstConnect?.resolve();
        firstConnect = undefined;
        return;
      case 'publish':
        receive(packet, connection);
        return;
      case 'pubrel':
        // QoS 2, second half: the message was made durable before PUBREC went out.
        send({ cmd: 'pubcomp', messageId: packet.messageId! });
        return;
      default:
        return; // puback/pubrec for our notices, pingresp: nothing to do
    }
  }

  const inflightMax = options.inflightMax ?? 2_000;

  function receive(packet: IPublishPacket, connection: Connection): void {
    // The broker may send far more than its in-flight setting suggests (a persistent session
    // redelivers its whole queue): stop reading rather than queue more than the journal takes.
    connection.inflight += 1;
    if (connection.inflight >= inflightMax && !connection.paused) {
      connection.paused = true;
      connection.socket.pause();
    }
    const slot: AckSlot | undefined = packet.qos === 0 ? undefined : { packet: { cmd: packet.qos === 1 ? 'puback' : 'pubrec', messageId: packet.messageId! } as Packet, ready: false };
    if (slot) connection.acks.push(slot);
    const settled = (): void => {
      connection.inflight -= 1;
      if (connection.paused && connection.inflight <= inflightMax / 2) {
        connection.paused = false;
        connection.socket.resume();
      }
    };
    handleUsage(packet).then(() => {
      settled();
      if (!slot) return;
      slot.ready = true;
      connection.flushAcks();
    }, (error: unknown) => {
      settled();
      // Not stored: no ack. Drop this connection so the broker redelivers from the session.
      logger.error({ err: (error as Error).message }, 'usage not stored; reconnecting without acknowledging');
      connection.socket.destroy();
    });
  }

  async function handleUsage(packet: IPublishPacket): Promise<void> {
    const deviceId = USAGE_TOPIC.exec(packet.topic)?.[1];
    const device = deviceId ? options.registry.get(deviceId) : undefined;
    if (!deviceId || !device || device.revoked) {
      options.rejections.add({ at: new Date().toISOString(), deviceId: deviceId ?? '', topic: packet.topic, reason: 'unknown_device', detail: `no provisioned device ${deviceId ?? '(none)'}: update the broker ACL` });
      return;
    }
    if (packet.qos === 0) {
      options.rejections.add({ at: new Date().toISOString(), deviceId, topic: packet.topic, reason: 'qos_not_supported', detail: 'usage must be published with QoS 1 or 2' });
      notify(deviceId, { reason: 'qos_not_supported', detail: 'publish usage with QoS 1' });
      return;
    }
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const result = await options.intake.submit(device, packet.topic, payload);
    if (result.status === 'rejected') notify(deviceId, { reason: result.reason, field: result.field, detail: result.detail });
  }

  function notify(deviceId: string, body: Record<string, unknown>): void {
    send({ cmd: 'publish', topic: rejectionTopic(deviceId), payload: Buffer.from(JSON.stringify(body)), qos: 1, messageId: messageId(), retain: false, dup: false });
  }

  const ready = new Promise<void>((resolve, reject) => {
    firstConnect = { resolve, reject };
  });
  ready.catch(() => {}); // the caller decides whether to wait; an unobserved refusal is logged above
  open();
  return {
    get connected() {
      return connected;
    },
    ready,
    async close() {
      closing = true;
      clearInterval(pingTimer);
      firstConnect?.reject(new Error('bridge closed before it connected'));
      if (socket && !socket.destroyed) {
        send({ cmd: 'disconnect' });
        await new Promise<void>((done) => socket!.end(done));
      }
    },
  };
}

function redactUrl(url: URL): string {
  return `${url.protocol}//${url.host}`;
}
