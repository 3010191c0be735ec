// The Audit page (admins): who changed what, from which address and when, newest first. The
// filters live in the address (#/audit?actor=alice&action=job.), so a filtered view can be
// bookmarked and Back undoes a filter; "Older" fetches the next page with the API's
// next_before; "Download CSV" asks /api/v1/audit.csv with the same filters.

import { state, api } from './api.js';
import { h, fill, when, breakable } from './ui.js';

// The action filter's choices. A value ending with "." is a family (the API matches it as a
// prefix: "job." is job.create, job.pause, ...); the others are single actions.
const ACTIONS = [
  ['', 'All actions'],
  ['sign_in', 'Sign-ins (sign_in)'],
  ['sign_in_failed', 'Failed sign-ins (sign_in_failed)'],
  ['sign_out', 'Sign-outs (sign_out)'],
  ['password.', 'Password changes (password.)'],
  ['job.', 'Transfers (job.)'],
  ['connector.', 'Connectors (connector.)'],
  ['destination.', 'Destinations (destination.)'],
  ['user.', 'Accounts (user.)'],
  ['token.', 'API tokens (token.)'],
  ['settings.', 'Settings (settings.)'],
];

// The filters, by their names in the address and in the API.
const FILTERS = ['actor', 'action', 'target', 'since', 'until'];
// Rows per page; `limit` in the address overrides it (1 to the API's 10,000).
const PAGE = 100;
// The CSV asks for as many rows as the API gives in one answer.
const CSV_ROWS = 10000;

// RFC 3339 in UTC to the second (the API keeps seconds), from a date input's YYYY-MM-DD read in
// the browser's time zone: the start of the day for `since`, its last second for `until`.
function dayBound(day, end) {
  const d = new Date(`${day}T${end ? '23:59:59' : '00:00:00'}`);
  return isNaN(d) ? null : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// The API's query string for the filters `f` (values as the form holds them).
export function auditQuery(f, extra = {}) {
  const q = new URLSearchParams();
  for (const k of ['actor', 'action', 'target']) if (f[k]) q.set(k, f[k]);
  if (f.since && dayBound(f.since, false)) q.set('since', dayBound(f.since, false));
  if (f.until && dayBound(f.until, true)) q.set('until', dayBound(f.until, true));
  for (const [k, v] of Object.entries(extra)) if (v !== null && v !== undefined) q.set(k, String(v));
  return q.toString();
}

export function auditView(main, params) {
  const f = Object.fromEntries(FILTERS.map((k) => [k, (params.get(k) || '').trim()]));
  const limit = Math.min(CSV_ROWS, Math.max(1, Math.floor(Number(params.get('limit'))) || PAGE));
  let next = null;

  const input = (id, label, attrs) => {
    const el = h('input', { id: `audit-${id}`, name: id, value: f[id], ...attrs });
    return [el, h('div', { class: 'field' }, h('label', { for: `audit-${id}` }, label), el)];
  };
  const [actor, actorField] = input('actor', 'Who', { type: 'text', placeholder: 'alice', autocomplete: 'off', spellcheck: false });
  const [target, targetField] = input('target', 'Target', { type: 'text', placeholder: 'an id or name', autocomplete: 'off', spellcheck: false });
  const [since, sinceField] = input('since', 'From', { type: 'date' });
  const [until, untilField] = input('until', 'To', { type: 'date' });
  // An action from a bookmarked address that is not a listed choice stays selectable.
  const choices = ACTIONS.some(([v]) => v === f.action) ? ACTIONS : [...ACTIONS, [f.action, f.action]];
  const action = h('select', { id: 'audit-action', name: 'action' },
    choices.map(([v, label]) => h('option', { value: v, selected: v === f.action }, label)));

  const form = h('form', {
    class: 'card filters', id: 'audit-filters', 'aria-label': 'Filter the audit trail',
    onsubmit: (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams();
      for (const [k, el] of [['actor', actor], ['action', action], ['target', target], ['since', since], ['until', until]]) {
        if (el.value.trim()) q.set(k, el.value.trim());
      }
      if (params.get('limit')) q.set('limit', params.get('limit'));
      const hash = `#/audit${q.toString() ? '?' + q : ''}`;
      // The same address fires no hashchange: then Apply just loads the trail again.
      if (hash === location.hash) state.route(); else location.hash = hash;
    },
  },
  actorField,
  h('div', { class: 'field' }, h('label', { for: 'audit-action' }, 'Action'), action),
  targetField, sinceField, untilField,
  h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, 'Apply'),
    FILTERS.some((k) => f[k]) ? h('a', { class: 'button', href: '#/audit' }, 'Clear filters') : null));

  const csv = h('a', { class: 'button', id: 'audit-csv', href: `/api/v1/audit.csv?${auditQuery(f, { limit: CSV_ROWS })}`, download: 'bifrost-audit.csv' }, 'Download CSV');
  const status = h('p', { class: 'muted', role: 'status', id: 'audit-status' }, 'Loading the audit trail…');
  const body = h('tbody');
  const table = h('div', { class: 'table-wrap', hidden: true }, h('table', { id: 'audit' },
    h('thead', {}, h('tr', {}, ['Time', 'Who', 'Role', 'Address', 'Action', 'Target', 'Detail'].map((t) =>
      h('th', { scope: 'col', class: ['Role', 'Address'].includes(t) ? 'hide-narrow' : null }, t)))),
    body));
  const older = h('button', { type: 'button', id: 'audit-older', hidden: true, onclick: () => load() }, 'Older');
  let shown = 0;

  function row(r) {
    return h('tr', { 'data-seq': String(r.seq) },
      h('td', { class: 'nowrap' }, h('time', { datetime: r.at, title: r.at }, when(r.at))),
      h('td', {}, r.actor),
      h('td', { class: 'hide-narrow' }, r.role || h('span', { class: 'muted' }, '—')),
      h('td', { class: 'mono hide-narrow' }, r.addr),
      h('td', { class: 'mono' }, r.action),
      h('td', { class: 'path soft' }, r.target ? breakable(r.target) : ''),
      h('td', { class: 'path soft' }, r.detail || ''));
  }

  // Loads the newest page, or with `next` set the page older than what is shown.
  async function load() {
    older.disabled = true;
    try {
      const page = await api('GET', `/audit?${auditQuery(f, { limit, before: next })}`);
      body.append(...page.rows.map(row));
      shown += page.rows.length;
      next = page.next_before;
      table.hidden = shown === 0;
      older.hidden = next === null || next === undefined;
      status.className = 'muted';
      status.textContent = shown === 0
        ? (FILTERS.some((k) => f[k]) ? 'No rows match these filters.' : 'The audit trail is empty.')
        : `${shown} row${shown === 1 ? '' : 's'}, newest first${older.hidden ? '' : '; older ones follow'}.`;
    } catch (e) {
      status.className = 'error';
      status.textContent = e.message;
    } finally {
      older.disabled = false;
    }
  }

  fill(main, h('div', { class: 'row spread' }, h('h1', {}, 'Audit'), csv),
    h('p', { class: 'muted' }, 'Every change made through Bifrost, with who made it and from where. Rows are only ever added. The CSV holds up to the newest ',
      CSV_ROWS.toLocaleString('en'), ' rows that match.'),
    form, status, table, h('div', { class: 'row more' }, older));
  load();
  return null;
}
