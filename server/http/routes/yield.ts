/**
 * Lets the event loop run other work (I/O, other requests, timers) between
 * the stages of a large request: expanding up to 100,000 names, looking them
 * up, folding the missing ones. Each stage is bounded by the nodeset limit;
 * yielding between them keeps one large request from holding the loop for
 * their sum.
 */
export function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Yields only when the work just done was large (small requests keep their latency). */
export async function yieldIfLarge(count: number, threshold = 5_000): Promise<void> {
  if (count >= threshold) await yieldToLoop();
}
