// A vendor's view: its models (with their identity canaries' state), the grants it gave
// (status, budget used against limit, and revocation behind a confirmation), the jobs waiting
// for its approval (approve or reject only after downloading the component they run, whose
// digest is checked here against the one declared), and its metered usage with a chart over
// time.

import {
  api, h, s, button, dataTable, emptyRow, section, showError, announce,
  act, confirmAction, fill, timeEl, statusBadge, short, idCode, count, eachLimited,
} from './app-common.js';

/** How many budget or identity reads run at once. */
const PARALLEL_READS = 4;
/** Bars in the usage chart, at most. */
const MAX_BARS = 24;
/** Bucket widths the chart picks from, the narrowest that fits MAX_BARS. */
const BUCKETS = [
  [60e3, 'minute'], [5 * 60e3, '5 minutes'], [15 * 60e3, '15 minutes'], [3600e3, 'hour'],
  [6 * 3600e3, '6 hours'], [86400e3, 'day'], [7 * 86400e3, 'week'], [30 * 86400e3, '30 days'],
];

const GRANT_COLUMNS = ['Grant', 'Evaluator', 'Model', 'Policy', 'Status', 'Budget', 'Created', 'Actions'];
const APPROVAL_COLUMNS = ['Job', 'Evaluator', 'Eval', 'Metrics', 'Dataset', 'Policy', 'Submitted', 'Component', 'Decision'];
const MODEL_COLUMNS = ['Model', 'Version', 'Endpoint', 'Credential', 'Identity', 'Registered'];

export function vendorView(container) {
  // What the tables name things by: the vendor can read its models, and evaluators' names
  // only as its usage report and approvals queue give them.
  const models = new Map();
  const evaluatorNames = new Map();
  // Components downloaded this session, by job id: approve and reject unlock only after it.
  const downloaded = new Set();
  let stopped = false;

  const sections = {
    models: section('models', 'Models', 'The models you registered and what the service knows of each.'),
    grants: section('grants', 'Grants',
      'Who may evaluate which model, under which policy and budget. Revoking a grant refuses '
      + 'new jobs, ends queued ones and stops running ones within seconds.'),
    approvals: section('approvals', 'Waiting for approval',
      'Jobs under your manual grants. Download the eval component first; approve and reject '
      + 'unlock once it is downloaded and its digest matches the one declared.'),
    usage: section('usage', 'Usage', 'Exact, metered usage of your models.'),
  };
  const bodies = Object.fromEntries(Object.keys(sections).map((k) => {
    const body = h('div', { class: 'section-body' }, h('p', { class: 'muted' }, 'Loading…'));
    sections[k].append(body);
    return [k, body];
  }));
  const refresh = button('Refresh', { action: 'refresh', onclick: (e) => act(e.currentTarget, load) });
  container.append(h('h1', { tabindex: '-1' }, 'Vendor'),
    h('div', { class: 'section-tools' }, refresh), ...Object.values(sections));

  /** Reads everything, then draws each section; slower per-row reads fill in afterwards. */
  async function load() {
    const [modelList, grants, approvals, usage] = await Promise.all([
      api('/v1/models'), api('/v1/grants'), api('/v1/approvals'), api('/v1/usage'),
    ]);
    if (stopped) return;
    models.clear();
    for (const m of modelList) models.set(m.id, m);
    for (const e of usage.by_evaluator ?? []) evaluatorNames.set(e.evaluator, String(e.name));
    for (const p of approvals) evaluatorNames.set(p.evaluator.id, String(p.evaluator.name));
    drawModels(modelList);
    drawGrants(grants);
    drawApprovals(approvals);
    await drawUsage(usage);
  }

  // --- models ----------------------------------------------------------------------------

  function drawModels(list) {
    const { table, tbody } = dataTable('Your models', MODEL_COLUMNS);
    if (list.length === 0) tbody.append(emptyRow(MODEL_COLUMNS.length, 'No models registered yet.'));
    const identityCells = [];
    for (const m of list) {
      const identity = h('td', { dataset: { field: 'identity' } }, 'loading…');
      identityCells.push([m.id, identity]);
      const endpoint = m.config?.model ? `${String(m.adapter)}: ${String(m.config.model)}` : String(m.adapter);
      tbody.append(h('tr', { dataset: { model: m.id } },
        h('th', { scope: 'row' }, String(m.name)),
        h('td', {}, String(m.version)),
        h('td', { dataset: { field: 'endpoint' } }, endpoint,
          m.config?.base_url ? h('div', { class: 'muted' }, String(m.config.base_url)) : null),
        h('td', {}, m.has_credential ? 'sealed' : 'none'),
        identity,
        h('td', {}, timeEl(m.created_at))));
    }
    bodies.models.replaceChildren(table);
    eachLimited(identityCells, PARALLEL_READS, async ([id, cell]) => {
      try {
        const view = await api(`/v1/models/${encodeURIComponent(id)}/identity`);
        cell.textContent = `${words(view.state)}; latest check: ${words(view.latest)}`;
      } catch (err) {
        cell.textContent = '—';
        if (err.status !== 404) showError(err);
      }
    });
  }

  // --- grants ----------------------------------------------------------------------------

  function grantee(grant) {
    if (grant.grantee?.tier) return `every ${String(grant.grantee.tier)} evaluator`;
    const id = grant.grantee?.account;
    return evaluatorNames.get(id) ?? `account ${short(id)}`;
  }

  function modelName(id) {
    return models.has(id) ? String(models.get(id).name) : `model ${short(id)}`;
  }

  function drawGrants(list) {
    const { table, tbody } = dataTable('Grants you gave', GRANT_COLUMNS);
    if (list.length === 0) tbody.append(emptyRow(GRANT_COLUMNS.length, 'No grants yet.'));
    for (const grant of list) tbody.append(grantRow(grant));
    bodies.grants.replaceChildren(table);
    eachLimited(list, PARALLEL_READS, (grant) => loadBudget(grant.id));
  }

  function grantRow(grant) {
    const row = h('tr', { dataset: { grant: grant.id } },
      h('th', { scope: 'row' }, idCode(grant.id)),
      h('td', { dataset: { field: 'evaluator' } }, grantee(grant)),
      h('td', { dataset: { field: 'model' } }, modelName(grant.model)),
      h('td', {}, String(grant.policy?.name ?? '—'),
        h('div', { class: 'muted' }, `${String(grant.approval)} approval`)),
      h('td', { dataset: { field: 'status' } }),
      h('td', { dataset: { field: 'budget' } }, 'loading…'),
      h('td', {}, timeEl(grant.created_at)),
      h('td', { dataset: { field: 'actions' } }));
    showGrantStatus(row, grant);
    return row;
  }

  /** The status cell and the revoke button, which only a grant not yet revoked has. */
  function showGrantStatus(row, grant) {
    fill(row.querySelector('[data-field=status]'), statusBadge(grant.status),
      grant.revoked_at ? h('div', { class: 'muted' }, 'since ', timeEl(grant.revoked_at)) : null);
    const actions = row.querySelector('[data-field=actions]');
    if (grant.status === 'active' || grant.status === 'suspended') {
      actions.replaceChildren(button('Revoke', {
        action: 'revoke', danger: true,
        'aria-label': `Revoke grant ${short(grant.id)} (${grantee(grant)}, ${modelName(grant.model)})`,
        onclick: (e) => revoke(grant, e.currentTarget),
      }));
    } else {
      actions.replaceChildren('—');
    }
  }

  async function revoke(grant, control) {
    const { confirmed } = await confirmAction({
      title: 'Revoke this grant?',
      text: `Revoke grant ${short(grant.id)}: ${grantee(grant)} on model ${modelName(grant.model)}. `
        + 'New jobs under it are refused, its queued jobs end revoked and its running jobs stop '
        + 'within seconds. This cannot be undone.',
      confirm: 'Revoke grant',
      fallbackFocus: sections.grants.querySelector('h2'),
    });
    if (!confirmed) return;
    await act(control, async () => {
      const revoked = await api(`/v1/grants/${encodeURIComponent(grant.id)}/revoke`, { method: 'POST' });
      const row = sections.grants.querySelector(`tr[data-grant="${CSS.escape(grant.id)}"]`);
      if (row) showGrantStatus(row, revoked.grant);
      // The button is gone; the heading keeps the keyboard in the section.
      sections.grants.querySelector('h2').focus();
      announce(`Grant ${short(grant.id)} revoked: ${revoked.ended.length} queued job(s) ended, `
        + `${revoked.stopping.length} running job(s) stopping.`);
      await loadBudget(grant.id);
    });
  }

  async function loadBudget(id) {
    const cell = sections.grants.querySelector(`tr[data-grant="${CSS.escape(id)}"] [data-field=budget]`);
    if (!cell) return;
    try {
      const budget = await api(`/v1/grants/${encodeURIComponent(id)}/budget`);
      cell.replaceChildren(...budgetLines(budget));
    } catch (err) {
      cell.textContent = '—';
      showError(err);
    }
  }

  // --- approvals -------------------------------------------------------------------------

  function drawApprovals(list) {
    const { table, tbody } = dataTable('Jobs waiting for your approval, oldest first', APPROVAL_COLUMNS);
    if (list.length === 0) tbody.append(emptyRow(APPROVAL_COLUMNS.length, 'No jobs are waiting.'));
    for (const pending of list) tbody.append(approvalRow(pending));
    bodies.approvals.replaceChildren(table);
  }

  function approvalRow(p) {
    const id = p.job;
    const note = h('span', { id: `download-note-${id}`, class: 'muted' },
      downloaded.has(id) ? 'downloaded' : 'not downloaded yet');
    const approve = button('Approve', {
      action: 'approve', disabled: !downloaded.has(id), 'aria-describedby': note.id,
      onclick: (e) => decide(p, 'approve', e.currentTarget),
    });
    const reject = button('Reject', {
      action: 'reject', danger: true, disabled: !downloaded.has(id), 'aria-describedby': note.id,
      onclick: (e) => decide(p, 'reject', e.currentTarget),
    });
    const download = button('Download component', {
      action: 'download', onclick: (e) => fetchComponent(p, e.currentTarget, note, [approve, reject]),
    });
    const metrics = (p.eval.metrics ?? []).map((m) => h('div', {},
      h('code', {}, String(m.name)), ` in [${String(m.min)}, ${String(m.max)}]`));
    return h('tr', { dataset: { approval: id } },
      h('th', { scope: 'row' }, idCode(id)),
      h('td', {}, String(p.evaluator.name), p.evaluator.tier ? h('div', { class: 'muted' }, String(p.evaluator.tier)) : null),
      h('td', {}, `${String(p.eval.name)} ${String(p.eval.version)}`,
        h('div', { class: 'muted' }, idCode(p.eval.sha256), `, ${count(p.eval.size)} bytes`)),
      h('td', {}, metrics.length ? metrics : '—'),
      h('td', {}, `${count(p.dataset.items)} items`, h('div', { class: 'muted' }, idCode(p.dataset.sha256))),
      h('td', {}, String(p.policy.name)),
      h('td', {}, timeEl(p.created_at)),
      h('td', { dataset: { field: 'component' } }, download, note),
      h('td', { dataset: { field: 'decision' } }, h('div', { class: 'button-row' }, approve, reject)));
  }

  /** Downloads the waiting job's component with the token, checks its digest, saves it. */
  async function fetchComponent(p, control, note, decisions) {
    await act(control, async () => {
      const blob = await api(`/v1/approvals/${encodeURIComponent(p.job)}/component`, { as: 'blob' });
      const declared = String(p.eval.sha256).toLowerCase();
      const digest = await sha256Hex(blob);
      if (digest !== null && digest !== declared) {
        note.textContent = 'digest mismatch: do not approve';
        throw new Error(`The downloaded component's sha256 is ${digest}, not the declared ${declared}.`);
      }
      save(blob, /^[0-9a-f]{64}$/.test(declared) ? `${declared}.wasm` : 'component.wasm');
      downloaded.add(p.job);
      note.textContent = digest === null
        ? `downloaded (${count(blob.size)} bytes)`
        : `downloaded (${count(blob.size)} bytes), sha256 matches`;
      for (const b of decisions) b.disabled = false;
    });
  }

  async function decide(p, decision, control) {
    let body;
    if (decision === 'reject') {
      const { confirmed, reason } = await confirmAction({
        title: 'Reject this job?',
        text: `Reject job ${short(p.job)} from ${String(p.evaluator.name)} (eval ${String(p.eval.name)} `
          + `${String(p.eval.version)})? It ends cancelled, and the log records that it never ran.`,
        confirm: 'Reject job',
        reason: true,
        fallbackFocus: sections.approvals.querySelector('h2'),
      });
      if (!confirmed) return;
      body = reason ? { reason } : undefined;
    }
    await act(control, async () => {
      const job = await api(`/v1/approvals/${encodeURIComponent(p.job)}/${decision}`, {
        method: 'POST', body, rawBody: body ? undefined : '',
      });
      const row = sections.approvals.querySelector(`tr[data-approval="${CSS.escape(p.job)}"]`);
      const tbody = row?.parentElement;
      row?.remove();
      if (tbody && !tbody.querySelector('tr')) {
        tbody.append(emptyRow(APPROVAL_COLUMNS.length, 'No jobs are waiting.'));
      }
      sections.approvals.querySelector('h2').focus();
      announce(decision === 'approve'
        ? `Approved: job ${short(p.job)} is ${String(job.status)}.`
        : `Rejected: job ${short(p.job)} is ${String(job.status)}.`);
    });
  }

  // --- usage -----------------------------------------------------------------------------

  async function drawUsage(usage) {
    const t = usage.total ?? {};
    const totals = h('dl', { class: 'facts' },
      h('dt', {}, 'Queries'), h('dd', { dataset: { field: 'queries' } }, count(t.queries)),
      h('dt', {}, 'Input tokens'), h('dd', {}, count(t.input_tokens)),
      h('dt', {}, 'Output tokens'), h('dd', {}, count(t.output_tokens)),
      h('dt', {}, 'In flight'), h('dd', {}, count(t.in_flight)));
    const byModel = counterTable('Usage by model', 'Model', usage.by_model ?? [],
      (r) => String(r.name), 'model');
    const byEvaluator = counterTable('Usage by evaluator', 'Evaluator', usage.by_evaluator ?? [],
      (r) => String(r.name), 'evaluator');
    const figure = h('figure', { class: 'usage-figure' }, h('p', { class: 'muted' }, 'Drawing the chart…'));
    bodies.usage.replaceChildren(totals, figure, byModel, byEvaluator);

    const jobs = usage.by_job ?? [];
    const points = jobs.map((j) => ({
      t: Date.parse(j.created_at), queries: j.queries, tokens: j.input_tokens + j.output_tokens,
    })).filter((p) => Number.isFinite(p.t));
    const { svg, table } = usageChart(points);
    figure.replaceChildren(svg,
      h('figcaption', {}, 'Model queries by when each job was submitted.'),
      h('details', {}, h('summary', {}, 'The chart’s figures'), table));
  }

  load().catch(showError);
  return () => { stopped = true; };
}

function counterTable(caption, what, rows, name, key) {
  const columns = [what, 'Queries', 'Input tokens', 'Output tokens', 'In flight'];
  const { table, tbody } = dataTable(caption, columns);
  if (rows.length === 0) tbody.append(emptyRow(columns.length, 'No usage yet.'));
  for (const r of rows) {
    tbody.append(h('tr', { dataset: { [key]: r[key] } },
      h('th', { scope: 'row' }, name(r)),
      h('td', { class: 'num' }, count(r.queries)),
      h('td', { class: 'num' }, count(r.input_tokens)),
      h('td', { class: 'num' }, count(r.output_tokens)),
      h('td', { class: 'num' }, count(r.in_flight))));
  }
  return table;
}

/** A budget view's figures, as lines: queries and tokens over the grant's life, and the daily
 * ones that have a limit. */
export function budgetLines(b) {
  const line = (label, v) => {
    if (!v) return null;
    const used = v.used ?? v.worst_case ?? 0;
    const held = v.reserved ? ` (+${count(v.reserved)} in flight)` : '';
    return h('div', {}, `${label} ${count(used)} / ${count(v.limit)}${held}`);
  };
  return [
    line('queries', b.queries_total),
    line('tokens', b.tokens_total),
    b.queries_today?.limit != null ? line('queries today', b.queries_today) : null,
    b.tokens_today?.limit != null ? line('tokens today', b.tokens_today) : null,
    b.jobs_today?.limit != null ? line('jobs today', b.jobs_today) : null,
    b.epsilon?.total != null ? h('div', {}, `ε ${String(b.epsilon.spent)} / ${String(b.epsilon.total)}`) : null,
  ].filter(Boolean);
}

/** `not_enrolled` as "not enrolled". */
function words(value) {
  return String(value ?? '—').replace(/[_-]/g, ' ');
}

async function sha256Hex(blob) {
  if (!globalThis.crypto?.subtle) return null; // not a secure context: nothing to check with
  const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Saves a blob as a file through an object URL and a download link. */
function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = h('a', { href: url, download: name, class: 'visually-hidden' }, name);
  document.body.append(link);
  link.click();
  link.remove();
  // The download has its bytes once it starts; the URL is only kept a while for slow disks.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// --- the usage chart ---------------------------------------------------------------------

/** The bucket width (ms) and its name: the narrowest with at most MAX_BARS bars. */
function bucketFor(min, max) {
  for (const [width, name] of BUCKETS) {
    if (Math.floor(max / width) - Math.floor(min / width) + 1 <= MAX_BARS) return [width, name];
  }
  const width = Math.ceil((max - min + 1) / (MAX_BARS - 1));
  return [width, `${Math.round(width / 86400e3)} days`];
}

/** 1, 2 or 5 times a power of ten, at least `n`. */
function niceCeil(n) {
  if (n <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 5, 10]) if (m * p >= n) return m * p;
  return 10 * p;
}

function bucketLabel(t, width) {
  const d = new Date(t);
  return width >= 86400e3
    ? d.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' })
    : d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

/**
 * A bar chart of queries per time bucket, as `{svg, table}`: the SVG (role=img, with a title
 * and a label that sums it up) and a table of the same figures for those who prefer one.
 */
export function usageChart(points) {
  const W = 640;
  const H = 260;
  const L = 64;
  const R = 16;
  const T = 28;
  const B = 44;
  const ink = '#1d232b';
  const svg = s('svg', {
    id: 'usage-chart', class: 'chart', role: 'img', viewBox: `0 0 ${W} ${H}`, width: W, height: H,
  });
  const { table, tbody } = dataTable('Model queries over time', ['From', 'Queries', 'Tokens']);
  if (points.length === 0) {
    // A short strip that says so, not an empty plot.
    svg.setAttribute('viewBox', `0 0 ${W} 48`);
    svg.setAttribute('height', '48');
    svg.setAttribute('aria-label', 'Usage chart: no usage yet');
    svg.append(s('title', {}, 'Usage over time: no usage yet'),
      s('text', { x: W / 2, y: 28, 'text-anchor': 'middle', fill: ink, 'font-size': 14 }, 'No usage yet'));
    tbody.append(emptyRow(3, 'No usage yet.'));
    return { svg, table };
  }
  const min = Math.min(...points.map((p) => p.t));
  const max = Math.max(...points.map((p) => p.t));
  const [width, unit] = bucketFor(min, max);
  const first = Math.floor(min / width) * width;
  const n = Math.floor(max / width) - Math.floor(min / width) + 1;
  const bars = Array.from({ length: n }, (_, i) => ({ t: first + i * width, queries: 0, tokens: 0 }));
  for (const p of points) {
    const bar = bars[Math.floor(p.t / width) - Math.floor(min / width)];
    bar.queries += p.queries;
    bar.tokens += p.tokens;
  }
  const top = niceCeil(Math.max(...bars.map((b) => b.queries)));
  const plotW = W - L - R;
  const plotH = H - T - B;
  const y = (v) => T + plotH - (v / top) * plotH;
  const slot = plotW / n;
  const busiest = bars.reduce((a, b) => (b.queries > a.queries ? b : a));
  const summary = `Bar chart of model queries per ${unit}, from ${bucketLabel(first, width)} to `
    + `${bucketLabel(bars[n - 1].t, width)}: ${count(bars.reduce((a, b) => a + b.queries, 0))} `
    + `queries in all, at most ${count(busiest.queries)} in one ${unit} (from ${bucketLabel(busiest.t, width)}).`;
  svg.setAttribute('aria-label', summary);
  svg.append(s('title', {}, `Model queries per ${unit}`), s('desc', {}, summary),
    s('text', { x: 4, y: 16, fill: ink, 'font-size': 12 }, `queries per ${unit}`));
  for (const v of [0, top / 2, top]) {
    svg.append(
      s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#d0d4da', 'stroke-width': 1 }),
      s('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', fill: ink, 'font-size': 12 }, count(v)));
  }
  bars.forEach((bar, i) => {
    const barW = Math.max(1, Math.min(slot * 0.7, 56));
    const x = L + i * slot + (slot - barW) / 2;
    const heightPx = Math.max(bar.queries > 0 ? 1 : 0, T + plotH - y(bar.queries));
    svg.append(s('rect', {
      x, y: T + plotH - heightPx, width: barW, height: heightPx, fill: '#0b4f9c',
      dataset: { queries: bar.queries },
    }, s('title', {}, `${bucketLabel(bar.t, width)}: ${count(bar.queries)} queries`)));
    tbody.append(h('tr', {}, h('th', { scope: 'row' }, bucketLabel(bar.t, width)),
      h('td', { class: 'num' }, count(bar.queries)), h('td', { class: 'num' }, count(bar.tokens))));
  });
  svg.append(s('line', { x1: L, x2: W - R, y1: T + plotH, y2: T + plotH, stroke: ink, 'stroke-width': 1 }),
    s('line', { x1: L, x2: L, y1: T, y2: T + plotH, stroke: ink, 'stroke-width': 1 }));
  const labelled = [...new Set([0, Math.floor((n - 1) / 2), n - 1])];
  for (const i of labelled) {
    // The outer labels align with the plot's edges so they never run off the chart.
    let [x, anchor] = [L + i * slot + slot / 2, 'middle'];
    if (n > 1 && i === 0) [x, anchor] = [L, 'start'];
    else if (n > 1 && i === n - 1) [x, anchor] = [W - R, 'end'];
    svg.append(s('text', { x, y: H - B + 18, 'text-anchor': anchor, fill: ink, 'font-size': 12 },
      bucketLabel(bars[i].t, width)));
  }
  svg.append(s('text', { x: L + plotW / 2, y: H - 6, 'text-anchor': 'middle', fill: ink, 'font-size': 12 },
    `when the job was accepted (per ${unit})`));
  return { svg, table };
}
