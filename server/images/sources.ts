/**
 * The apt sources an image is built from (pure): the management node's own
 * (/etc/apt/sources.list and sources.list.d/*.list|*.sources, one-line and
 * deb822 formats), never a host written in code. Entries of the host's own
 * release family (its code name and NAME-updates, NAME-security, ...) are
 * kept, with the host's code name replaced by the image's suite, so a
 * bookworm management node builds trixie from the same mirrors; entries of
 * other suites (third-party repositories such as `nodistro`) are left out.
 * The result is one-line `deb URI SUITE COMPONENTS` entries that mmdebstrap
 * takes as its mirror file; the archive keys are mmdebstrap's defaults (the
 * Debian keyring of the management node).
 */

export interface AptEntry {
  uri: string;
  suite: string;
  components: string[];
}

/** Whether apt reads this file of sources.list.d. */
export function isSourcesFile(name: string): boolean {
  return /^[A-Za-z0-9_.-]+\.(list|sources)$/.test(name) && !name.startsWith('.');
}

/** `deb` entries of a one-line sources.list (options in [...] dropped). */
export function parseOneLine(text: string): AptEntry[] {
  const out: AptEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line.startsWith('deb ') && !line.startsWith('deb\t')) continue;
    const rest = line.slice(4).replace(/^\s*\[[^\]]*\]\s*/, '').trim();
    const [uri, suite, ...components] = rest.split(/\s+/);
    if (!uri || !suite) continue;
    out.push({ uri, suite, components: components.length ? components : ['main'] });
  }
  return out;
}

/** `deb` entries of a deb822 .sources file (Enabled: no skipped). */
export function parseDeb822(text: string): AptEntry[] {
  const out: AptEntry[] = [];
  for (const para of text.split(/\n\s*\n/)) {
    const f = new Map<string, string>();
    let last: string | undefined;
    for (const raw of para.split('\n')) {
      if (raw.startsWith('#')) continue;
      if (/^\s/.test(raw) && last) {
        f.set(last, `${f.get(last)} ${raw.trim()}`);
        continue;
      }
      const i = raw.indexOf(':');
      if (i <= 0) continue;
      last = raw.slice(0, i).trim().toLowerCase();
      f.set(last, raw.slice(i + 1).trim());
    }
    const types = (f.get('types') ?? '').split(/\s+/);
    if (!types.includes('deb') || (f.get('enabled') ?? 'yes').toLowerCase() === 'no') continue;
    const uris = (f.get('uris') ?? '').split(/\s+/).filter(Boolean);
    const suites = (f.get('suites') ?? '').split(/\s+/).filter(Boolean);
    const components = (f.get('components') ?? 'main').split(/\s+/).filter(Boolean);
    for (const uri of uris) for (const suite of suites) out.push({ uri, suite, components });
  }
  return out;
}

export interface SourceFile {
  name: string;
  text: string;
}

export function parseSources(files: readonly SourceFile[]): AptEntry[] {
  return files.flatMap((f) => (f.name.endsWith('.sources') ? parseDeb822(f.text) : parseOneLine(f.text)));
}

/**
 * The host's entries rewritten for `suite`: only those of the host's release
 * family (`hostCodename` or `hostCodename-*`, and `hostCodename/updates`),
 * deduplicated, as one-line `deb` lines. Empty when the host names none.
 */
export function imageSourceLines(entries: readonly AptEntry[], hostCodename: string, suite: string): string[] {
  const out: string[] = [];
  for (const e of entries) {
    let s: string | undefined;
    if (e.suite === hostCodename) s = suite;
    else if (e.suite.startsWith(`${hostCodename}-`) || e.suite.startsWith(`${hostCodename}/`)) s = suite + e.suite.slice(hostCodename.length);
    if (s === undefined) continue;
    const line = `deb ${e.uri} ${s} ${e.components.join(' ')}`;
    if (!out.includes(line)) out.push(line);
  }
  return out;
}

/** VERSION_CODENAME from the text of /etc/os-release, or null. */
export function osReleaseCodename(text: string): string | null {
  const m = /^VERSION_CODENAME=("?)([^"\n]*)\1\s*$/m.exec(text);
  return m && m[2] ? m[2] : null;
}
