export { controlText, debInfo, parseAr, parseControl, poolPath, readDeb, type ControlFields, type DebInfo } from './deb.js';
export { renderPackages, renderRelease, renderStanza, releaseDate, type PoolFile, type ReleaseInfo } from './render.js';
export { addDebs, listPackages, readPublicKey, removePackages, repoPaths, KEYRING_ASC, KEYRING_GPG, REPO_ARCH, REPO_COMPONENT, type ListedEntry, type RepoEntry } from './store.js';
export { fetchPackages, privateAptConf, preparePrivateApt } from './fetch.js';
