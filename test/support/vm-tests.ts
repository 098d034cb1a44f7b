/**
 * The tests that boot VMs under TCG or build an OS image. Each wants both
 * cores for minutes, so `npm test` runs them after the rest, one file at a
 * time (test/integration/vm.vitest.config.ts): side by side, a 4-minute
 * mmdebstrap and three QEMU guests starved each other past their timeouts.
 */
export const VM_TESTS = [
  'test/integration/image-build.test.ts',
  'test/integration/bootenv.test.ts',
  'test/integration/netboot-qemu.test.ts',
  'test/integration/inspect-vm.test.ts',
  'test/integration/stateless-vm.test.ts',
  'test/integration/diskless-vm.test.ts',
];
