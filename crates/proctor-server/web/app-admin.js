// An administrator's view: every account, a form to make one, and per account its tokens
// (list, make, revoke). A new token's secret is in the service's answer to its creation only;
// it is shown once, in output#new-secret, and is gone from the page on the next action or
// sign-out. The admin's own token is never shown.

import {
  api, h, button, dataTable, emptyRow, section, announce, act, confirmAction, showError, timeEl,
  short, idCode,
} from './app-common.js';

const ROLES = ['evaluator', 'vendor', 'regulator', 'admin'];
const TIERS = ['academic', 'auditor', 'regulator', 'commercial'];
const ACCOUNT_COLUMNS = ['Name', 'Role', 'Tier', 'Created', 'Id', 'Tokens'];
const TOKEN_COLUMNS = ['Label', 'Created', 'Revoked', 'Id', 'Action'];

export function adminView(container) {
  const accountsSection = section('accounts', 'Accounts', 'Make accounts and their tokens; revoke tokens.');
  const { table, tbody } = dataTable('Every account, oldest first', ACCOUNT_COLUMNS);
  const labelField = h('input', {
    id: 'new-token-label', type: 'text', maxlength: '128', autocomplete: 'off',
    'aria-describedby': 'new-token-label-note',
  });
  accountsSection.append(
    newAccountForm(),
    h('p', { class: 'field' },
      h('label', { for: 'new-token-label' }, 'Label for the next new token (optional)'),
      labelField,
      h('span', { id: 'new-token-label-note', class: 'muted' },
        ' A label says who holds the token, e.g. a person or a CI job.')),
    table);
  const tokensSection = section('tokens', 'Tokens');
  tokensSection.hidden = true;
  const tokensBody = h('div', { class: 'section-body' });
  tokensSection.append(tokensBody);
  container.append(h('h1', { tabindex: '-1' }, 'Administrator'), accountsSection, tokensSection);

  const accounts = new Map();

  function accountRow(a) {
    accounts.set(a.id, a);
    const name = String(a.name);
    return h('tr', { dataset: { account: a.id } },
      h('th', { scope: 'row' }, name),
      h('td', { dataset: { field: 'role' } }, String(a.role)),
      h('td', {}, a.tier ? String(a.tier) : '—'),
      h('td', {}, timeEl(a.created_at)),
      h('td', {}, idCode(a.id)),
      h('td', {}, h('div', { class: 'button-row' },
        button('Tokens', {
          action: 'tokens', 'aria-label': `Tokens of ${name}`,
          onclick: (e) => act(e.currentTarget, () => showTokens(a)),
        }),
        button('New token', {
          action: 'new-token', 'aria-label': `New token for ${name}`,
          onclick: (e) => act(e.currentTarget, () => newToken(a)),
        }))));
  }

  function newAccountForm() {
    const name = h('input', {
      id: 'account-name', type: 'text', required: true, maxlength: '128', autocomplete: 'off',
      pattern: '[A-Za-z0-9._\\-]{1,128}', 'aria-describedby': 'account-name-note',
    });
    const role = h('select', { id: 'account-role' }, ROLES.map((r) => h('option', { value: r }, r)));
    const tier = h('select', { id: 'account-tier' }, TIERS.map((t) => h('option', { value: t }, t)));
    const tierField = h('p', { class: 'field' }, h('label', { for: 'account-tier' }, 'Tier'), tier);
    // Only evaluators have a tier (the service refuses one for any other role).
    const syncTier = () => {
      tier.disabled = role.value !== 'evaluator';
      tierField.hidden = tier.disabled;
    };
    role.addEventListener('change', syncTier);
    syncTier();
    const form = h('form', { id: 'new-account', class: 'inline-form', 'aria-labelledby': 'new-account-title' },
      h('h3', { id: 'new-account-title' }, 'New account'),
      h('p', { class: 'field' }, h('label', { for: 'account-name' }, 'Name'), name,
        h('span', { id: 'account-name-note', class: 'muted' }, ' Letters, digits, - _ . (at most 128).')),
      h('p', { class: 'field' }, h('label', { for: 'account-role' }, 'Role'), role),
      tierField,
      h('p', { class: 'field' }, button('Create account', { type: 'submit' })));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      act(form.querySelector('button[type=submit]'), async () => {
        const body = { name: name.value.trim(), role: role.value };
        if (role.value === 'evaluator') body.tier = tier.value;
        const account = await api('/v1/accounts', { method: 'POST', body });
        tbody.querySelector('tr.empty')?.remove();
        tbody.append(accountRow(account));
        form.reset();
        syncTier();
        announce(`Account ${String(account.name)} created (${String(account.role)}). It has no token yet: make one with New token.`);
      });
    });
    return form;
  }

  /** Lists an account's tokens in the tokens section; `secret` is a new token's, shown once. */
  async function showTokens(account, secret) {
    const tokens = await api(`/v1/accounts/${encodeURIComponent(account.id)}/tokens`);
    const name = String(account.name);
    const { table: t, tbody: rows } = dataTable(`Tokens of ${name}, revoked ones included`, TOKEN_COLUMNS);
    if (tokens.length === 0) rows.append(emptyRow(TOKEN_COLUMNS.length, 'No tokens.'));
    for (const token of tokens) rows.append(tokenRow(account, token));
    tokensSection.querySelector('h2').textContent = `Tokens of ${name}`;
    tokensBody.replaceChildren(secret ? secretBox(account, secret) : '', t);
    tokensSection.hidden = false;
    tokensSection.dataset.account = account.id;
  }

  function tokenRow(account, token) {
    const label = token.label ? String(token.label) : '(no label)';
    const row = h('tr', { dataset: { token: token.id } },
      h('th', { scope: 'row' }, label),
      h('td', {}, timeEl(token.created_at)),
      h('td', { dataset: { field: 'revoked' } }, token.revoked_at ? timeEl(token.revoked_at) : 'no'),
      h('td', {}, idCode(token.id)),
      h('td', { dataset: { field: 'actions' } }));
    if (!token.revoked_at) {
      row.lastChild.append(button('Revoke', {
        action: 'revoke-token', danger: true, 'aria-label': `Revoke token “${label}” of ${String(account.name)}`,
        onclick: (e) => revokeToken(account, token, label, e.currentTarget),
      }));
    } else {
      row.lastChild.append('—');
    }
    return row;
  }

  async function revokeToken(account, token, label, control) {
    const { confirmed } = await confirmAction({
      title: 'Revoke this token?',
      text: `Revoke token “${label}” (${short(token.id)}) of ${String(account.name)}? The next request `
        + 'that presents it is refused. This cannot be undone.',
      confirm: 'Revoke token',
      fallbackFocus: tokensSection.querySelector('h2'),
    });
    if (!confirmed) return;
    await act(control, async () => {
      await api(`/v1/tokens/${encodeURIComponent(token.id)}`, { method: 'DELETE' });
      // Re-read rather than guess the revocation time; a revoked own token signs out on it.
      await showTokens(account);
      tokensSection.querySelector('h2').focus();
      announce(`Token “${label}” of ${String(account.name)} revoked.`);
    });
  }

  async function newToken(account) {
    const created = await api(`/v1/accounts/${encodeURIComponent(account.id)}/tokens`, {
      method: 'POST', body: { label: labelField.value.trim() },
    });
    labelField.value = '';
    await showTokens(account, String(created.token));
    document.getElementById('new-secret')?.focus();
    announce(`New token for ${String(account.name)} created; copy its secret now.`);
  }

  /** The new secret, once: selectable, copyable, and said plainly to be shown only now. */
  function secretBox(account, secret) {
    const output = h('output', { id: 'new-secret', tabindex: '0', 'aria-describedby': 'new-secret-note' }, secret);
    const copy = button('Copy', {
      action: 'copy-secret',
      onclick: () => Promise.resolve(navigator.clipboard?.writeText(output.textContent))
        .then(() => announce(navigator.clipboard ? 'Copied.' : 'Select the text and copy it.'),
          () => showError('Copying failed: select the text and copy it.')),
    });
    return h('div', { class: 'secret-box' },
      h('p', { id: 'new-secret-note' }, h('strong', {}, `New token for ${String(account.name)}. `),
        'Copy it now: it will not be shown again (the service keeps only its hash).'),
      h('div', { class: 'secret-row' }, output, copy));
  }

  api('/v1/accounts').then((list) => {
    if (list.length === 0) tbody.append(emptyRow(ACCOUNT_COLUMNS.length, 'No accounts.'));
    for (const a of list) tbody.append(accountRow(a));
  }, showError);

  return () => {};
}
