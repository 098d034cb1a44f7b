/**
 * The command modules, each imported only when its command runs. main.ts and
 * register.ts define every command's options and help without them: loading
 * all of them (the server, the store, gRPC, the lab, the image builder) took
 * ~1.5 s per call, where `fleet nodeset` needs the nodeset code only.
 * test/unit/cli/lazy-load.test.ts checks what a command loads.
 */
export const adopt = () => import('./commands/adopt.js');
export const api = () => import('./commands/api.js');
export const apply = () => import('./commands/apply.js');
export const bmc = () => import('./commands/bmc.js');
export const bootenv = () => import('./commands/bootenv.js');
export const serialConsole = () => import('./commands/console.js');
export const diskless = () => import('./commands/diskless.js');
export const discover = () => import('./commands/discover.js');
export const discoverBmc = () => import('./commands/discover-bmc.js');
export const doctor = () => import('./commands/doctor.js');
export const events = () => import('./commands/events.js');
export const importer = () => import('./commands/import.js');
export const images = () => import('./commands/images.js');
export const inventory = () => import('./commands/inventory.js');
export const lab = () => import('./commands/lab.js');
export const lifecycle = () => import('./commands/lifecycle.js');
export const netboot = () => import('./commands/netboot.js');
export const nodeset = () => import('./commands/nodeset.js');
export const repo = () => import('./commands/repo.js');
export const server = () => import('./commands/server.js');
export const slurm = () => import('./commands/slurm.js');
export const users = () => import('./commands/users.js');
export const timeline = () => import('./commands/timeline.js');
