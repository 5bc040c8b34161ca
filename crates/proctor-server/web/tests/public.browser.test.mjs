// The public pages in a real browser: Debian's chromium, driven by playwright-core, against
// `proctor demo --keep-serving` (one job run end to end, its attestation already verified by the
// Rust verifier) and, for paging, a `proctor serve` seeded with enough entries.
//
//   cd crates/proctor-server/web && npm ci && node --test tests/public.browser.test.mjs
//
// What it shows: the demo's attestation page passes every check in the browser (under a
// pinned key too); one byte changed in an envelope fails the signature; one figure changed in
// the HTML fails the figures check; the log lists, searches and pages; the history page has its
// chart; without JavaScript the page still shows its figures and says how to check offline;
// axe-core finds no serious or critical violation on the public pages; the attestation page's
// size (asserted under 100 KB) and first render (printed against the 200 ms target); every
// page's security headers and no inline code. The scripts and styles are the tree's
// (`serveLocalAssets`), not whatever copies the binary embeds. Screenshots go to
// tests/screenshots/. Skipped, saying why, when there is no `proctor` binary.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
  haveProctor, proctorBin, startDemo, startService, seed, submitJob, launchBrowser, watchPage,
  screenshot, serveLocalAssets, webDir,
} from './harness.mjs';
import { signedText } from '../job.js';

const skip = haveProctor() ? false : `no proctor binary at ${proctorBin()} (set PROCTOR_BIN)`;
// A skipped suite counts no test in the runner's summary: say so with a skipped test.
if (skip) test('the public pages in chromium', { skip }, () => {});

/** The policy as layout.rs states it (a Rust string with `\`-newline continuations). */
function expectedCsp() {
  const source = fs.readFileSync(path.join(webDir, '..', 'src', 'web', 'layout.rs'), 'utf8');
  const m = /pub const CONTENT_SECURITY_POLICY: &str = "((?:[^"\\]|\\[\s\S])*)";/.exec(source);
  assert.ok(m, 'layout.rs defines CONTENT_SECURITY_POLICY');
  return m[1].replace(/\\\n\s*/g, '');
}

const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KB`;
const FINISHED = '#verdict[data-status="pass"], #verdict[data-status="fail"]';

/** Every check's status on the attestation page: `{"result.signature": "pass", ...}`. */
async function checkStatuses(page) {
  return page.$$eval('ol[data-entry] li[data-check]', (items) => Object.fromEntries(items.map(
    (li) => [`${li.closest('ol').dataset.entry}.${li.dataset.check}`, li.dataset.status],
  )));
}

async function checkDetails(page) {
  return page.$$eval('ol[data-entry] li[data-check]', (items) => items.map(
    (li) => `${li.closest('ol').dataset.entry}.${li.dataset.check}: ${li.textContent.trim()}`,
  ).join('\n'));
}

/** Changes one byte of an envelope's payload (the last digit of `"total":N`, else any
 * digit), keeping the JSON and its base64 well formed, so only the signature can catch it. */
function tamperEnvelope(bytes) {
  const text = Buffer.from(bytes).toString('utf8');
  const { payload } = JSON.parse(text);
  const decoded = Buffer.from(payload, 'base64');
  const statement = decoded.toString('utf8');
  let at = -1;
  const total = /"total":(\d+)/.exec(statement);
  if (total) at = total.index + total[0].length - 1;
  else at = statement.search(/\d(?=[,}\]])/);
  assert.ok(at >= 0, 'a digit to change in the payload');
  const changed = Buffer.from(decoded);
  changed[at] = 0x30 + ((changed[at] - 0x30 + 1) % 10);
  const tampered = changed.toString('base64');
  assert.notEqual(tampered, payload);
  const out = text.replace(`"payload":"${payload}"`, `"payload":"${tampered}"`);
  assert.notEqual(out, text, 'the payload was replaced in place');
  return out;
}

describe('public pages in chromium', { skip }, () => {
  let demo;
  let browser;
  let evalSha;

  before(async () => {
    demo = await startDemo();
    browser = await launchBrowser();
  }, { timeout: 360_000 });

  after(async () => {
    await browser?.close();
    await demo?.stop();
  });

  /** A fresh context and page with the tree's assets and an error watch. */
  async function open(url, { context: options = {}, localAssets = true } = {}) {
    const context = await browser.newContext(options);
    const page = await context.newPage();
    const errors = watchPage(page);
    await errors.ready;
    if (localAssets) await serveLocalAssets(page);
    if (url) await page.goto(url);
    return { context, page, errors };
  }

  test('the demo\'s attestation page passes every check in the browser', async () => {
    const { context, page, errors } = await open(demo.jobUrl);
    try {
      await page.waitForSelector(FINISHED, { timeout: 30_000 });
      const unpinned = await checkStatuses(page);
      const served = (await page.textContent('#served-key-id')).trim();
      assert.match(served, /^[0-9a-f]{64}$/);
      assert.equal((await page.textContent('#computed-key-id')).trim(), served,
        'the key id the browser computed is the one the page shows');
      // Without a pin, the key check is not applicable; every other check passes.
      for (const [name, status] of Object.entries(unpinned)) {
        assert.equal(status, name.endsWith('.key') ? 'skipped' : 'pass',
          `${name}\n${await checkDetails(page)}`);
      }
      assert.ok(Object.keys(unpinned).length >= 10, 'both entries, five checks each');
      assert.equal(await page.getAttribute('#verdict', 'data-status'), 'pass');

      // Pinning the service's key id with the form: the key check passes too.
      await page.fill('#pin', served);
      await page.click('#pin-form button[type="submit"]');
      await page.waitForFunction(() => document.getElementById('verdict').textContent.includes('pinned key'));
      const pinned = await checkStatuses(page);
      for (const [name, status] of Object.entries(pinned)) {
        assert.equal(status, 'pass', `${name}\n${await checkDetails(page)}`);
      }
      assert.equal(await page.getAttribute('#verdict', 'data-status'), 'pass');
      assert.equal(await page.locator('.mismatch').count(), 0);
      await screenshot(page, 'attestation-verified');

      // Another key pinned: the key check fails, and so does the verdict.
      await page.fill('#pin', 'ab'.repeat(32));
      await page.click('#pin-form button[type="submit"]');
      await page.waitForSelector('#verdict[data-status="fail"]');
      assert.equal((await checkStatuses(page))['result.key'], 'fail');
      await page.click('#unpin');
      await page.waitForFunction(() => {
        const v = document.getElementById('verdict');
        return v.dataset.status === 'pass' && !v.textContent.includes('pinned');
      });
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  test('one byte changed in an envelope: the signature fails', async () => {
    const { context, page, errors } = await open();
    try {
      let tampered = 0;
      await page.route((url) => /\/v1\/attestations\/[^/]+\/envelope$/.test(url.pathname), async (route) => {
        const response = await route.fetch();
        const body = tamperEnvelope(await response.body());
        tampered += 1;
        const headers = { ...response.headers() };
        delete headers['content-length'];
        await route.fulfill({ response, headers, body });
      });
      await page.goto(demo.jobUrl);
      await page.waitForSelector(FINISHED, { timeout: 30_000 });
      assert.equal(tampered, 2, 'both envelopes were fetched and changed');
      const statuses = await checkStatuses(page);
      const details = await checkDetails(page);
      for (const entry of ['result', 'accepted']) {
        assert.equal(statuses[`${entry}.signature`], 'fail', details);
        assert.equal(statuses[`${entry}.figures`], 'fail', details);
      }
      assert.equal(await page.getAttribute('#verdict', 'data-status'), 'fail');
      assert.match(await page.textContent('#verdict'), /FAILED/);
      await screenshot(page, 'attestation-tampered');
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  test('one figure changed in the page: the figures check fails', async () => {
    const { context, page, errors } = await open();
    try {
      let changed;
      await page.route(demo.jobUrl, async (route) => {
        const response = await route.fetch();
        const html = await response.text();
        const span = /(<span data-entry="result" data-path="(predicate\.samples\.total)">)(\d+)(<\/span>)/;
        const m = span.exec(html);
        assert.ok(m, 'the page shows the result\'s sample total as a signed figure');
        changed = { path: m[2], from: m[3], to: String(Number(m[3]) + 1) };
        const headers = { ...response.headers() };
        delete headers['content-length'];
        await route.fulfill({
          response, headers, body: html.replace(span, `$1${changed.to}$4`),
        });
      });
      await page.goto(demo.jobUrl);
      await page.waitForSelector(FINISHED, { timeout: 30_000 });
      const statuses = await checkStatuses(page);
      const details = await checkDetails(page);
      assert.equal(statuses['result.signature'], 'pass', details);
      assert.equal(statuses['result.inclusion'], 'pass', details);
      assert.equal(statuses['result.figures'], 'fail', details);
      assert.equal(statuses['accepted.figures'], 'pass', details);
      assert.equal(await page.getAttribute('#verdict', 'data-status'), 'fail');
      const detail = await page.textContent('ol[data-entry="result"] li[data-check="figures"]');
      assert.ok(detail.includes(`${changed.path} shows "${changed.to}", signed "${changed.from}"`), detail);
      const marked = page.locator(`[data-entry="result"][data-path="${changed.path}"].mismatch`);
      assert.equal(await marked.count(), 1, 'the changed figure is marked');
      await screenshot(page, 'attestation-figure-tampered');
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  test('the log lists the demo\'s entries and searches by eval digest', async () => {
    const { context, page, errors } = await open(`${demo.base}/`);
    try {
      const size = Number(await page.textContent('#log-size'));
      assert.ok(size >= 2, `the demo logged its job twice (size ${size})`);
      const indexes = await page.$$eval('tr[data-index]', (rows) => rows.map((r) => Number(r.dataset.index)));
      assert.equal(indexes.length, Math.min(size, 50));
      assert.deepEqual(indexes, [...indexes].sort((a, b) => b - a), 'newest first');
      const kinds = await page.$$eval('tr[data-index]', (rows) => rows.map((r) => r.dataset.kind));
      assert.ok(kinds.includes('accepted') && kinds.includes('result'), kinds.join());
      const jobLinks = await page.$$eval(`tr[data-index] a[href="/jobs/${demo.jobId}"]`, (a) => a.length);
      assert.equal(jobLinks, 2, 'both entries link to the job\'s page');
      const evalHref = await page.getAttribute('tr[data-kind="result"] a[href^="/evals/"]', 'href');
      evalSha = evalHref.split('/').pop();
      assert.match(evalSha, /^[0-9a-f]{64}$/);
      if (size <= 50) {
        assert.equal(await page.locator('a[rel="next"]').count(), 0, 'no paging link on one page');
      }
      await screenshot(page, 'log');

      // Search by the eval's digest, with the form: results only.
      await page.fill('#q-eval', evalSha.toUpperCase());
      await page.selectOption('#q-kind', 'result');
      await Promise.all([page.waitForURL(/eval=/), page.click('form.search button[type="submit"]')]);
      assert.match(await page.textContent('#entries-title'), /Matching entries/);
      const found = await page.$$eval('tr[data-index]', (rows) => rows.map((r) => [
        r.dataset.kind, r.querySelector('a[href^="/evals/"]').getAttribute('href'),
      ]));
      assert.deepEqual(found, [['result', `/evals/${evalSha}`]]);
      assert.equal(await page.inputValue('#q-eval'), evalSha.toUpperCase(), 'the search stays in the form');
      await screenshot(page, 'log-search');

      // A digest nothing ran: no entries; a malformed one: a 400 page that says why.
      await page.goto(`${demo.base}/?eval=${'f'.repeat(64)}`);
      assert.equal(await page.locator('#no-entries').count(), 1);
      const bad = await page.goto(`${demo.base}/?eval=not-a-digest`);
      assert.equal(bad.status(), 400);
      assert.match(await page.textContent('[role="alert"]'), /64 hexadecimal digits/);
      const expected400 = errors.filter((e) => /status of 400/.test(e));
      assert.deepEqual(errors.filter((e) => !expected400.includes(e)), []);
    } finally {
      await context.close();
    }
  });

  test('the history page charts the eval across models', async () => {
    assert.ok(evalSha, 'the log test found the eval');
    const { context, page, errors } = await open(`${demo.base}/evals/${evalSha}`);
    try {
      assert.match(await page.textContent('h1'), /^History of /);
      const chart = page.locator('figure svg.chart');
      assert.equal(await chart.count(), 1);
      assert.ok(await chart.isVisible());
      assert.ok(await page.locator('figure svg.chart circle').count() >= 1, 'a mean is drawn');
      assert.ok((await chart.getAttribute('aria-label')).length > 0);
      const links = await page.$$eval('table.history a[href^="/jobs/"]', (a) => a.map((x) => x.getAttribute('href')));
      assert.ok(links.includes(`/jobs/${demo.jobId}`), links.join());
      await screenshot(page, 'history');
      // The link from the chart's row opens the attestation page.
      await Promise.all([page.waitForURL(/\/jobs\//), page.click(`table.history a[href="/jobs/${demo.jobId}"]`)]);
      await page.waitForSelector(FINISHED);
      assert.equal(await page.getAttribute('#verdict', 'data-status'), 'pass');
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  test('without JavaScript the attestation page shows its figures and how to check offline', async () => {
    const { context, page } = await open(demo.jobUrl, { context: { javaScriptEnabled: false } });
    try {
      const figures = await page.$$eval('[data-entry][data-path]', (els) => els.map((e) => [e.dataset.path, e.textContent]));
      assert.ok(figures.length >= 20, `${figures.length} figures`);
      const total = figures.find(([p]) => p === 'predicate.samples.total');
      assert.ok(total && /^\d+$/.test(total[1]) && Number(total[1]) > 0, String(total));
      assert.ok(await page.locator('table.metrics tbody tr').count() >= 1, 'a metric row');
      assert.ok(await page.locator('table.metrics td.num').first().isVisible());
      assert.equal(await page.locator('figure svg.chart').count(), 1, 'the chart is the server\'s');
      const hint = page.locator('#verification noscript p');
      assert.ok(await hint.isVisible(), 'the noscript hint is shown');
      const text = await hint.textContent();
      assert.ok(text.includes(`proctor attestation get ${demo.jobId}`) && text.includes('proctor verify'), text);
      assert.equal(await page.getAttribute('#verdict', 'data-status'), 'pending');
      assert.equal(await page.locator('li[data-check][data-status="pending"]').count(), 10);
      await screenshot(page, 'attestation-no-javascript');
    } finally {
      await context.close();
    }
  });

  test('every leakage channel\'s bits are on the page, keys with dots included', async () => {
    // The statement's channels are keyed by name, and a metric's channel is `metrics.NAME`:
    // a figure's path must reach that key, not split it.
    const r = await fetch(`${demo.base}/v1/attestations/${demo.jobId}/envelope`);
    const statement = JSON.parse(Buffer.from((await r.json()).payload, 'base64').toString('utf8'));
    const channels = statement.predicate.leakage.channels;
    assert.ok(Object.keys(channels).some((k) => k.includes('.')), JSON.stringify(channels));
    const { context, page } = await open(demo.jobUrl, { context: { javaScriptEnabled: false } });
    try {
      const rows = Object.fromEntries(await page.$$eval(
        'section[aria-labelledby="leakage-title"] table tr',
        (trs) => trs.map((tr) => [tr.querySelector('th').textContent, tr.querySelector('td').textContent]),
      ));
      const wrong = Object.entries(channels)
        .filter(([name, bits]) => rows[name.replace(/_/g, ' ')] !== signedText(bits))
        .map(([name, bits]) => `${name}: signed ${signedText(bits)}, shown ${rows[name.replace(/_/g, ' ')]}`);
      assert.deepEqual(wrong, []);
    } finally {
      await context.close();
    }
  });

  test('axe-core: no serious or critical violation on the public pages', async () => {
    const axePath = path.join(webDir, 'node_modules', 'axe-core', 'axe.min.js');
    assert.ok(fs.existsSync(axePath), 'axe-core is installed (npm ci)');
    // axe is injected as an inline script, which the pages' policy forbids (rightly): this
    // context bypasses CSP, for axe only (the other tests run under it).
    const context = await browser.newContext({ bypassCSP: true });
    const serious = [];
    try {
      for (const [name, url] of [
        ['log', `${demo.base}/`],
        ['attestation', demo.jobUrl],
        ['history', `${demo.base}/evals/${evalSha}`],
        ['app', `${demo.base}/app`],
      ]) {
        const page = await context.newPage();
        await serveLocalAssets(page);
        await page.goto(url);
        await page.waitForLoadState('networkidle');
        if (name === 'attestation') await page.waitForSelector(FINISHED);
        await page.addScriptTag({ path: axePath });
        const violations = await page.evaluate(async () => {
          const out = await globalThis.axe.run(document, { resultTypes: ['violations'] });
          return out.violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')),
          }));
        });
        for (const v of violations) {
          const line = `web: axe ${name}: ${v.impact} ${v.id} (${v.help}) at ${v.nodes.slice(0, 5).join(', ')}`;
          console.log(line);
          if (v.impact === 'serious' || v.impact === 'critical') serious.push(line);
        }
        console.log(`web: axe ${name}: ${violations.length} violations (${violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').length} serious or critical)`);
        await page.close();
      }
    } finally {
      await context.close();
    }
    assert.deepEqual(serious, []);
  });

  test('the attestation page: under 100 KB transferred; first render printed', async () => {
    const { context, page, errors } = await open();
    try {
      const bodies = [];
      page.on('response', (r) => {
        bodies.push(r.body().then((b) => ({ url: r.url(), bytes: b.length }), () => ({ url: r.url(), bytes: 0 })));
      });
      // What went over the wire (headers and bodies, as the browser counted them).
      const cdp = await context.newCDPSession(page);
      await cdp.send('Network.enable');
      let wire = 0;
      cdp.on('Network.loadingFinished', (e) => { wire += e.encodedDataLength; });
      await page.goto(demo.jobUrl);
      await page.waitForSelector(FINISHED, { timeout: 30_000 });
      const verifiedAt = await page.evaluate(() => performance.now());
      await page.waitForLoadState('networkidle');
      const all = await Promise.all(bodies);
      const total = all.reduce((n, b) => n + b.bytes, 0);
      const timing = await page.evaluate(() => {
        const nav = performance.getEntriesByType('navigation')[0];
        const fcp = performance.getEntriesByType('paint').find((p) => p.name === 'first-contentful-paint');
        return {
          responseEnd: nav.responseEnd, domContentLoaded: nav.domContentLoadedEventEnd,
          load: nav.loadEventEnd, fcp: fcp?.startTime,
        };
      });
      const byKind = { document: 0, assets: 0, api: 0, other: 0 };
      for (const b of all) {
        const p = new URL(b.url).pathname;
        const kind = p.startsWith('/assets/') ? 'assets' : p.startsWith('/v1/') ? 'api'
          : p.startsWith('/jobs/') ? 'document' : 'other';
        byKind[kind] += b.bytes;
      }
      // A first load is noisy on a busy two-core machine: three more, each in a new page.
      const again = [];
      for (let i = 0; i < 3; i += 1) {
        const p = await context.newPage();
        await serveLocalAssets(p);
        await p.goto(demo.jobUrl);
        await p.waitForSelector(FINISHED, { timeout: 30_000 });
        again.push(await p.evaluate(() => performance.getEntriesByType('paint')
          .find((e) => e.name === 'first-contentful-paint')?.startTime ?? NaN));
        await p.close();
      }
      const median = again.sort((a, b) => a - b)[1];
      const fcp = timing.fcp === undefined ? 'n/a' : `${timing.fcp.toFixed(0)} ms`;
      console.log(`web: attestation page ${kb(total)} transferred in ${all.length} responses (document ${kb(byKind.document)}, assets ${kb(byKind.assets)}, API ${kb(byKind.api)}${byKind.other ? `, other ${kb(byKind.other)}` : ''}; ${kb(wire)} on the wire with headers), limit 100 KB`);
      console.log(`web: attestation page first contentful paint ${fcp} (target 200 ms), DOMContentLoaded ${timing.domContentLoaded.toFixed(0)} ms, load ${timing.load.toFixed(0)} ms, every check done at ${verifiedAt.toFixed(0)} ms, on loopback`);
      console.log(`web: attestation page first contentful paint, median of 3 more loads ${median.toFixed(0)} ms (${again.map((t) => t.toFixed(0)).join(', ')}; target 200 ms; load average ${os.loadavg()[0].toFixed(1)} on ${os.availableParallelism()} CPUs)`);
      assert.ok(total < 100 * 1024, `${kb(total)} transferred: ${JSON.stringify(all)}`);
      assert.ok(byKind.document > 0 && byKind.assets > 0 && byKind.api > 0, JSON.stringify(byKind));
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  test('every page and asset carries the security headers; no inline code', async () => {
    const csp = expectedCsp();
    for (const directive of ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"]) {
      assert.ok(csp.includes(directive), `layout.rs's policy has ${directive}`);
    }
    assert.ok(!csp.includes('unsafe-inline') && !csp.includes('unsafe-eval'), csp);
    const jobPath = new URL(demo.jobUrl).pathname;
    const pages = [
      ['/', 200], [`/?eval=${evalSha}`, 200], [`/?model=arith&kind=result`, 200], [jobPath, 200],
      [`/evals/${evalSha}`, 200], ['/app', 200], ['/jobs/not-a-job', 404],
      [`/evals/${'0'.repeat(64)}`, 404], ['/?before=x', 400], ['/assets/nothing.js', 404],
    ];
    const assets = ['style.css', 'verify.js', 'job.js', 'app.js', 'app.css'];
    for (const [p, status] of [...pages, ...assets.map((a) => [`/assets/${a}`, 200])]) {
      const r = await fetch(`${demo.base}${p}`);
      const body = await r.text();
      assert.equal(r.status, status, `${p}: ${body.slice(0, 200)}`);
      assert.equal(r.headers.get('content-security-policy'), csp, p);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', p);
      assert.equal(r.headers.get('x-frame-options'), 'DENY', p);
      assert.equal(r.headers.get('referrer-policy'), 'no-referrer', p);
      if (p.startsWith('/assets/') && status === 200) {
        assert.match(r.headers.get('content-type'), p.endsWith('.css') ? /^text\/css/ : /^text\/javascript/, p);
        continue;
      }
      assert.match(r.headers.get('content-type') ?? '', /^text\/html/, p);
      for (const [tag, attrs] of body.matchAll(/<script\b([^>]*)>/gi)) {
        assert.match(attrs, /\ssrc="\/assets\/[^"]+"/, `${p}: a script without src: ${tag}`);
      }
      assert.equal(body.match(/<script\b[^>]*>[^<]+<\/script>/gi), null, `${p}: inline script code`);
      assert.equal(body.match(/<[^>]+\son[a-z]+\s*=/gi), null, `${p}: an event handler attribute`);
      assert.equal(body.match(/<[^>]+\sstyle\s*=/gi), null, `${p}: a style attribute`);
      assert.equal(body.match(/<style\b/gi), null, `${p}: a style element`);
    }
  });
});

describe('log paging', { skip }, () => {
  let svc;
  let browser;

  before(async () => {
    svc = await startService();
    const seeded = await seed(svc, { approval: true });
    // Under manual approval the jobs wait: each is logged once, at acceptance, and none runs.
    for (let i = 0; i < 51; i += 1) await submitJob(svc, seeded);
    browser = await launchBrowser();
  }, { timeout: 300_000 });

  after(async () => {
    await browser?.close();
    await svc?.stop();
  });

  test('more than one page of entries: the paging links', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors = watchPage(page);
    await errors.ready;
    await serveLocalAssets(page);
    try {
      await page.goto(`${svc.base}/`);
      const size = Number(await page.textContent('#log-size'));
      assert.ok(size > 50, `size ${size}`);
      const first = await page.$$eval('tr[data-index]', (rows) => rows.map((r) => Number(r.dataset.index)));
      assert.equal(first.length, 50);
      assert.equal(first[0], size - 1, 'newest first');
      assert.equal(await page.locator('nav.paging a', { hasText: 'Newest' }).count(), 0);
      await Promise.all([page.waitForURL(/before=/), page.click('a[rel="next"]')]);
      const second = await page.$$eval('tr[data-index]', (rows) => rows.map((r) => Number(r.dataset.index)));
      assert.ok(second.length >= 1 && second.length <= 50, `${second.length} rows`);
      assert.equal(second[0], first.at(-1) - 1, 'the next page goes on where the first ended');
      assert.ok(second.every((i) => i < first.at(-1)));
      if (size <= 100) assert.equal(await page.locator('a[rel="next"]').count(), 0, 'the last page');
      await screenshot(page, 'log-older');
      await Promise.all([page.waitForURL((u) => !u.search.includes('before=')), page.click('nav.paging a:text("Newest")')]);
      assert.equal(Number(await page.getAttribute('tr[data-index]', 'data-index')), size - 1);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
});
