/**
 * What the lab's nodes become (issue 11): a Debian 12 image built with
 * `fleet image build` and fleet's boot environment, both in the lab
 * server's data dir, so that the lab's fleet server installs its VMs the way
 * a site's server installs its nodes. Built once and reused while their
 * build keys hold: the image (~4 min, ~240 MiB) by its build key, the boot
 * environment (~30 s) by its own. The agent comes with the image (baked in,
 * run by systemd); the server also serves the same bundle at /agent/.
 *
 * With `imageCache` (a fleet data dir used only for its image store, e.g.
 * the test suite's .tmp/image-build/data), the image is built or reused
 * there and copied into the lab's store by hard links: one build per
 * machine or CI run, however many labs.
 */
import { existsSync } from 'node:fs';
import { cp, mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { buildBootenv, type BootenvBuild } from '../bootenv/index.js';
import { buildImage, type NamedManifest } from '../images/index.js';
import { copyImage } from '../images/store.js';

export const LAB_IMAGE_FROM = 'debian:bookworm';
/**
 * Packages baked into the lab's image (`fleet image build --include`): what
 * the seed's roles would otherwise install on every node at first boot. Under
 * TCG each package's maintainer scripts take minutes (measured: chrony 2 min,
 * nfs-kernel-server 4 min on one VM), and the e2e reinstalls nodes several
 * times; a site bakes what all its nodes run into the image the same way.
 * The roles still check for them (and install what is missing from fleet's
 * repository); `hello` stays out, for the e2e's `apt-get install` from the
 * repository. The integration tests' image (test/helpers/debian-image.ts)
 * uses the same list, so one build serves both.
 */
export const LAB_IMAGE_INCLUDES: readonly string[] = ['chrony', 'munge', 'nfs-common', 'nfs-kernel-server', 'slurm-client', 'slurmctld', 'slurmd'];

export interface LabOsOptions {
  /** The lab server's data dir (DIR/data). */
  dataDir: string;
  /** Image name the lab profile installs. */
  imageName: string;
  /** A fleet data dir to build (or reuse) the image in, then copy it from. */
  imageCache?: string;
  log: (line: string) => void;
}

export interface LabOs {
  image: NamedManifest;
  /** The image was reused (no mmdebstrap run). */
  reused: boolean;
  bootenv: BootenvBuild;
}

export async function prepareLabOs(o: LabOsOptions): Promise<LabOs> {
  const buildDir = resolve(o.imageCache ?? o.dataDir);
  o.log(`image ${o.imageName}: fleet image build ${o.imageName} --from ${LAB_IMAGE_FROM} --include ${LAB_IMAGE_INCLUDES.join(',')} in ${buildDir} (reused while its build key holds; a first build takes ~5 min)`);
  const built = await buildImage({ dataDir: buildDir, name: o.imageName, from: LAB_IMAGE_FROM, includes: [LAB_IMAGE_INCLUDES.join(',')], log: (l) => o.log(`image: ${l}`) });
  let image = built.image;
  if (buildDir !== resolve(o.dataDir)) {
    image = (await copyImage({ fromDataDir: buildDir, name: o.imageName, toDataDir: o.dataDir, as: o.imageName, log: (l) => o.log(`image: ${l}`) })).image;
    // The bundle baked into the image, served at /agent/ as well (kickstart profiles fetch it there).
    const agentSrc = join(buildDir, 'www', 'agent');
    if (existsSync(agentSrc)) {
      const agentDst = join(o.dataDir, 'www', 'agent');
      await rm(agentDst, { recursive: true, force: true });
      await mkdir(join(o.dataDir, 'www'), { recursive: true });
      await cp(agentSrc, agentDst, { recursive: true });
    }
  }
  o.log(`image ${o.imageName}: ${image.digest} (${built.reused ? 'reused' : 'built'}; ${image.packages.length} packages)`);
  const bootenv = await buildBootenv({ dataDir: o.dataDir, log: (l) => o.log(`bootenv: ${l}`) });
  o.log(`boot environment: ${bootenv.dir} (${bootenv.reused ? 'reused' : 'built'})`);
  return { image, reused: built.reused, bootenv };
}
