/**
 * Config issues: one per problem found in fleet.yaml, each with its YAML path
 * and position. parseConfig throws them all at once inside one
 * FleetError('config.invalid', ..., { errors: ConfigIssue[] }).
 */
import { FleetError } from '../../common/errors.js';

export interface ConfigIssue {
  /** YAML path, e.g. nodes.valkyrie[01-02].ip; '' for document-level problems. */
  path: string;
  /** 1-based line and column of the offending node (or of its parent when a key is missing). */
  line?: number;
  column?: number;
  /** Human-readable; never contains a secret value. */
  message: string;
}

/** Details carried by FleetError('config.invalid'). */
export interface ConfigInvalidDetails {
  source: string;
  errors: ConfigIssue[];
}

/** Orders issues by position (issues without a position last, by path), stably. */
export function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return issues
    .map((issue, i) => ({ issue, i }))
    .sort((a, b) => {
      const la = a.issue.line ?? Number.MAX_SAFE_INTEGER;
      const lb = b.issue.line ?? Number.MAX_SAFE_INTEGER;
      if (la !== lb) return la - lb;
      const ca = a.issue.column ?? 0;
      const cb = b.issue.column ?? 0;
      if (ca !== cb) return ca - cb;
      return a.i - b.i;
    })
    .map((x) => x.issue);
}

/**
 * One line per issue, compiler style:
 *   fleet.yaml:12:5 nodes.valkyrie[01-02].ip: 10.20.3.1 is outside 10.10.0.0/16
 */
export function formatConfigIssues(source: string, issues: readonly ConfigIssue[]): string {
  return issues
    .map((i) => {
      const where = i.line !== undefined ? `${source}:${i.line}:${i.column ?? 1}` : source;
      return i.path ? `${where} ${i.path}: ${i.message}` : `${where} ${i.message}`;
    })
    .join('\n');
}

/** The one error parseConfig throws. */
export function configInvalid(source: string, issues: ConfigIssue[]): FleetError {
  const sorted = sortIssues(issues);
  const n = sorted.length;
  const details: ConfigInvalidDetails = { source, errors: sorted };
  return new FleetError('config.invalid', `${source} has ${n} error${n === 1 ? '' : 's'}`, details);
}

/** The issue list of a config.invalid error (empty for any other error). */
export function configIssuesOf(e: unknown): ConfigIssue[] {
  if (e instanceof FleetError && e.code === 'config.invalid') {
    const d = e.details as Partial<ConfigInvalidDetails> | undefined;
    return Array.isArray(d?.errors) ? d.errors : [];
  }
  return [];
}
