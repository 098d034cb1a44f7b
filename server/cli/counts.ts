/** How many events `fleet events` prints; apart from commands/events.ts so that the help can say them without loading that command. */

/** How many of the newest events `fleet events` shows without -n or --since. */
export const DEFAULT_EVENT_COUNT = 50;
/** The most events one `fleet events` prints before following (-n and --since alike). */
export const MAX_EVENT_COUNT = 10_000;
