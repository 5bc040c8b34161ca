// An evaluator's jobs: status, progress and released results, live. While any listed job has
// not ended, the list is read again every POLL_MS and each row's cells are updated in place
// (rows are never rebuilt, so focus and selection stay where they were); polling stops once
// every job has ended, and while the tab is hidden. Under a private policy the API withholds
// progress until the job ends (`progress.done` is null): the cell shows "—" and says why.

import {
  TERMINAL, api, h, button, dataTable, emptyRow, section, showError, clearError, timeEl,
  statusBadge, short, eachLimited, count,
} from './app-common.js';

/** How often a live list is read again, in milliseconds. */
export const POLL_MS = 1000;
/** How many of the newest jobs the table lists. */
const LIST_LIMIT = 100;
/** How many result reads run at once when many jobs have ended. */
const RESULT_READS = 4;
/** How often a result read is tried before the cell gives up. */
const MAX_RESULT_TRIES = 3;

const COLUMNS = ['Job', 'Model', 'Policy', 'Status', 'Approval', 'Progress', 'Result', 'Submitted'];

export function evaluatorView(container) {
  const jobs = new Map(); // id -> {row, cells, job, result: 'none' | 'loading' | 'shown'}
  const modelNames = new Map(); // model id -> name, or a promise of it
  let timer = null;
  let stopped = false;

  const jobsSection = section('jobs', 'Your jobs',
    'Jobs you submitted (with proctor job submit or the API), newest first. Each links to '
    + 'its public attestation page.');
  const { table, tbody } = dataTable('Your jobs, newest first', COLUMNS);
  const refresh = button('Refresh', {
    action: 'refresh',
    onclick: () => { clearError(); poll(); },
  });
  // Said once under the table, and tied to each "—" it explains.
  const withheldNote = h('p', { id: 'jobs-withheld-note', class: 'muted', hidden: true },
    'Progress “—”: the job runs under a private policy (differential privacy), so the service '
    + 'withholds its progress until it ends; how fast samples finish depends on what the model '
    + 'said.');
  jobsSection.append(h('div', { class: 'section-tools' }, refresh), table, withheldNote);
  container.append(h('h1', { tabindex: '-1' }, 'Evaluator'), jobsSection);

  /** Reads the list, updates or adds rows, fetches new results, then decides on the next read. */
  let busy = false;
  async function poll() {
    clearTimeout(timer);
    timer = null;
    if (busy) return; // the read in flight schedules the next one
    busy = true;
    try {
      const list = await api(`/v1/jobs?limit=${LIST_LIMIT}`);
      if (stopped) return;
      render(list);
      await loadResults();
    } catch (err) {
      showError(err);
    } finally {
      busy = false;
    }
    schedule();
  }

  /** The next read, only while some job is live and someone can see the page. */
  function schedule() {
    clearTimeout(timer);
    timer = null;
    const live = [...jobs.values()].some((j) => !TERMINAL.has(j.job.status) || j.result === 'none');
    const polling = !stopped && live && document.visibilityState === 'visible';
    jobsSection.dataset.polling = String(polling);
    if (polling) timer = setTimeout(poll, POLL_MS);
  }

  function onVisibility() {
    // Hidden: no reads. Visible again: one read now, which schedules the next if needed.
    if (document.visibilityState === 'visible') poll();
    else schedule();
  }
  document.addEventListener('visibilitychange', onVisibility);

  function render(list) {
    if (list.length === 0 && jobs.size === 0) {
      tbody.replaceChildren(emptyRow(COLUMNS.length,
        'No jobs yet. Submit one with proctor job submit, and it appears here.'));
      return;
    }
    tbody.querySelector('tr.empty')?.remove();
    // The list is newest first: a job not seen before goes above the ones already shown.
    let anchor = tbody.firstChild;
    for (const job of list) {
      const known = jobs.get(job.id);
      if (known) {
        update(known, job);
      } else {
        const entry = createRow(job);
        jobs.set(job.id, entry);
        tbody.insertBefore(entry.row, anchor);
      }
      anchor = jobs.get(job.id).row.nextSibling;
    }
  }

  function createRow(job) {
    const cell = (field) => h('td', { dataset: { field } });
    const cells = {
      model: cell('model'), policy: cell('policy'), status: cell('status'),
      approval: cell('approval'), progress: cell('progress'), result: cell('result'),
      submitted: cell('submitted'),
    };
    const link = h('a', {
      href: `/jobs/${encodeURIComponent(job.id)}`,
      'aria-label': `Attestation of job ${short(job.id)}`,
      title: String(job.id),
    }, h('code', {}, short(job.id)));
    const row = h('tr', { dataset: { job: job.id } }, h('th', { scope: 'row' }, link),
      cells.model, cells.policy, cells.status, cells.approval, cells.progress, cells.result,
      cells.submitted);
    const entry = { row, cells, job: null, result: 'none', tries: 0 };
    cells.policy.textContent = String(job.policy?.name ?? '—');
    cells.submitted.replaceChildren(timeEl(job.created_at));
    showModel(cells.model, job.model);
    update(entry, job);
    return entry;
  }

  /** Changes only the cells whose value changed (the screen reader's and the eye's cue). */
  function update(entry, job) {
    const before = entry.job;
    entry.job = job;
    const { cells } = entry;
    if (before?.status !== job.status) {
      cells.status.replaceChildren(statusBadge(job.status));
      if (TERMINAL.has(job.status)) {
        entry.result = 'none';
        cells.result.textContent = 'loading…';
      } else {
        cells.result.textContent = '—';
      }
    }
    const approval = String(job.approval ?? 'auto');
    if (cells.approval.dataset.value !== approval) {
      cells.approval.dataset.value = approval;
      cells.approval.textContent = approval === 'pending' ? 'pending (waiting for the vendor)'
        : approval;
    }
    showProgress(cells.progress, job.progress);
  }

  function showProgress(cell, progress) {
    const total = progress?.total;
    const done = progress?.done;
    if (done === null || done === undefined) {
      // Withheld: how fast samples finish depends on what the model said.
      cell.textContent = '—';
      cell.title = 'Progress is withheld under this job’s private policy until it ends';
      cell.setAttribute('aria-describedby', withheldNote.id);
      withheldNote.hidden = false;
      return;
    }
    const text = `${count(done)} / ${count(total)}`;
    let bar = cell.querySelector('progress');
    if (cell.firstChild?.nodeValue !== text || !bar) {
      bar ??= h('progress', { 'aria-hidden': 'true' });
      bar.max = Math.max(1, Number(total) || 1);
      bar.value = Math.min(bar.max, Number(done) || 0);
      cell.replaceChildren(text, bar);
      cell.removeAttribute('title');
      cell.removeAttribute('aria-describedby');
    }
  }

  /** The model's name: from the evaluator's covered models, else its public view. */
  function showModel(cell, id) {
    cell.replaceChildren(h('code', { title: String(id) }, short(id)));
    let name = modelNames.get(id);
    if (name === undefined) {
      name = api(`/v1/models/${encodeURIComponent(id)}`).then((m) => String(m.name),
        () => null);
      modelNames.set(id, name);
    }
    Promise.resolve(name).then((n) => {
      if (n) cell.replaceChildren(n);
    });
  }

  /** Reads the released result of every ended job not shown yet. */
  async function loadResults() {
    const waiting = [...jobs.values()].filter((j) => TERMINAL.has(j.job.status) && j.result === 'none');
    await eachLimited(waiting, RESULT_READS, async (entry) => {
      entry.result = 'loading';
      try {
        const result = await api(`/v1/jobs/${encodeURIComponent(entry.job.id)}/result`);
        entry.cells.result.replaceChildren(...resultText(result));
        entry.result = 'shown';
      } catch (err) {
        // Tried again on the next reads; after a few failures the cell says so and stops.
        entry.tries += 1;
        entry.result = entry.tries >= MAX_RESULT_TRIES ? 'failed' : 'none';
        if (entry.result === 'failed') entry.cells.result.textContent = 'result unavailable';
        showError(err);
      }
    });
  }

  // The covered models' names in one read, before the rows ask one by one.
  api('/v1/models').then((models) => {
    for (const m of models) modelNames.set(m.id, String(m.name));
  }, () => {}).finally(() => poll());

  return () => {
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener('visibilitychange', onVisibility);
  };
}

/** A result's headline: each released metric's mean with its interval and n, or why none. */
export function resultText(result) {
  const report = result?.report;
  if (!report) {
    return [result?.reason ? `no result: ${String(result.reason)}` : 'no result'];
  }
  if (report.release?.status !== 'released') {
    const why = report.release?.reason ?? result.reason;
    return [`withheld${why ? `: ${String(why)}` : ''}`];
  }
  const metrics = Object.entries(report.metrics ?? {});
  if (metrics.length === 0) return ['released, no metrics'];
  const lines = metrics.map(([name, m]) => {
    const mean = m?.mean ?? '—';
    const ci = Array.isArray(m?.ci95) ? ` (95% CI ${m.ci95[0]} to ${m.ci95[1]})` : '';
    return h('span', { class: 'metric', dataset: { metric: String(name) } },
      h('strong', {}, String(name)), ` ${String(mean)}${ci}, n ${count(m?.n, { nullText: '—' })}`);
  });
  const dp = report.release?.mechanism && report.release.mechanism !== 'none'
    ? h('span', { class: 'metric muted' }, `${String(report.release.mechanism)}, ε ${String(report.release.epsilon)}`)
    : null;
  return [...lines, dp].filter(Boolean);
}
