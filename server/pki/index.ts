/**
 * server/pki: the fleet CA and the certificates it issues (gRPC server,
 * nodes). See docs/decisions/0004-agent-credentials.md.
 */
export {
  caFingerprint,
  caFromPem,
  commonName,
  createCa,
  issueNodeCert,
  issueServerCert,
  loadOrCreateCa,
  loadOrCreateServerCert,
  parseCsr,
  verifyNodeCertificate,
  CA_CERT_FILE,
  CA_KEY_FILE,
  DEFAULT_CA_VALIDITY_DAYS,
  DEFAULT_NODE_VALIDITY_DAYS,
  DEFAULT_SERVER_VALIDITY_DAYS,
  ECDSA_P256,
  EKU_CLIENT_AUTH,
  EKU_SERVER_AUTH,
  MAX_CSR_PEM_BYTES,
  PKI_DIR,
  SERVER_CERT_FILE,
  SERVER_KEY_FILE,
} from './ca.js';
export type { CaOptions, CsrInfo, FleetCa, IssuedCert, NodeCertOptions, ServerCertOptions } from './ca.js';
export { fingerprintOfDer, fingerprintOfPem, normaliseFingerprint, sameFingerprint } from '../../common/fingerprint.js';
