#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx, so `npx meterbridge` works from a checkout.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
const code = await main(process.argv.slice(2));
// Commands return only once they have shut down what they started; exit even if a
// failed start left a handle open.
process.exit(code);
