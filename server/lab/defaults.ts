/** The lab's default directory, apart from server.ts so that the CLI's help can name it without loading the lab. */
export const DEFAULT_LAB_DIR = 'fleet-lab';
