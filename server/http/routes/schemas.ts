/**
 * JSON schemas of the REST API: they validate requests, serialise responses
 * (fields not listed here are dropped, so nothing unlisted can leak) and feed
 * the OpenAPI document.
 */
const str = { type: 'string' } as const;
const nullableStr = { type: ['string', 'null'] } as const;

export const nodesetQuery = {
  type: 'object',
  properties: { nodeset: { type: 'string', minLength: 1, maxLength: 65536, description: 'clustershell nodeset, e.g. valkyrie[01-02]' } },
  additionalProperties: false,
} as const;

export const nodeParams = {
  type: 'object',
  properties: { name: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' } },
  required: ['name'],
} as const;

export const eventsQuery = {
  type: 'object',
  properties: {
    nodeset: { type: 'string', minLength: 1, maxLength: 65536 },
    after: { type: 'integer', minimum: 0, description: 'cursor: the nextAfter of the previous page' },
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
    since: { type: 'string', format: 'date-time' },
  },
  additionalProperties: false,
} as const;

export const node = {
  type: 'object',
  properties: {
    name: str,
    profile: str,
    ip: nullableStr,
    macs: { type: 'array', items: str },
    bmc: {
      anyOf: [
        {
          type: 'object',
          properties: { address: str, port: { type: 'integer' }, protocol: str, credentials: { type: 'string', description: 'name of the credential set (never the secret)' } },
          required: ['address', 'port', 'protocol', 'credentials'],
        },
        { type: 'null' },
      ],
    },
    pet: { type: 'boolean' },
    origin: { type: 'string', enum: ['config', 'enroll'], description: 'config: declared in fleet.yaml; enroll: fleet enroll (apply never removes it)' },
    state: str,
    stateSince: str,
    armed: { type: 'boolean' },
    lastSeen: nullableStr,
    createdAt: str,
    updatedAt: str,
  },
  required: ['name', 'profile', 'ip', 'macs', 'bmc', 'pet', 'state', 'stateSince', 'armed', 'lastSeen', 'createdAt', 'updatedAt'],
} as const;

export const nodesResponse = {
  type: 'object',
  properties: {
    nodes: { type: 'array', items: node },
    missing: { type: 'array', items: str },
    missingFolded: str,
  },
  required: ['nodes', 'missing', 'missingFolded'],
} as const;

export const event = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    time: str,
    node: nullableStr,
    kind: str,
    fromState: nullableStr,
    toState: nullableStr,
    actor: str,
    details: { type: ['object', 'null'], additionalProperties: true },
  },
  required: ['id', 'time', 'node', 'kind', 'fromState', 'toState', 'actor', 'details'],
} as const;

export const eventsResponse = {
  type: 'object',
  properties: { events: { type: 'array', items: event }, nextAfter: { type: ['integer', 'null'] } },
  required: ['events', 'nextAfter'],
} as const;

export const applyRequest = {
  type: 'object',
  properties: {
    yaml: { type: 'string', maxLength: 16 * 1024 * 1024, description: 'the fleet.yaml text' },
    source: { type: 'string', maxLength: 4096, description: 'file name used in error messages' },
    secrets: {
      type: 'object',
      additionalProperties: { type: 'string', maxLength: 4096 },
      description: 'credential set name -> secret, read by the client from the files/env the YAML names',
    },
    dryRun: { type: 'boolean', default: false },
    prune: { type: 'boolean', default: false, description: 'also remove pets and nodes that are mid-operation' },
    confirmRemovals: {
      type: 'array',
      maxItems: 100000,
      items: { type: 'string', maxLength: 253 },
      description: 'the nodes the client confirmed to remove; a plan removing any other node is refused',
    },
  },
  required: ['yaml', 'secrets'],
  additionalProperties: false,
} as const;

export const applyResponse = {
  type: 'object',
  properties: {
    changed: { type: 'boolean' },
    applied: { type: 'boolean' },
    text: str,
    plan: { type: 'object', additionalProperties: true },
  },
  required: ['changed', 'applied', 'text', 'plan'],
} as const;
