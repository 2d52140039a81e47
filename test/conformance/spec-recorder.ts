/**
 * Collects HTTP exchanges (e.g. from the bank sandbox's `onExchange`) and checks each against
 * the OBL VRP 4.0 spec as it arrives; a test asserts `problems` is empty at its end.
 */
import { SPEC_BASE_PATH, validateExchange, validateResponse, type ExchangeCheckOptions, type HttpExchange } from './openapi-validator.ts';

export interface SpecRecorder {
  readonly onExchange: (exchange: HttpExchange) => void;
  readonly exchanges: HttpExchange[];
  readonly problems: string[];
  /** Statuses a test provokes on purpose though the spec does not list them (503, 413, 404). */
  readonly tolerated: Set<number>;
}

export interface SpecRecorderOptions extends ExchangeCheckOptions {
  /** 'exchange' checks what was sent and answered; 'response' only the answers (for tests that send bad requests on purpose). */
  check: 'exchange' | 'response';
}

export function createSpecRecorder(options: SpecRecorderOptions): SpecRecorder {
  const exchanges: HttpExchange[] = [];
  const problems: string[] = [];
  const tolerated = new Set<number>();
  const onExchange = (exchange: HttpExchange): void => {
    exchanges.push(exchange);
    // Sandbox-only routes (/sandbox/...) are not the spec's business.
    if (tolerated.has(exchange.statusCode) || !exchange.url.startsWith(`${SPEC_BASE_PATH}/`)) return;
    const found = options.check === 'exchange' ? validateExchange(exchange, options) : validateResponse(exchange, options);
    problems.push(...found.map((problem) => `${exchange.method} ${exchange.url} -> ${exchange.statusCode}: ${problem}`));
  };
  return { onExchange, exchanges, problems, tolerated };
}
