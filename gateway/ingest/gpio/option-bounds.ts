/** Every numeric option has a default and a bound; this is where both are checked. */
export interface IntegerBound {
  readonly min: number;
  readonly max: number;
  readonly default: number;
}

/**
 * The option's value, or its default when absent.
 * @throws RangeError naming the owner and the option when out of bounds or not an integer.
 */
export function checkInteger(owner: string, name: string, value: number | undefined, bound: IntegerBound): number {
  if (value === undefined) return bound.default;
  if (!Number.isSafeInteger(value) || value < bound.min || value > bound.max) {
    throw new RangeError(`Cannot create ${owner}: option ${name} must be an integer in ${bound.min}..${bound.max}, got ${String(value)}`);
  }
  return value;
}
