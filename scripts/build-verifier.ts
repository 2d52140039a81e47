/**
 * Builds the offline verifier page into ONE self-contained file,
 * gateway/web/static/verifier.html: the page's script (with protocol/proof-bundle.ts and
 * the noble crypto it needs) and style inlined, nothing fetched, so a payer can save it
 * and open it from disk. A Content-Security-Policy with the hashes of the inline script
 * and style forbids every network request and any other script.
 *
 *   npm run build:verifier            writes gateway/web/static/verifier.html
 *   tsx scripts/build-verifier.ts OUT writes OUT instead
 *
 * gateway/web/verifier-page.test.ts rebuilds it and fails when the committed file is stale.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PAGE_DIR = path.join(ROOT, 'gateway/web/verifier-page');
export const VERIFIER_HTML = path.join(ROOT, 'gateway/web/static/verifier.html');
/** A payer may get it by e-mail; it holds only code and text. */
export const VERIFIER_BYTES_MAX = 300 * 1024;

const cspHash = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/** The page as one HTML string; deterministic for the same sources and esbuild version. */
export async function buildVerifierHtml(): Promise<string> {
  const bundled = await build({
    entryPoints: [path.join(PAGE_DIR, 'main.ts')],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    charset: 'utf8',
    legalComments: 'none',
    logLevel: 'silent',
  });
  const script = bundled.outputFiles[0]!.text.trimEnd();
  // Inside <script>, the HTML parser ends the element at "</script" and changes state at "<!--".
  if (/<\/script|<!--/i.test(script)) throw new Error('Cannot inline the verifier script: it contains "</script" or "<!--"');
  const style = (await readFile(path.join(PAGE_DIR, 'style.css'), 'utf8')).trim();
  const template = await readFile(path.join(PAGE_DIR, 'index.html'), 'utf8');
  const csp = `default-src 'none'; script-src ${cspHash(script)}; style-src ${cspHash(style)}; base-uri 'none'; form-action 'none'`;
  // Function replacers: `$&` and friends in the script must not be read as patterns.
  return template.replace('{{CSP}}', () => csp).replace('{{STYLE}}', () => style).replace('{{SCRIPT}}', () => script);
}

export async function writeVerifierHtml(outFile: string = VERIFIER_HTML): Promise<number> {
  const html = await buildVerifierHtml();
  const bytes = Buffer.byteLength(html, 'utf8');
  if (bytes > VERIFIER_BYTES_MAX) throw new Error(`Cannot write ${outFile}: ${bytes} bytes, more than ${VERIFIER_BYTES_MAX}`);
  await writeFile(outFile, html);
  return bytes;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const outFile = process.argv[2] ?? VERIFIER_HTML;
  const bytes = await writeVerifierHtml(outFile);
  process.stdout.write(`wrote ${path.relative(process.cwd(), outFile) || outFile} (${(bytes / 1024).toFixed(1)} KB)\n`);
}
