/** Operating failures of the GPIO pulse input, each with a stable code for logs and alerts. */
export type GpioErrorCode =
  /** No sysfs GPIO here (no hardware, interface disabled) or no permission to export. */
  | 'MB_GPIO_INACCESSIBLE'
  /** The sysfs tree could not be read or holds no usable gpiochip. */
  | 'MB_GPIO_NO_CHIP'
  /** The BCM line does not exist on the chosen chip. */
  | 'MB_GPIO_NO_LINE'
  /** onoff could not export or configure the line (EINVAL: wrong number; EBUSY: in use). */
  | 'MB_GPIO_EXPORT_FAILED'
  /** The pulse counter's state file exists but cannot be trusted. */
  | 'MB_PULSE_STATE_INVALID';

export class GpioError extends Error {
  readonly code: GpioErrorCode;

  constructor(message: string, code: GpioErrorCode, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'GpioError';
    this.code = code;
  }
}
