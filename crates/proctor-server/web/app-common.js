// What every signed-in view shares: the API client (the bearer token read from this tab's
// session storage on each call, never kept anywhere else), DOM building without HTML parsing,
// the error and notice regions, the confirmation dialog, and small formatters.
//
// Everything the API returns is treated as hostile text: it only ever reaches the page as
// text nodes or attribute values set through the DOM, never as markup.

/** The one place the token lives: this tab's session storage, under this key. */
export const TOKEN_KEY = 'proctor.token';

/** The job states that end a job (proctor_api::jobs::JobStatus::is_terminal). */
export const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'revoked']);

/** An API refusal: its HTTP status, the stable code and the human message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

// One abort controller per signed-in session: signing out aborts every request still in flight,
// so a late answer cannot draw a view of the account that just left.
let session = new AbortController();
let onUnauthenticated = () => {};

/** Called with the ApiError when the service answers 401 (a revoked or unknown token). */
export function setUnauthenticatedHandler(fn) {
  onUnauthenticated = fn;
}

/** Ends the session's requests; the next call of `api` starts a new session. */
export function endSession() {
  session.abort();
  session = new AbortController();
}

/** Whether an error is only the echo of a session that ended (already said, or not worth
 * saying). */
export function isAborted(err) {
  return err?.name === 'AbortError' || err?.code === 'signed_out' || err?.signedOut === true;
}

/**
 * Calls the API as the signed-in account. `body` is sent as JSON; `as` picks how the answer
 * is read: 'json' (the default; null for 204), 'blob', or 'none'. Rejects with an ApiError
 * holding the service's message, and on 401 also tells the unauthenticated handler.
 */
export async function api(path, { method = 'GET', body, rawBody, as = 'json' } = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) throw new ApiError(401, 'signed_out', 'You are signed out.');
  const headers = { authorization: `Bearer ${token}` };
  let payload;
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  } else if (rawBody !== undefined) {
    payload = rawBody;
  }
  const { signal } = session;
  // Same origin only (the CSP says so too); no cookies exist, and none are sent.
  const response = await fetch(path, {
    method, headers, body: payload, signal, cache: 'no-store', credentials: 'omit',
  });
  if (!response.ok) {
    const err = await errorOf(response);
    if (response.status === 401 && !signal.aborted) {
      // The handler signs out and says why; callers need not show it again.
      err.signedOut = true;
      onUnauthenticated(err);
    }
    throw err;
  }
  if (as === 'blob') return response.blob();
  if (as === 'none' || response.status === 204) return null;
  return response.json();
}

/** The service's `{error: {code, message}}`, or a sentence when the body is not that. */
async function errorOf(response) {
  let code = 'http_error';
  let message = `The service answered ${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    if (typeof body?.error?.message === 'string') message = body.error.message;
    if (typeof body?.error?.code === 'string') code = body.error.code;
  } catch {
    // Not JSON: keep the status line.
  }
  return new ApiError(response.status, code, message);
}

/**
 * An element: `h('td', {class: 'num', dataset: {field: 'status'}}, 'text', child)`. Attribute
 * values go through setAttribute and children through append, so nothing is parsed as HTML.
 * Keys starting with `on` add listeners; false, null and undefined values are left out.
 */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  node.append(...flat(children));
  return node;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An SVG element, as `h` builds HTML ones. */
export function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  node.append(...flat(children));
  return node;
}

function setAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'class') node.setAttribute('class', value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
}

function flat(children) {
  return children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false)
    .map((c) => (typeof c === 'object' ? c : String(c)));
}

/** Replaces a node's children, leaving out null, undefined and false (which the DOM's own
 * replaceChildren would write out as text). */
export function fill(node, ...children) {
  node.replaceChildren(...flat(children));
  return node;
}

/**
 * A table with a caption, column headers and a body to fill: returns `{table, tbody}`, where
 * `table` is the table in a wrapper that scrolls sideways on a narrow screen (focusable and
 * named after the caption, so a keyboard can scroll it too).
 */
export function dataTable(caption, columns) {
  const tbody = h('tbody');
  const table = h('div', { class: 'table-wrap', role: 'region', tabindex: '0', 'aria-label': caption },
    h('table', { class: 'app-table' },
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
      tbody));
  return { table, tbody };
}

/** One row in an empty table's body, saying so across all columns. */
export function emptyRow(columns, text) {
  return h('tr', { class: 'empty' }, h('td', { colspan: columns }, text));
}

/** A section with its heading (`id`-title labels it), and optional lede text. */
export function section(id, title, lede) {
  return h('section', { id, class: 'app-section', 'aria-labelledby': `${id}-title` },
    h('h2', { id: `${id}-title`, tabindex: '-1' }, title),
    lede ? h('p', { class: 'muted' }, lede) : null);
}

/** A button (never a link or a div). `danger` marks destructive actions (also by its text). */
export function button(text, { action, danger = false, type = 'button', ...attrs } = {}) {
  return h('button', {
    type, class: danger ? 'danger' : undefined, dataset: action ? { action } : undefined, ...attrs,
  }, text);
}

// --- messages --------------------------------------------------------------------------------

/** Shows an error's message in #error (role=alert); ignores the echoes of a sign-out. */
export function showError(err) {
  if (isAborted(err)) return;
  const box = document.getElementById('error');
  if (!box) return;
  const message = err instanceof Error ? err.message : String(err);
  box.textContent = message || 'Something went wrong.';
  box.hidden = false;
}

/** Empties and hides #error. */
export function clearError() {
  const box = document.getElementById('error');
  if (!box) return;
  box.textContent = '';
  box.hidden = true;
}

/** A polite announcement of what an action did, in #notice (role=status). */
export function announce(text) {
  const box = document.getElementById('notice');
  if (!box) return;
  box.textContent = text;
  box.hidden = !text;
}

/**
 * Runs an action from a button: clears the old error, disables the button meanwhile (so a
 * double click does not send twice), and shows a refusal as the error.
 */
export async function act(control, fn) {
  clearError();
  const wasDisabled = control?.disabled;
  if (control) control.disabled = true;
  try {
    return await fn();
  } catch (err) {
    showError(err);
    return undefined;
  } finally {
    if (control?.isConnected && !wasDisabled) control.disabled = false;
  }
}

// --- the confirmation dialog ------------------------------------------------------------------

/**
 * Asks for confirmation in the page's `<dialog id="confirm">` (modal: focus stays in it,
 * Escape cancels). `reason: true` adds an optional one-line reason field. Resolves to
 * `{confirmed, reason}`. Focus goes back to the control that opened it, or to `fallbackFocus`
 * when that control is gone.
 */
export function confirmAction({ title, text, confirm, reason = false, fallbackFocus }) {
  const dialog = document.getElementById('confirm');
  const opener = document.activeElement;
  const reasonField = h('input', {
    id: 'confirm-reason', type: 'text', maxlength: '500', autocomplete: 'off',
  });
  fill(dialog,
    h('h2', { id: 'confirm-title' }, title),
    h('p', { id: 'confirm-text' }, text),
    reason ? h('p', { class: 'field' },
      h('label', { for: 'confirm-reason' }, 'Reason (optional, written into the public log)'),
      reasonField) : null,
    h('div', { class: 'dialog-actions' },
      button(confirm, { action: 'confirm', danger: true }),
      button('Cancel', { action: 'cancel' })),
  );
  dialog.setAttribute('aria-labelledby', 'confirm-title');
  dialog.setAttribute('aria-describedby', 'confirm-text');
  return new Promise((resolve) => {
    let confirmed = false;
    dialog.querySelector('[data-action=confirm]').addEventListener('click', () => {
      confirmed = true;
      dialog.close();
    });
    dialog.querySelector('[data-action=cancel]').addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => {
      const value = reasonField.value.trim();
      dialog.replaceChildren();
      const back = opener?.isConnected && !opener.disabled ? opener : fallbackFocus;
      back?.focus();
      resolve({ confirmed, reason: value || undefined });
    }, { once: true });
    dialog.showModal();
    // The safe choice has focus first: Enter on a stray keypress cancels.
    dialog.querySelector(reason ? '#confirm-reason' : '[data-action=cancel]').focus();
  });
}

// --- formatting ---------------------------------------------------------------------------

/** The first 8 characters of an id, for tables (the full id in a title). */
export function short(id) {
  return String(id ?? '').slice(0, 8);
}

/** An id as `<code title=full>short</code>`. */
export function idCode(id) {
  return h('code', { title: String(id ?? '') }, short(id));
}

/** A `<time>` with the local reading of an RFC 3339 time; '—' for none. */
export function timeEl(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  const text = Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
    second: '2-digit',
  });
  return h('time', { datetime: String(iso) }, text);
}

/** An integer with thousands separators; 'unlimited' for a null limit. */
export function count(n, { nullText = 'unlimited' } = {}) {
  if (n === null || n === undefined) return nullText;
  return typeof n === 'number' ? n.toLocaleString('en-US') : String(n);
}

/** A status as text in a badge (its class colours it; the word says it). */
export function statusBadge(status) {
  return h('span', { class: `status status-${String(status).replace(/[^a-z-]/g, '')}` }, String(status));
}

/** Runs `fn` over `items`, at most `limit` at a time. */
export async function eachLimited(items, limit, fn) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++];
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
