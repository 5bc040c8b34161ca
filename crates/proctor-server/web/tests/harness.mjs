// The browser tests' harness: the real `proctor` binary as a service (or as `proctor demo`),
// seeded with the CLI, and Debian's chromium driven by playwright-core (no browser download).
//
//   import { startService, seed, submitJob, waitForJob, startDemo, launchBrowser,
//            watchPage, screenshot, serveLocalAssets } from './harness.mjs';
//
// The binary is $PROCTOR_BIN, else $CARGO_TARGET_DIR/release/proctor, else
// ~/.cache/proctor-target/release/proctor. Every service gets a fresh data directory under the
// system's temporary directory, a generated admin token and a free loopback port (port 0: the
// service prints the one it got); `stop()` ends it and removes the directory.

import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** crates/proctor-server/web: the assets on disk. */
export const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Where `screenshot` writes. */
export const screenshotDir = path.join(webDir, 'tests', 'screenshots');

/** The release `proctor` binary. */
export function proctorBin() {
  if (process.env.PROCTOR_BIN) return path.resolve(process.env.PROCTOR_BIN);
  if (process.env.CARGO_TARGET_DIR) {
    return path.resolve(process.env.CARGO_TARGET_DIR, 'release', 'proctor');
  }
  return path.join(os.homedir(), '.cache', 'proctor-target', 'release', 'proctor');
}

/** Whether the binary is there; a test file may skip, saying why, when it is not. */
export function haveProctor() {
  try {
    fs.accessSync(proctorBin(), fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The caller's environment less whatever would point a child at another service or store. */
function cleanEnv(extra = {}) {
  const env = { ...process.env };
  for (const name of [
    'PROCTOR_DATABASE_URL', 'PROCTOR_DATA_DIR', 'PROCTOR_LISTEN', 'PROCTOR_SERVER',
    'PROCTOR_TOKEN', 'PROCTOR_ADMIN_TOKEN', 'PROCTOR_CREDENTIAL_KEY',
  ]) {
    delete env[name];
  }
  return { ...env, ...extra };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Spawns `bin args` and resolves once a line of its output (stdout or stderr) matches
 * `pattern`, to `{child, match, output()}`. Rejects, with everything it printed, when it
 * exits first or after `timeoutMs`.
 */
function spawnUntil(args, { env, pattern, timeoutMs, what }) {
  const child = spawn(proctorBin(), args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        child.kill('SIGKILL');
        reject(err);
      } else {
        resolve(value);
      }
    };
    const timer = setTimeout(
      () => finish(new Error(`${what} did not start within ${timeoutMs / 1000} s:\n${output}`)),
      timeoutMs,
    );
    // Each stream on its own (a line of one can arrive in two chunks with the other's between),
    // and `output` with both, for messages.
    const streams = { stdout: '', stderr: '' };
    const onData = (name) => (chunk) => {
      output += chunk;
      // After start-up, what it prints is kept for messages only (its last megabyte).
      if (output.length > 2 << 20) output = output.slice(-(1 << 20));
      if (done) return;
      streams[name] += chunk;
      const match = pattern.exec(streams[name]);
      if (match) finish(null, { child, match, output: () => output });
    };
    child.stdout.setEncoding('utf8').on('data', onData('stdout'));
    child.stderr.setEncoding('utf8').on('data', onData('stderr'));
    child.on('error', (e) => finish(new Error(`${what}: cannot run ${proctorBin()}: ${e.message}`)));
    child.on('exit', (code, signal) =>
      finish(new Error(`${what} exited (${signal ?? code}) during start-up:\n${output}`)));
  });
}

/** Ends a child: SIGTERM, then SIGKILL after 5 s; resolves when it has exited. */
function endChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Polls `${base}/healthz` until it answers 2xx. */
async function waitHealthy(base, child, timeoutMs, output) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the service exited:\n${output()}`);
    try {
      const r = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (r.ok) return;
    } catch {
      // not up yet
    }
    if (Date.now() > until) throw new Error(`${base}/healthz did not answer:\n${output()}`);
    await sleep(100);
  }
}

/** Runs the CLI: resolves to its stdout (trailing whitespace trimmed), rejects with its stderr. */
function runCli(args, env, input) {
  return new Promise((resolve, reject) => {
    const child = execFile(
      proctorBin(),
      args,
      { env, maxBuffer: 64 * 1024 * 1024, timeout: 300_000 },
      (err, stdout, stderr) => {
        if (err) {
          const e = new Error(`proctor ${args.join(' ')} failed (${err.code ?? err.signal}): ${stderr.trim()}`);
          e.stderr = stderr;
          e.stdout = stdout;
          e.code = err.code;
          reject(e);
        } else {
          resolve(stdout.trimEnd());
        }
      },
    );
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

/**
 * Starts `proctor serve` over a fresh data directory, on a free loopback port, with a generated
 * admin token. Resolves to
 * `{base, adminToken, dataDir, proctor(args, {token, input}), stop()}`;
 * `proctor(...)` runs the CLI against this service as `token` (default: the admin).
 */
export async function startService({ args = [], env = {} } = {}) {
  const adminToken = `pct_${randomBytes(32).toString('hex')}`;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'proctor-web-'));
  const { child, match, output } = await spawnUntil(
    ['serve', '--data-dir', path.join(dataDir, 'data'), '--listen', '127.0.0.1:0', ...args],
    {
      env: cleanEnv({ PROCTOR_ADMIN_TOKEN: adminToken, ...env }),
      // To the line's end: a chunk can end mid-address.
      pattern: /proctor serve: listening on (http:\/\/[0-9.:]+)\r?\n/,
      timeoutMs: 60_000,
      what: 'proctor serve',
    },
  ).catch((e) => {
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw e;
  });
  const base = match[1];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await endChild(child);
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await waitHealthy(base, child, 30_000, output);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    base,
    adminToken,
    dataDir,
    /** Everything the service printed so far. */
    output,
    proctor: (cliArgs, { token = adminToken, input } = {}) =>
      runCli(cliArgs, cleanEnv({ PROCTOR_SERVER: base, PROCTOR_TOKEN: token }), input),
    stop,
  };
}

/**
 * Seeds a service with the CLI, as .ci/schemathesis.sh does: a vendor and an (academic)
 * evaluator with a token each, a model (`modelEndpoint`, `builtin:NAME[?params]`) granted to
 * the evaluator under the standard policy (`approval: true`: manual approval), and the arith
 * example eval and dataset uploaded by the evaluator.
 */
export async function seed(svc, { modelEndpoint = 'builtin:arith', approval = false } = {}) {
  const as = (token, args) => svc.proctor(args, { token });
  const admin = svc.adminToken;
  const suffix = randomBytes(3).toString('hex');
  const vendorId = JSON.parse(await as(admin, [
    'account', 'create', `web-vendor-${suffix}`, '--role', 'vendor', '--no-token', '--json',
  ])).account.id;
  const vendorToken = await as(admin, ['account', 'token', 'create', vendorId, '--name', 'web']);
  const evaluatorId = JSON.parse(await as(admin, [
    'account', 'create', `web-evaluator-${suffix}`, '--role', 'evaluator', '--tier', 'academic',
    '--no-token', '--json',
  ])).account.id;
  const evaluatorToken = await as(admin, ['account', 'token', 'create', evaluatorId, '--name', 'web']);

  const builtin = /^builtin:(.+)$/.exec(modelEndpoint);
  if (!builtin) throw new Error(`seed: modelEndpoint must be builtin:NAME[?params], not ${modelEndpoint}`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'proctor-seed-'));
  try {
    const config = path.join(work, 'model.toml');
    fs.writeFileSync(config, `adapter = "builtin"\nmodel = ${JSON.stringify(builtin[1])}\n`);
    const modelName = builtin[1].split('?')[0];
    const modelId = await as(vendorToken, [
      'model', 'register', '--name', `${modelName}-${suffix}`, '--version', '1', '--config', config,
    ]);
    const grantId = await as(vendorToken, [
      'grant', 'create', '--model', modelId, '--account', evaluatorId, '--policy', 'standard',
      '--queries-total', '100000', ...(approval ? ['--approval', 'manual'] : []),
    ]);
    await as(evaluatorToken, ['examples', '--out', path.join(work, 'ex')]);
    const evalId = await as(evaluatorToken, ['eval', 'upload', path.join(work, 'ex', 'arith.wasm')]);
    const datasetId = await as(evaluatorToken, [
      'dataset', 'upload', path.join(work, 'ex', 'arith.jsonl'),
    ]);
    return { vendorToken, evaluatorToken, vendorId, evaluatorId, modelId, grantId, evalId, datasetId };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Submits the seeded eval and dataset against the seeded model (or `model`) as the evaluator
 * (or `token`); resolves to the job id. `wait: true` also waits until the job has ended
 * (any terminal state; use `waitForJob` for the state itself).
 */
export async function submitJob(svc, seeded, {
  token = seeded.evaluatorToken, model = seeded.modelId, evalId = seeded.evalId,
  datasetId = seeded.datasetId, policy = 'standard', wait = false,
} = {}) {
  const id = await svc.proctor([
    'job', 'submit', '--eval', evalId, '--dataset', datasetId, '--model', model, '--policy', policy,
  ], { token });
  if (wait) await waitForJob(svc, token, id);
  return id;
}

/** The job states that end a job. */
export const TERMINAL = ['succeeded', 'failed', 'cancelled', 'revoked'];

/**
 * Polls `GET /v1/jobs/{id}` as `token` until its status is one of `states` (default: any
 * terminal one); resolves to the job's JSON view. Rejects after `timeoutMs`.
 */
export async function waitForJob(svc, token, id, states = TERMINAL, { timeoutMs = 120_000 } = {}) {
  const wanted = Array.isArray(states) ? states : [states];
  const until = Date.now() + timeoutMs;
  let last;
  for (;;) {
    const r = await fetch(`${svc.base}/v1/jobs/${encodeURIComponent(id)}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    if (!r.ok) throw new Error(`GET /v1/jobs/${id} answered ${r.status}: ${await r.text()}`);
    last = await r.json();
    if (wanted.includes(last.status)) return last;
    if (Date.now() > until) {
      throw new Error(`job ${id} is ${last.status} after ${timeoutMs / 1000} s (waiting for ${wanted.join('|')})`);
    }
    await sleep(150);
  }
}

/**
 * Runs `proctor demo --keep-serving` on a free loopback port: it runs one job end to end,
 * verifies its attestation, prints the web view's address and serves until stopped. Resolves
 * to `{base, jobUrl, jobId, output(), stop()}` once the address is printed.
 */
export async function startDemo({ args = [] } = {}) {
  const { child, match, output } = await spawnUntil(
    ['demo', '--keep-serving', '--listen', '127.0.0.1:0', ...args],
    {
      env: cleanEnv(),
      pattern: /the web view: (http:\/\/[0-9.:]+)\/jobs\/([^\s/]+)\s/,
      timeoutMs: 300_000,
      what: 'proctor demo',
    },
  );
  const [, base, jobId] = match;
  return { base, jobId, jobUrl: `${base}/jobs/${jobId}`, output, stop: () => endChild(child) };
}

/** Debian's chromium, headless, through playwright-core. */
export async function launchBrowser(options = {}) {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox'],
    headless: true,
    ...options,
  });
}

/**
 * Collects a page's console errors, uncaught errors and Content-Security-Policy violations
 * into the array it returns (synchronously; call it before `page.goto`). `errors.ready` is a
 * promise that resolves once the violation listener is installed.
 */
export function watchPage(page) {
  const errors = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const where = msg.location()?.url ? ` (${msg.location().url})` : '';
    errors.push(`console error: ${msg.text()}${where}`);
  });
  page.on('pageerror', (err) => errors.push(`page error: ${err.message}`));
  // A CSP violation fires `securitypolicyviolation` in the page; an init script (which CSP does
  // not govern) reports it through a binding.
  const ready = (async () => {
    await page.exposeBinding('__proctorCspViolation', (_source, text) => {
      errors.push(`CSP violation: ${text}`);
    });
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        globalThis.__proctorCspViolation?.(
          `${e.effectiveDirective || e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile || e.documentURI}:${e.lineNumber}`,
        );
      });
    });
  })().catch((e) => errors.push(`watchPage: ${e.message}`));
  Object.defineProperty(errors, 'ready', { value: ready, enumerable: false });
  return errors;
}

/** A full-page screenshot at tests/screenshots/<name>.png; resolves to its path. */
export async function screenshot(page, name) {
  fs.mkdirSync(screenshotDir, { recursive: true });
  const file = path.join(screenshotDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

const CONTENT_TYPES = {
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
};

/**
 * Answers the page's `/assets/<name>` requests from the files in crates/proctor-server/web
 * on disk (so a test checks the tree's scripts and styles even when the binary embeds older
 * copies), with the headers the service gives assets. A name that is not a file there (or not
 * an asset type) is passed on to the service.
 */
export async function serveLocalAssets(page) {
  await page.route('**/assets/*', async (route) => {
    const name = decodeURIComponent(new URL(route.request().url()).pathname.split('/').pop());
    const type = CONTENT_TYPES[path.extname(name)];
    const file = path.join(webDir, name);
    if (!type || name.startsWith('.') || name === 'package.json' || name === 'package-lock.json'
      || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      return route.continue();
    }
    return route.fulfill({
      status: 200,
      headers: {
        'content-type': type,
        'cache-control': 'no-cache',
        'x-content-type-options': 'nosniff',
      },
      body: fs.readFileSync(file),
    });
  });
}
