/**
 * Value lists of the API that clients use as values, apart from schemas.ts so
 * that the CLI can use them without loading typebox (schemas.ts re-exports them).
 */

export const POWER_OPS = ['status', 'on', 'off', 'soft', 'cycle', 'reset'] as const;
export const BOOT_DEVICES = ['pxe', 'disk', 'cdrom', 'bios'] as const;
export const BOOT_MODES = ['uefi', 'legacy', 'auto'] as const;
