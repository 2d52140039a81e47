/** A bare aedes broker (no auth, no ledger): the baseline the gateway's intake is compared with. */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { Aedes } from 'aedes';

const broker = await Aedes.createBroker();
// noDelay as in the gateway, so the comparison is fair.
const server = createServer({ noDelay: true }, broker.handle as (socket: Socket) => void);
server.listen(0, '127.0.0.1');
await once(server, 'listening');
process.stdout.write(`MQTT mqtt://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
process.on('SIGTERM', () => {
  broker.close(() => server.close(() => process.exit(0)));
});
