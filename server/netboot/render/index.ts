/**
 * Public surface of the netboot renderers: iPXE scripts and kickstarts from
 * templates in ipxe/ and kickstart/. Rendering is pure (template text in,
 * script out); loading templates from disk is templates.ts.
 */
export { fillTemplate, placeholders, type TemplateValues } from './template.js';
export { defaultTemplateRoot, findTemplateRoot, isTemplateRoot, loadTemplate, templatePath, type TemplateKind } from './templates.js';
export {
  IPXE_TEMPLATES,
  ipxeTemplateName,
  MAX_KERNEL_CMDLINE,
  renderBootChain,
  renderIpxe,
  type BootChainOptions,
  type IpxeOptions,
} from './ipxe.js';
export {
  BASE_PACKAGES,
  DEFAULT_STORAGE,
  KICKSTART_TEMPLATE,
  PLACEHOLDER_TOKEN,
  renderKickstart,
  type KickstartInput,
} from './kickstart.js';
export {
  agentDownloadUrl,
  BOOT_EVENTS,
  bootEventUrl,
  bootScriptUrl,
  kickstartUrl,
  machineScriptUrl,
  treeInitrdUrl,
  treeKernelUrl,
  type BootEvent,
} from './urls.js';
