/** OS images (DESIGN §8, docs/images.md): build, import, store by content digest. */
export { buildImage, type BuildOptions, type BuildResult } from './build.js';
export { importImage, type ImportOptions } from './import.js';
export { formatList, formatManifest, type ImageManifest, type NamedManifest } from './manifest.js';
export { checkImageName } from './names.js';
export { imagePaths, listImages, lockImages, showImage, unregister } from './store.js';
