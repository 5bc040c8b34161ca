// The signed-in views at /app. The visitor pastes an API token once; it is kept in this tab's
// session storage only (never a URL, a cookie, local storage or the page), read again for each
// API call, and forgotten on sign-out, on a 401, or when the tab closes. The account's role
// (GET /v1/me) picks the view: an evaluator's jobs, a vendor's models, grants, approvals and
// usage, an admin's accounts and tokens. The server renders only the shell; every view is
// built here from the API's answers, as text (app-common.js).

import {
  TOKEN_KEY, api, h, button, clearError, showError, announce, endSession,
  setUnauthenticatedHandler,
} from './app-common.js';
import { evaluatorView } from './app-evaluator.js';
import { vendorView } from './app-vendor.js';
import { adminView } from './app-admin.js';

/** The view of each role: `(container, me) => stop()` (stop ends its timers and listeners). */
const VIEWS = {
  evaluator: evaluatorView,
  vendor: vendorView,
  admin: adminView,
  regulator: regulatorView,
};

const root = document.getElementById('app');
let stopView = null;

/** The frame every state shares: who is signed in, the error and notice regions, the dialog. */
function frame() {
  root.replaceChildren(
    h('div', { class: 'app-bar', id: 'account-bar', hidden: true },
      h('p', { id: 'whoami' }),
      button('Sign out', { id: 'sign-out', onclick: signOut })),
    h('p', { id: 'error', role: 'alert', class: 'error app-error', hidden: true }),
    h('p', { id: 'notice', role: 'status', class: 'app-notice', hidden: true }),
    h('div', { id: 'view' }),
    h('dialog', { id: 'confirm', class: 'app-dialog' }),
  );
}

/** The sign-in form. The field has no `name`, so even a form sent without this script would
 * carry no token; it is read, stored and cleared in the submit handler. */
function showSignIn() {
  document.getElementById('account-bar').hidden = true;
  document.getElementById('whoami').textContent = '';
  const input = h('input', {
    id: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false',
    autocapitalize: 'off', required: true, 'aria-describedby': 'token-note',
  });
  const form = h('form', { id: 'sign-in', class: 'sign-in', method: 'post', action: '/app' },
    h('label', { for: 'token' }, 'API token'),
    h('div', { class: 'sign-in-row' }, input, button('Sign in', { type: 'submit' })),
    h('p', { id: 'token-note', class: 'muted' },
      'The token stays in this browser tab’s session storage and is sent only to this '
      + 'service’s API. It is never put in a URL or a cookie; closing the tab or signing out '
      + 'forgets it.'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const token = input.value.trim();
    input.value = '';
    if (!token) {
      showError('Paste an API token to sign in.');
      input.focus();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    start({ fromForm: true });
  });
  document.getElementById('view').replaceChildren(
    h('h1', {}, 'Sign in'),
    h('p', { class: 'lede' },
      'Evaluators follow their jobs, vendors manage their models, grants and approvals, and '
      + 'administrators manage accounts. The public log needs no token.'),
    form);
  input.focus();
}

/** Reads the account behind the stored token and shows its role's view. */
async function start({ fromForm = false } = {}) {
  clearError();
  let me;
  try {
    me = await api('/v1/me');
  } catch (err) {
    // 401 already signed out (the handler below). Another failure on submit leaves no
    // half-signed-in state behind; on load, a stored token survives a network blip.
    if (fromForm && err.status !== 401) sessionStorage.removeItem(TOKEN_KEY);
    if (err.status !== 401) {
      showSignIn();
      showError(err);
    }
    return;
  }
  const render = VIEWS[me.role];
  document.getElementById('whoami').replaceChildren(
    'Signed in as ', h('strong', {}, String(me.name)), ` (${String(me.role)})`);
  document.getElementById('account-bar').hidden = false;
  const view = document.getElementById('view');
  view.replaceChildren();
  if (!render) {
    showError(`This page has no view for the role ${String(me.role)}.`);
    return;
  }
  stopView = render(view, me);
  // Screen readers and keyboards start at the view's heading.
  view.querySelector('h1')?.focus();
}

/** Forgets the token, ends the view and its requests, and shows the form again. */
function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  endSession();
  stopView?.();
  stopView = null;
  announce('');
  clearError();
  showSignIn();
}

// A 401 anywhere (a revoked or expired token): back to the form, with the service's words.
setUnauthenticatedHandler((err) => {
  const wasSignedIn = stopView !== null;
  signOut();
  showError(wasSignedIn ? `Signed out: ${err.message}` : `The token was refused: ${err.message}`);
});

/** Regulators read the public log; there is nothing here their token adds. */
function regulatorView(container) {
  container.append(
    h('h1', { tabindex: '-1' }, 'Regulator'),
    h('p', {}, 'Everything a regulator checks is public: ',
      h('a', { href: '/' }, 'the log'),
      ', each job’s attestation page, and ', h('code', {}, 'proctor verify'), ' offline.'));
  return () => {};
}

frame();
if (sessionStorage.getItem(TOKEN_KEY)) start();
else showSignIn();
