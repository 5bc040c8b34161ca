// The signed-in views (/app) in a real browser: Debian's chromium, driven by playwright-core,
// against a fresh `proctor serve` per test, seeded with the CLI.
//
//   cd crates/proctor-server/web && npm ci && node --test tests/app.browser.test.mjs
//
// What it shows: an evaluator signs in and watches a job submitted with the CLI go from
// queued/running to succeeded, its row updated in place (same element, focus kept), with its
// released result; a vendor revokes a grant from the page through the confirmation dialog
// (cancel first, then confirm) while a job under it runs, and the job ends `revoked`; the token
// is in no URL, cookie, local storage or the page after sign-in, a bad token is refused with the
// service's message, and sign-out removes it from session storage; under a manual grant,
// approve is locked until the component is downloaded (its digest is the eval's) and works
// after; an admin makes an account and a token (shown once, and working), and revokes it. Each
// view is also checked with axe-core. Every page fails its test on a console error, an uncaught
// error or a Content-Security-Policy violation. The scripts and styles are the tree's
// (`serveLocalAssets`), not whatever copies the binary embeds. Screenshots go to
// tests/screenshots/. Skipped, saying why, when there is no `proctor` binary.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import {
  haveProctor, proctorBin, startService, seed, submitJob, waitForJob, launchBrowser, watchPage,
  screenshot, serveLocalAssets, webDir,
} from './harness.mjs';

const skip = haveProctor() ? false : `no proctor binary at ${proctorBin()} (set PROCTOR_BIN)`;
if (skip) test('the signed-in views in chromium', { skip }, () => {});

const TOKEN_KEY = 'proctor.token';
/** Where the tests serve axe-core from (same origin, so the page's CSP admits it). */
const AXE_URL = '/__tests__/axe.min.js';
/** A built-in that answers after `ms`: a 500-sample job then runs for seconds (a few rounds of
 * queries in flight at once). */
const SLOW = (ms) => `builtin:arith?latency_ms=${ms}`;

describe('signed-in views in chromium', { skip }, () => {
  let browser;
  const services = [];

  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await Promise.all(services.map((s) => s.stop()));
  });

  async function service() {
    const svc = await startService();
    services.push(svc);
    return svc;
  }

  /**
   * A fresh context (its own session storage) on `${base}/app`, with the tree's assets and
   * every console error, page error and CSP violation collected; `requests` lists every URL
   * the page asked for.
   */
  async function openApp(base, { viewport = { width: 1280, height: 900 } } = {}) {
    const context = await browser.newContext({ acceptDownloads: true, viewport });
    const page = await context.newPage();
    const errors = watchPage(page);
    await errors.ready;
    await serveLocalAssets(page);
    const axePath = path.join(webDir, 'node_modules', 'axe-core', 'axe.min.js');
    await page.route(`**${AXE_URL}`, (route) => route.fulfill({
      status: 200, headers: { 'content-type': 'text/javascript; charset=utf-8' },
      body: fs.readFileSync(axePath),
    }));
    const requests = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(`${base}/app`);
    await page.waitForSelector('form#sign-in');
    return { context, page, errors, requests };
  }

  async function signIn(page, token) {
    await page.fill('#token', token);
    await page.click('#sign-in button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#whoami')?.textContent.trim());
  }

  /**
   * No console error, uncaught error or CSP violation on the page, but for those `expected`
   * (regular expressions): Chromium logs every refused fetch as a console error, and a test
   * that sends a bad token on purpose expects exactly that one.
   */
  function clean(errors, expected = []) {
    const unexpected = [...errors].filter((e) => !expected.some((re) => re.test(e)));
    assert.deepEqual(unexpected, [], 'no console errors, page errors or CSP violations');
  }

  /** axe-core's serious and critical violations on the page as it stands. axe is loaded from
   * a same-origin URL this test answers (`AXE_URL`), so it runs under the page's own CSP. */
  async function axe(page, name) {
    await page.addScriptTag({ url: new URL(AXE_URL, page.url()).href });
    const violations = await page.evaluate(async () => {
      const out = await globalThis.axe.run(document, { resultTypes: ['violations'] });
      return out.violations.map((v) => ({
        id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')),
      }));
    });
    for (const v of violations) console.log(`web: axe ${name}: ${v.impact} ${v.id} (${v.help})`);
    const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `axe ${name}: ${v.impact} ${v.id} (${v.help}) at ${v.nodes.slice(0, 5).join(', ')}`);
    assert.deepEqual(serious, [], `no serious or critical axe violations on ${name}`);
  }

  const cell = (page, row, field) => page.locator(`${row} td[data-field="${field}"]`);

  test('an evaluator sees its job finish, live, with its result', async () => {
    const svc = await service();
    const seeded = await seed(svc, { modelEndpoint: SLOW(4000) });
    const jobId = await submitJob(svc, seeded);
      const { context, page, errors, requests } = await openApp(svc.base);
    try {
      await signIn(page, seeded.evaluatorToken);
      assert.match(await page.textContent('#whoami'), /evaluator/);
      // An evaluator sees its jobs and nothing of a vendor's or an admin's.
      for (const other of ['#models', '#grants', '#approvals', '#usage', '#accounts']) {
        assert.equal(await page.locator(other).count(), 0, `no ${other} for an evaluator`);
      }
      const row = `section#jobs tr[data-job="${jobId}"]`;
      await page.waitForSelector(row);
      const first = await cell(page, row, 'status').textContent();
      assert.ok(['queued', 'running'].includes(first.trim()), `first seen ${first}, not yet ended`);
      await page.waitForFunction(() => document.querySelector('section#jobs').dataset.polling === 'true');
      assert.equal(await page.getAttribute(`${row} a[href="/jobs/${jobId}"]`, 'href'), `/jobs/${jobId}`);
      // Focus on the row's link, and a handle on the row: both must survive the updates.
      await page.focus(`${row} a`);
      const handle = await page.$(row);
      await page.waitForFunction(
        (sel) => /^\d[\d,]* \/ 500$/.test(document.querySelector(sel)?.textContent ?? ''),
        `${row} td[data-field="progress"]`,
      );
      await page.waitForSelector(`${row} td[data-field="status"] .status-running`, { timeout: 60_000 });
      await screenshot(page, 'evaluator-jobs-running');
      // A hidden tab reads nothing; shown again, it reads at once and goes on.
      const listReads = () => requests.filter((u) => new URL(u).pathname === '/v1/jobs').length;
      await page.evaluate(() => {
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
        document.dispatchEvent(new Event('visibilitychange'));
      });
      await page.waitForFunction(() => document.querySelector('section#jobs').dataset.polling === 'false');
      const hiddenFrom = listReads();
      await page.waitForTimeout(2500);
      assert.ok(listReads() <= hiddenFrom + 1, 'no reads while hidden (one may have been in flight)');
      const readAgain = page.waitForRequest((r) => new URL(r.url()).pathname === '/v1/jobs');
      await page.evaluate(() => {
        delete document.visibilityState;
        document.dispatchEvent(new Event('visibilitychange'));
      });
      await readAgain;
      await page.waitForFunction(
        (sel) => document.querySelector(sel)?.textContent.trim() === 'succeeded',
        `${row} td[data-field="status"]`, { timeout: 120_000 },
      );
      await page.waitForFunction(
        (sel) => /accuracy/.test(document.querySelector(sel)?.textContent ?? ''),
        `${row} td[data-field="result"]`,
      );
      assert.equal(await handle.evaluate((el) => el.isConnected), true, 'the row was updated in place');
      assert.equal(await page.evaluate((sel) => document.activeElement === document.querySelector(sel),
        `${row} a`), true, 'focus stayed on the row');
      assert.equal((await cell(page, row, 'progress').textContent()).trim(), '500 / 500');
      // The cell shows what the API released.
      const result = await (await fetch(`${svc.base}/v1/jobs/${jobId}/result`, {
        headers: { authorization: `Bearer ${seeded.evaluatorToken}` },
      })).json();
      const mean = String(result.report.metrics.accuracy.mean);
      assert.ok((await cell(page, row, 'result').textContent()).includes(mean), `the result shows mean ${mean}`);
      // Everything has ended: no more reads.
      await page.waitForFunction(() => document.querySelector('section#jobs').dataset.polling === 'false');
      await screenshot(page, 'evaluator-jobs');
      await axe(page, 'evaluator view');
      clean(errors);
    } finally {
      await context.close();
    }
  });

  test('under a private policy the evaluator sees no live progress, and the released result', async () => {
    const svc = await service();
    const seeded = await seed(svc);
    // A second model of the vendor's, granted under `strict` (differential privacy).
    const config = path.join(svc.dataDir, 'slow.toml');
    fs.writeFileSync(config, 'adapter = "builtin"\nmodel = "arith?latency_ms=1000"\n');
    const modelId = await svc.proctor(['model', 'register', '--name', 'private-arith', '--version', '1',
      '--config', config], { token: seeded.vendorToken });
    await svc.proctor(['grant', 'create', '--model', modelId, '--account', seeded.evaluatorId,
      '--policy', 'strict', '--epsilon-total', '100'], { token: seeded.vendorToken });
    const jobId = await submitJob(svc, seeded, { model: modelId, policy: 'strict' });
    await waitForJob(svc, seeded.evaluatorToken, jobId, 'running', { timeoutMs: 60_000 });
    const { context, page, errors } = await openApp(svc.base);
    try {
      await signIn(page, seeded.evaluatorToken);
      const row = `section#jobs tr[data-job="${jobId}"]`;
      await page.waitForSelector(row);
      const job = await waitForJob(svc, seeded.evaluatorToken, jobId, ['running']);
      assert.equal(job.progress.done, null, 'the API withholds progress');
      assert.equal((await cell(page, row, 'progress').textContent()).trim(), '—');
      assert.match(await cell(page, row, 'progress').getAttribute('title'), /withheld/);
      await screenshot(page, 'evaluator-private-progress');
      await page.waitForFunction(
        (sel) => ['succeeded', 'failed'].includes(document.querySelector(sel)?.textContent.trim()),
        `${row} td[data-field="status"]`, { timeout: 240_000 },
      );
      await page.waitForFunction((sel) => !/loading/.test(document.querySelector(sel)?.textContent ?? 'loading'),
        `${row} td[data-field="result"]`);
      const ended = await waitForJob(svc, seeded.evaluatorToken, jobId);
      const progress = (await cell(page, row, 'progress').textContent()).trim();
      assert.equal(progress, ended.progress.done === null ? '—' : `${ended.progress.done} / ${ended.progress.total}`);
      const result = await (await fetch(`${svc.base}/v1/jobs/${jobId}/result`, {
        headers: { authorization: `Bearer ${seeded.evaluatorToken}` },
      })).json();
      const text = await cell(page, row, 'result').textContent();
      if (result.report?.release?.status === 'released') {
        assert.match(text, /laplace/, 'a DP release says so');
      } else {
        assert.match(text, /withheld|no result/);
      }
      clean(errors);
    } finally {
      await context.close();
    }
  });

  test('a vendor revokes a grant from the page and its running job ends revoked', async () => {
    const svc = await service();
    const seeded = await seed(svc, { modelEndpoint: SLOW(8000) });
    const jobId = await submitJob(svc, seeded);
    await waitForJob(svc, seeded.evaluatorToken, jobId, 'running', { timeoutMs: 60_000 });
    const { context, page, errors } = await openApp(svc.base);
    try {
      await signIn(page, seeded.vendorToken);
      assert.match(await page.textContent('#whoami'), /vendor/);
      assert.equal(await page.locator('section#jobs').count(), 0, 'a vendor has no jobs section');
      assert.equal(await page.locator('section#accounts').count(), 0, 'nor an admin\'s');
      await page.waitForSelector(`section#models tr[data-model="${seeded.modelId}"]`);
      const row = `section#grants tr[data-grant="${seeded.grantId}"]`;
      await page.waitForSelector(row);
      assert.equal((await cell(page, row, 'status').textContent()).trim(), 'active');
      await page.waitForFunction((sel) => /queries [\d,]+ \/ 100,000/.test(document.querySelector(sel)?.textContent ?? ''),
        `${row} td[data-field="budget"]`);
      await page.waitForSelector('section#usage svg#usage-chart[role="img"][aria-label] > title', { state: 'attached' });

      // Cancel leaves the grant as it was.
      await page.click(`${row} button[data-action="revoke"]`);
      await page.waitForSelector('dialog#confirm[open]');
      const text = await page.textContent('dialog#confirm');
      assert.ok(text.includes(seeded.grantId.slice(0, 8)), 'the dialog names the grant');
      assert.match(text, /web-evaluator-/, 'the dialog names the evaluator');
      assert.match(text, /arith-/, 'the dialog names the model');
      await page.keyboard.press('Escape');
      await page.waitForSelector('dialog#confirm:not([open])', { state: 'attached' });
      assert.equal((await cell(page, row, 'status').textContent()).trim(), 'active');
      assert.equal(await page.evaluate((sel) => document.activeElement === document.querySelector(sel),
        `${row} button[data-action="revoke"]`), true, 'focus went back to the revoke button');
      const grant = await (await fetch(`${svc.base}/v1/grants/${seeded.grantId}`, {
        headers: { authorization: `Bearer ${seeded.vendorToken}` },
      })).json();
      assert.equal(grant.status, 'active', 'cancelling revoked nothing');

      // Confirm revokes it, while the job is still running.
      assert.equal((await waitForJob(svc, seeded.evaluatorToken, jobId, ['running'])).status, 'running');
      await page.click(`${row} button[data-action="revoke"]`);
      await page.waitForSelector('dialog#confirm[open] button[data-action="confirm"]');
      await screenshot(page, 'vendor-revoke-confirm');
      await page.click('dialog#confirm button[data-action="confirm"]');
      await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim().startsWith('revoked'),
        `${row} td[data-field="status"]`);
      assert.equal(await page.locator(`${row} button[data-action="revoke"]`).count(), 0, 'no revoke button on a revoked grant');
      assert.match(await page.textContent('#notice'), /1 running job\(s\) stopping/);
      await screenshot(page, 'vendor-grants');
      const ended = await waitForJob(svc, seeded.evaluatorToken, jobId, undefined, { timeoutMs: 60_000 });
      assert.equal(ended.status, 'revoked', 'the running job ended revoked');
      await axe(page, 'vendor view');
      clean(errors);

      // The evaluator's view says so too.
      const evaluator = await openApp(svc.base);
      try {
        await signIn(evaluator.page, seeded.evaluatorToken);
        const jobRow = `section#jobs tr[data-job="${jobId}"]`;
        await evaluator.page.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim() === 'revoked',
          `${jobRow} td[data-field="status"]`);
        await evaluator.page.waitForFunction((sel) => /no result|withheld|accuracy/.test(document.querySelector(sel)?.textContent ?? ''),
          `${jobRow} td[data-field="result"]`);
        await screenshot(evaluator.page, 'evaluator-job-revoked');
        clean(evaluator.errors);
      } finally {
        await evaluator.context.close();
      }
    } finally {
      await context.close();
    }
  });

  test('the token is in no URL, cookie, local storage or page, and sign-out forgets it', async () => {
    const svc = await service();
    const seeded = await seed(svc);
    const { context, page, errors, requests } = await openApp(svc.base);
    try {
      assert.equal(await page.getAttribute('#token', 'type'), 'password');
      assert.equal(await page.getAttribute('#token', 'autocomplete'), 'off');
      assert.equal(await page.getAttribute('#token', 'name'), null, 'the field has no name to submit');
      assert.equal(await page.textContent('label[for="token"]'), 'API token');

      // A wrong token is refused with the service's message, and not kept.
      await page.fill('#token', 'pct_not-a-token');
      await page.click('#sign-in button[type=submit]');
      await page.waitForSelector('#error[role="alert"]:not([hidden])');
      assert.ok((await page.textContent('#error')).trim().length > 0);
      assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY), null);
      await page.waitForSelector('form#sign-in');

      const token = seeded.evaluatorToken;
      await signIn(page, token);
      assert.equal(await page.locator('#error').isHidden(), true, 'the error is cleared');
      assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY), token);
      assert.ok(!page.url().includes(token), 'not in the URL');
      for (const url of requests) assert.ok(!url.includes(token), `not in a request URL: ${url}`);
      assert.deepEqual(await context.cookies(), [], 'no cookies');
      assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing in local storage');
      const inPage = await page.evaluate((t) => {
        const html = document.documentElement.outerHTML;
        const values = [...document.querySelectorAll('input, output, textarea')].map((e) => e.value ?? '');
        return html.includes(t) || values.some((v) => v.includes(t));
      }, token);
      assert.equal(inPage, false, 'not in the page');
      assert.equal(await page.locator('#token').count(), 0, 'the form is gone once signed in');

      // A reload keeps the session (same tab), without asking again.
      await page.reload();
      await page.waitForFunction(() => document.querySelector('#whoami')?.textContent.trim());
      assert.match(await page.textContent('#whoami'), /web-evaluator-.*evaluator/);
      await screenshot(page, 'signed-in-evaluator');

      await page.click('#sign-out');
      await page.waitForSelector('form#sign-in');
      assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY), null, 'sign-out forgets it');
      assert.equal(await page.evaluate(() => sessionStorage.length), 0);
      assert.equal(await page.locator('section#jobs').count(), 0, 'the view is gone');
      await page.reload();
      await page.waitForSelector('form#sign-in');
      assert.equal(await page.locator('#whoami').textContent(), '');
      await screenshot(page, 'sign-in');
      await axe(page, 'sign-in');
      clean(errors, [/Failed to load resource: .*\b401\b.*\/v1\/me\)$/]);
    } finally {
      await context.close();
    }
  });

  test('approve stays locked until the component is downloaded, and works after', async () => {
    const svc = await service();
    const seeded = await seed(svc, { approval: true });
    const jobId = await submitJob(svc, seeded);
    const waiting = await waitForJob(svc, seeded.evaluatorToken, jobId, ['queued']);
    assert.equal(waiting.approval, 'pending');
    const { context, page, errors } = await openApp(svc.base);
    try {
      await signIn(page, seeded.vendorToken);
      const row = `section#approvals tr[data-approval="${jobId}"]`;
      await page.waitForSelector(row);
      assert.equal(await page.isDisabled(`${row} button[data-action="approve"]`), true, 'approve locked before download');
      assert.equal(await page.isDisabled(`${row} button[data-action="reject"]`), true, 'reject locked before download');
      // Clicking the locked button does nothing.
      await page.click(`${row} button[data-action="approve"]`, { force: true });
      assert.equal((await waitForJob(svc, seeded.evaluatorToken, jobId, ['queued'])).approval, 'pending');

      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.click(`${row} button[data-action="download"]`),
      ]);
      assert.equal(download.suggestedFilename(), `${seeded.evalId}.wasm`);
      const saved = await download.path();
      const digest = createHash('sha256').update(fs.readFileSync(saved)).digest('hex');
      assert.equal(digest, seeded.evalId, 'the download is the eval component');
      await page.waitForSelector(`${row} button[data-action="approve"]:not([disabled])`);
      assert.match(await page.textContent(`${row} td[data-field="component"]`), /sha256 matches/);
      await screenshot(page, 'vendor-approvals');

      await page.click(`${row} button[data-action="approve"]`);
      await page.waitForSelector(row, { state: 'detached' });
      assert.match(await page.textContent('#notice'), /Approved/);
      const ended = await waitForJob(svc, seeded.evaluatorToken, jobId, undefined, { timeoutMs: 120_000 });
      assert.equal(ended.status, 'succeeded');
      assert.equal(ended.approval, 'approved');
      clean(errors);
    } finally {
      await context.close();
    }
  });

  test('an admin makes an account and a token, shown once, and revokes the token', async () => {
    const svc = await service();
    const seeded = await seed(svc);
    const { context, page, errors } = await openApp(svc.base);
    try {
      await signIn(page, svc.adminToken);
      assert.match(await page.textContent('#whoami'), /admin/);
      await page.waitForSelector(`section#accounts tr[data-account="${seeded.vendorId}"]`);
      assert.equal((await cell(page, `tr[data-account="${seeded.vendorId}"]`, 'role').textContent()).trim(), 'vendor');
      for (const other of ['#jobs', '#grants', '#approvals']) {
        assert.equal(await page.locator(other).count(), 0, `no ${other} for an admin`);
      }

      // The form: a labelled name and role; the tier only for evaluators.
      await page.fill('form#new-account input#account-name', 'web-made-lab');
      await page.selectOption('form#new-account select#account-role', 'evaluator');
      await page.selectOption('form#new-account select#account-tier', 'auditor');
      await page.click('form#new-account button[type=submit]');
      const made = page.locator('section#accounts tr[data-account]', { hasText: 'web-made-lab' });
      await made.waitFor();
      const accountId = await made.getAttribute('data-account');
      const accountRow = `section#accounts tr[data-account="${accountId}"]`;

      await page.fill('#new-token-label', 'from the page');
      await page.click(`${accountRow} button[data-action="new-token"]`);
      await page.waitForSelector('output#new-secret');
      const secret = (await page.textContent('output#new-secret')).trim();
      assert.match(await page.textContent('section#tokens'), /will not be shown again/);
      const me = await (await fetch(`${svc.base}/v1/me`, { headers: { authorization: `Bearer ${secret}` } })).json();
      assert.equal(me.name, 'web-made-lab', 'the secret shown is the new account\'s token');
      const tokenRow = page.locator('section#tokens tr[data-token]', { hasText: 'from the page' });
      await tokenRow.waitFor();
      const tokenId = await tokenRow.getAttribute('data-token');
      await screenshot(page, 'admin-accounts');

      // Listing again shows no secret.
      await page.click(`${accountRow} button[data-action="tokens"]`);
      await page.waitForSelector('output#new-secret', { state: 'detached' });

      await page.click(`section#tokens tr[data-token="${tokenId}"] button[data-action="revoke-token"]`);
      await page.waitForSelector('dialog#confirm[open]');
      assert.match(await page.textContent('dialog#confirm'), /from the page.*web-made-lab/s);
      await page.click('dialog#confirm button[data-action="confirm"]');
      await page.waitForSelector(`section#tokens tr[data-token="${tokenId}"] td[data-field="revoked"] time`);
      assert.equal(await page.locator(`section#tokens tr[data-token="${tokenId}"] button[data-action="revoke-token"]`).count(), 0);
      const after = await fetch(`${svc.base}/v1/me`, { headers: { authorization: `Bearer ${secret}` } });
      assert.equal(after.status, 401, 'the revoked token is refused');
      await screenshot(page, 'admin-tokens');
      await axe(page, 'admin view');
      clean(errors);
    } finally {
      await context.close();
    }
  });
});
