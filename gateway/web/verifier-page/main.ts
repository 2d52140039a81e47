/**
 * The offline verifier page: the payer drops a proof bundle, gives the gateway keys they
 * trust, and reads every check in plain words. Bundled with protocol/proof-bundle.ts into
 * one self-contained file by scripts/build-verifier.ts; it makes no network requests.
 */
import { keyIdOf } from '../../../protocol/signing.ts';
import { fromHex } from '../../../protocol/hash.ts';
import { verifyProofBundle, type BundleReport } from '../../../protocol/proof-bundle.ts';

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

const drop = $<HTMLLabelElement>('drop');
const fileInput = $<HTMLInputElement>('file');
const loaded = $<HTMLParagraphElement>('loaded');
const keysInput = $<HTMLTextAreaElement>('keys');
const keysWarning = $<HTMLDivElement>('keys-warning');
const bundleKeys = $<HTMLUListElement>('bundle-keys');
const verifyButton = $<HTMLButtonElement>('verify');
const result = $<HTMLElement>('result');
const summary = $<HTMLParagraphElement>('summary');
const checksList = $<HTMLOListElement>('checks');
const onlyProblems = $<HTMLInputElement>('only-problems');

let bundle: unknown;
/** The keys as filled in from the bundle: while the textarea still holds exactly these, the warning stays. */
let keysFromBundle = '';

const KEY_HEX = /^[0-9a-f]{64}$/;

function listedKeys(value: unknown): Array<{ publicKey: string; keyId: string; validFrom?: string; validTo?: string }> {
  const keys = (value as { gatewayKeys?: unknown }).gatewayKeys;
  if (!Array.isArray(keys)) return [];
  return keys.filter((k): k is { publicKey: string; keyId: string } => typeof k?.publicKey === 'string' && KEY_HEX.test(k.publicKey.toLowerCase()));
}

function showKeysWarning(): void {
  keysWarning.hidden = keysFromBundle === '' || keysInput.value.trim() !== keysFromBundle;
}

function load(name: string, text: string): void {
  result.hidden = true;
  try {
    bundle = JSON.parse(text);
  } catch (error) {
    bundle = undefined;
    loaded.hidden = false;
    loaded.className = 'error';
    loaded.textContent = `${name} is not a JSON file: ${(error as Error).message}`;
    verifyButton.disabled = true;
    return;
  }
  const b = bundle as { payer?: unknown; period?: unknown; gatewayId?: unknown; batches?: unknown };
  loaded.hidden = false;
  loaded.className = '';
  loaded.textContent = `Loaded ${name}: statement for ${String(b.payer)}, period ${String(b.period)}, from gateway ${String(b.gatewayId)}, ${Array.isArray(b.batches) ? b.batches.length : 0} batches.`;
  verifyButton.disabled = false;
  if (keysInput.value.trim() === '' || keysInput.value.trim() === keysFromBundle) {
    const keys = listedKeys(bundle);
    keysFromBundle = keys.map((k) => k.publicKey.toLowerCase()).join('\n');
    keysInput.value = keysFromBundle;
    bundleKeys.replaceChildren(...keys.map((k) => {
      const li = document.createElement('li');
      li.textContent = `key id ${keyIdOf(fromHex(k.publicKey.toLowerCase(), 'publicKey', 32))}: ${k.publicKey.toLowerCase()} (valid from ${k.validFrom ?? '?'}${k.validTo ? ` to ${k.validTo}` : ''})`;
      return li;
    }));
  }
  showKeysWarning();
  verify();
}

function render(report: BundleReport): void {
  const fragment = document.createDocumentFragment();
  for (const check of report.checks) {
    const li = document.createElement('li');
    li.className = !check.ok ? 'fail' : check.warning ? 'warn' : 'pass';
    li.textContent = check.detail;
    fragment.append(li);
  }
  checksList.replaceChildren(fragment);
  const warnings = report.warnings === 0 ? '' : `, ${report.warnings} warning${report.warnings === 1 ? '' : 's'} to read`;
  const trust = keysInput.value.trim() === keysFromBundle && keysFromBundle !== '' ? ' (with keys from the bundle itself: compare them with your operator\'s key)' : '';
  summary.className = report.ok ? 'ok' : 'bad';
  summary.textContent = report.ok
    ? `✓ All ${report.passed} checks passed${warnings}${trust}.`
    : `✗ ${report.failed} of ${report.checks.length} checks failed${warnings}: this statement does not verify. The failed checks are marked ✗ below.`;
  result.hidden = false;
}

function verify(): void {
  if (bundle === undefined) return;
  const keys = keysInput.value.split(/[\s,]+/).map((k) => k.trim().toLowerCase()).filter((k) => k !== '');
  render(verifyProofBundle(bundle, keys));
}

async function readFile(file: File): Promise<void> {
  load(file.name, await file.text());
}

fileInput.addEventListener('change', () => {
  const file = fileInput.files?.[0];
  if (file) void readFile(file);
});
drop.addEventListener('dragover', (event) => {
  event.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (event) => {
  event.preventDefault();
  drop.classList.remove('over');
  const file = event.dataTransfer?.files[0];
  if (file) void readFile(file);
});
keysInput.addEventListener('input', showKeysWarning);
verifyButton.addEventListener('click', verify);
onlyProblems.addEventListener('change', () => checksList.classList.toggle('only-problems', onlyProblems.checked));
$<HTMLParagraphElement>('script-off').hidden = true;
