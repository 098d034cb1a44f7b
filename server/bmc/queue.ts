/**
 * One caller at a time per BMC, across the whole server (issue 9 item 4).
 *
 * The server builds one BmcQueue with its provider context; the CLI/API
 * fan-out and the lifecycle conductor's steps both go through it, so a
 * `fleet power cycle` and a reinstall's PXE override never talk to the same
 * BMC at once. Keys are "address:port" (the BMC, not the node: blades behind
 * one BMC share a key). Different keys run in parallel; one key runs its
 * callers in arrival order. The map holds only keys with work queued.
 *
 * A task must not enter the queue again for its own key (it would wait for
 * itself); callers take one slot per BMC operation, never nested.
 */
export class BmcQueue {
  private readonly tails = new Map<string, Promise<void>>();

  /** Runs `fn` once every earlier caller on `key` has finished (whether it succeeded or not). */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      // Last in line: forget the key so the map does not grow with every BMC ever driven.
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** Keys with a caller running or waiting (observability and tests). */
  get busy(): number {
    return this.tails.size;
  }
}

/** The queue key of a BMC. */
export function bmcKey(address: string, port: number): string {
  return `${address.toLowerCase()}:${port}`;
}
