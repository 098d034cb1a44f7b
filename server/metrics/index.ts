export { FleetMetrics, STATE_BUCKETS, INSTALL_BUCKETS, BMC_BUCKETS } from './metrics.js';
export type { BmcSample, LeaseSample, ScrapeSources, FleetMetricsOptions } from './metrics.js';
export { bootTreeOf, bodyBytes, stateLabel, kindLabel, codeLabel, nameLabel, OTHER } from './labels.js';
