/**
 * vitest globalSetup: one temporary PostgreSQL 15 cluster for the whole run
 * (about a second to start), handed to the test files as
 * inject('fleetPostgres'); stopped and removed when the run ends. Where
 * PostgreSQL cannot be started the files are told why: outside CI their
 * PostgreSQL cases skip, under CI=true they fail (test/unit/store/engines.ts).
 */
import type { TestProject } from 'vitest/node';
import { startPostgres, stopPostgres, type PostgresCluster, type ProvidedPostgres } from './postgres-cluster.js';

declare module 'vitest' {
  export interface ProvidedContext {
    fleetPostgres: ProvidedPostgres;
  }
}

export default async function setup(project: TestProject): Promise<() => void> {
  let cluster: PostgresCluster | undefined;
  try {
    cluster = await startPostgres();
    project.provide('fleetPostgres', { ok: true, cluster });
  } catch (e) {
    project.provide('fleetPostgres', { ok: false, why: e instanceof Error ? e.message : String(e) });
  }
  return () => {
    if (cluster) stopPostgres(cluster);
  };
}
