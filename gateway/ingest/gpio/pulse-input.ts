/**
 * A source of pulse edges: a GPIO pin on the gateway, or a simulated one. The counter
 * only ever sees this interface, so its logic is tested without hardware.
 */
export interface PulseInput {
  /** Starts calling onEdge for each rising edge (hardware timestamp if any, else Date.now()). */
  watch(onEdge: (atMs: number) => void): void;
  close(): Promise<void>;
  readonly description: string; // e.g. "GPIO17 (sysfs gpio529, chip pinctrl-rp1 base 512)"
}
