/** pino-compatible subset used by the dnsmasq supervisor and the discovery listener. */
export interface NetbootLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug?(obj: object, msg?: string): void;
}

export const silentLogger: NetbootLogger = { info() {}, warn() {}, error() {}, debug() {} };
