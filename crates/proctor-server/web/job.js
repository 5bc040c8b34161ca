// The attestation page's checks, run in the visitor's browser: it fetches the job's entries,
// the service key, the checkpoint and the inclusion proofs from the API, checks them with
// verify.js (independent of the server's Rust code), and compares every figure the page shows
// (`[data-path]`, rendered by the server) with the signed statement's value at that path.
// The server asserts; this file checks. Nothing here writes HTML: text only.

import { verifyBundle } from './verify.js';

const PIN_STORAGE = 'proctor.pinnedKeyId';
const HEX64 = /^[0-9a-f]{64}$/;

const panel = globalThis.document?.getElementById('verification');
const job = panel?.dataset.job;

/** A figure's text, as the server's `signed::text` writes it. */
export function signedText(value) {
  if (value === undefined || value === null) return '—';
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'number') return plainNumber(value);
  return JSON.stringify(value);
}

/** Shortest round-trip digits, as Rust's `Display` for f64: never an exponent. */
function plainNumber(n) {
  if (Object.is(n, -0)) return '-0';
  const s = String(n);
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(s);
  if (!m) return s;
  const [, sign, lead, frac = '', exp] = m;
  const digits = lead + frac;
  const point = 1 + Number(exp);
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return sign + digits + '0'.repeat(point - digits.length);
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

// A path's keys are escaped as the page writes them (signed.rs `segment`): `~1` is a dot in
// a key (a metric or channel name may hold one), `~0` a tilde.
function at(statement, path) {
  return path.split('.').reduce((v, raw) => {
    const key = raw.replaceAll('~1', '.').replaceAll('~0', '~');
    if (v === null || typeof v !== 'object') return undefined;
    if (Array.isArray(v)) return /^\d+$/.test(key) ? v[Number(key)] : undefined;
    return Object.prototype.hasOwnProperty.call(v, key) ? v[key] : undefined;
  }, statement);
}

async function fetchOk(url) {
  const response = await fetch(url, { cache: 'no-store' });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response;
}

function show(kind, name, status, detail) {
  const item = panel.querySelector(`ol[data-entry="${kind}"] li[data-check="${name}"]`);
  if (!item) return;
  item.dataset.status = status;
  const label = { pass: 'passed', fail: 'FAILED', skipped: 'not applicable' }[status] ?? status;
  item.querySelector('.check-detail').textContent = `${label}: ${detail}`;
}

/** The page's figures of one entry against its verified statement. */
function compareFigures(kind, statement) {
  const figures = [...document.querySelectorAll(`[data-entry="${kind}"][data-path]`)];
  const wrong = [];
  for (const el of figures) {
    const signed = signedText(at(statement, el.dataset.path));
    const ok = el.textContent === signed;
    el.classList.toggle('mismatch', !ok);
    if (!ok) wrong.push(`${el.dataset.path} shows "${el.textContent}", signed "${signed}"`);
  }
  return { count: figures.length, wrong };
}

async function checkEntry(kind, publicKey, pin) {
  const query = kind === 'accepted' ? '?kind=accepted' : '';
  const [view, envelope] = await Promise.all([
    fetchOk(`/v1/attestations/${job}${query}`).then((r) => r.json()),
    // The leaf is the envelope's exact bytes: read them as bytes, never as text.
    fetchOk(`/v1/attestations/${job}/envelope${query}`).then((r) => r.arrayBuffer()),
  ]);
  const bundle = {
    attestation: new Uint8Array(envelope),
    publicKey,
    checkpoint: view.checkpoint,
    proof: JSON.stringify(view.inclusion_proof),
  };
  if (pin) bundle.pinnedKeyId = pin;
  const out = await verifyBundle(bundle);
  const byName = new Map(out.checks.map((c) => [c.name, c]));
  const servedId = document.getElementById('served-key-id')?.textContent.trim();
  if (out.keyId) document.getElementById('computed-key-id').textContent = out.keyId;

  let passed = true;
  const record = (name, ok, detail) => {
    show(kind, name, ok ? 'pass' : 'fail', detail);
    passed &&= ok;
  };
  if (pin) {
    const key = byName.get('key');
    record('key', Boolean(key?.ok), key?.detail ?? 'the key did not load');
  } else if (out.keyId && servedId && out.keyId !== servedId) {
    record('key', false, `the key served has id ${out.keyId}, the page says ${servedId}`);
  } else {
    show(kind, 'key', 'skipped', 'no key id pinned: compare the id above with one you trust');
  }
  for (const name of ['signature', 'checkpoint', 'inclusion']) {
    const check = byName.get(name) ?? byName.get('key') ?? { ok: false, detail: 'not run' };
    record(name, check.ok, check.detail);
  }
  if (!out.statement) {
    record('figures', false, 'no verified statement to compare with');
  } else {
    const expectedType = kind === 'accepted' ? '/job-accepted/' : '/eval-result/';
    const aboutThisJob = at(out.statement, 'predicate.job_id') === job
      && String(at(out.statement, 'predicateType')).includes(expectedType);
    const { count, wrong } = compareFigures(kind, out.statement);
    if (!aboutThisJob) record('figures', false, `the signed statement is not this job's ${kind} entry`);
    else if (wrong.length) record('figures', false, `${wrong.length} of ${count} differ: ${wrong.slice(0, 3).join('; ')}`);
    else record('figures', true, `all ${count} figures on this page are the signed ones`);
  }
  return passed;
}

async function run() {
  const verdict = document.getElementById('verdict');
  verdict.dataset.status = 'running';
  verdict.textContent = 'Checking…';
  const kinds = [...panel.querySelectorAll('ol[data-entry]')].map((ol) => ol.dataset.entry);
  const pin = localStorage.getItem(PIN_STORAGE) ?? undefined;
  let allPassed = true;
  let publicKey = null;
  try {
    publicKey = await fetchOk('/v1/public-key').then((r) => r.text());
  } catch (e) {
    allPassed = false;
    for (const kind of kinds) show(kind, 'signature', 'fail', `the service key: ${e.message}`);
  }
  if (publicKey !== null) {
    for (const kind of kinds) {
      try {
        allPassed = (await checkEntry(kind, publicKey, pin)) && allPassed;
      } catch (e) {
        allPassed = false;
        show(kind, 'signature', 'fail', e.message);
      }
    }
  }
  verdict.dataset.status = allPassed ? 'pass' : 'fail';
  verdict.textContent = allPassed
    ? `Every check passed in this browser${pin ? ', under your pinned key' : ''}.`
    : 'A check FAILED: see below. Do not rely on this page\'s figures.';
}

function setUpPin() {
  const form = document.getElementById('pin-form');
  const input = document.getElementById('pin');
  input.value = localStorage.getItem(PIN_STORAGE) ?? '';
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const pin = input.value.trim().toLowerCase();
    if (!HEX64.test(pin)) {
      input.setCustomValidity('A key id is 64 hexadecimal digits.');
      input.reportValidity();
      return;
    }
    input.setCustomValidity('');
    localStorage.setItem(PIN_STORAGE, pin);
    run();
  });
  document.getElementById('unpin').addEventListener('click', () => {
    localStorage.removeItem(PIN_STORAGE);
    input.value = '';
    run();
  });
}

if (panel && job) {
  setUpPin();
  run();
}
