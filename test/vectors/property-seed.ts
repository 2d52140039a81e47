/**
 * One seed for every fast-check property in the protocol suites, so a run is repeatable.
 * Explore new cases with `FC_SEED=$RANDOM npx vitest run protocol`; when a property
 * fails, fast-check's message carries `seed` and `path` to replay exactly that case.
 */
export const PROPERTY_SEED = process.env.FC_SEED === undefined ? 20_261_127 : Number(process.env.FC_SEED);

if (!Number.isSafeInteger(PROPERTY_SEED)) throw new RangeError(`FC_SEED: ${process.env.FC_SEED} is not an integer`);

/** fast-check options: the shared seed and a run count. */
export function propertyRuns(numRuns: number): { seed: number; numRuns: number } {
  return { seed: PROPERTY_SEED, numRuns };
}
