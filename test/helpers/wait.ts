/** Waits until `cond` holds, polling; throws after `ms`. */
export async function until(cond: () => boolean | Promise<boolean>, ms = 10_000, pollMs = 20): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
