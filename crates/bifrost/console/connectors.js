// The Connectors page (authorize, rename, revoke) and the Browse page of one connector.

import { state, api, can, findConnector } from './api.js';
import { h, fill, keepFocus, when, badge, dialog } from './ui.js';
import { browser } from './browser.js';
import { newWizard } from './wizard.js';

export async function authorizeDialog(prefillName) {
  const name = h('input', { type: 'text', id: 'c-name', value: prefillName || '', maxLength: 200 });
  const key = h('input', { type: 'text', id: 'c-key', required: true, autocomplete: 'off', spellcheck: false, class: 'mono' });
  const c = await dialog('Authorize New Connector', [
    h('div', { class: 'field' }, h('label', { for: 'c-name' }, 'Name ', h('span', { class: 'hint' }, '(optional; defaults to the host name)')), name),
    h('div', { class: 'field' }, h('label', { for: 'c-key' }, 'Connector key'), key,
      h('span', { class: 'hint' }, 'Shown by "agent start", "agent status" and the desktop app (File > Copy Key).')),
  ], {
    submit: 'Authorize',
    onSubmit: async () => {
      const k = key.value.trim();
      if (!/^[0-9a-fA-F]{32}$/.test(k)) throw new Error('That is not a connector key: a key is 32 hexadecimal characters (0-9, a-f).');
      return api('POST', '/connectors', { key: k, name: name.value.trim() || null });
    },
  });
  if (c) {
    state.connectors = await api('GET', '/connectors');
    if (state.render) state.render('connectors');
  }
}

export function connectorsView(main) {
  const table = h('div');
  // A viewer gets no Actions column: every action there changes something or browses.
  const actions = can('connectors') || can('browse');
  const render = () => {
    const list = state.connectors;
    if (!list) { fill(table, h('p', { class: 'muted' }, 'Loading connectors…')); return; }
    if (!list.length) {
      fill(table, h('div', { class: 'card' },
        h('p', {}, 'No connectors yet.'),
        h('p', { class: 'muted' }, 'Install the agent on a file server, run ', h('code', {}, `agent start --relay ${location.origin}`),
          can('connectors') ? ', then paste the key it shows with Authorize New Connector.' : ', then ask an operator to authorize the key it shows.')));
      return;
    }
    fill(table, h('div', { class: 'table-wrap' }, h('table', { id: 'connectors' },
      h('thead', {}, h('tr', {}, ['Name', 'Status', 'Version', 'OS', 'Host', 'Last seen', actions ? 'Actions' : null].filter(Boolean).map((t) => h('th', { scope: 'col', class: ['Version', 'OS', 'Last seen'].includes(t) ? 'hide-narrow' : null }, t)))),
      h('tbody', {}, list.map((c) => h('tr', { 'data-id': c.id },
        h('td', {}, c.name),
        h('td', {}, badge(c.state)),
        h('td', { class: 'hide-narrow' }, c.version || ''),
        h('td', { class: 'hide-narrow' }, c.os || ''),
        h('td', {}, c.host || ''),
        h('td', { class: 'hide-narrow' }, c.state === 'online' ? 'now' : when(c.last_seen)),
        actions && h('td', {}, h('div', { class: 'row' },
          c.state === 'waiting'
            ? can('connectors') && h('button', { type: 'button', 'data-key': `auth-${c.id}`, onclick: () => authorizeDialog(c.name) }, 'Authorize…')
            : [
              can('browse') && h('a', { class: 'button', 'data-key': `browse-${c.id}`, href: `#/browse/${encodeURIComponent(c.id)}` }, 'Browse'),
              can('connectors') && h('button', { type: 'button', 'data-key': `rename-${c.id}`, onclick: () => renameConnector(c) }, 'Rename'),
              can('connectors') && h('button', { type: 'button', class: 'danger', 'data-key': `revoke-${c.id}`, onclick: () => revokeConnector(c) }, 'Revoke'),
            ]))))))));
  };
  fill(main, 
    h('div', { class: 'row spread' }, h('h1', {}, 'Connectors'),
      can('connectors') ? h('button', { type: 'button', class: 'primary', id: 'authorize', onclick: () => authorizeDialog() }, 'Authorize New Connector') : null),
    table);
  render();
  return (what) => { if (what === 'connectors') keepFocus(render); };
}

export async function renameConnector(c) {
  const name = h('input', { type: 'text', id: 'r-name', value: c.name, required: true, maxLength: 200 });
  const done = await dialog(`Rename ${c.name}`, h('div', { class: 'field' }, h('label', { for: 'r-name' }, 'Name'), name), {
    submit: 'Rename',
    onSubmit: () => api('PATCH', `/connectors/${encodeURIComponent(c.id)}`, { name: name.value.trim() }),
  });
  if (done) { state.connectors = await api('GET', '/connectors'); if (state.render) state.render('connectors'); }
}

export async function revokeConnector(c) {
  const done = await dialog(`Revoke ${c.name}?`,
    h('p', {}, 'The agent is disconnected at once and its key stops working here. Its transfers stop. To use the agent again, reset its key and authorize the new one.'),
    { submit: 'Revoke', danger: true, onSubmit: async () => { await api('DELETE', `/connectors/${encodeURIComponent(c.id)}`); return true; } });
  if (done !== null) { state.connectors = await api('GET', '/connectors'); if (state.render) state.render('connectors'); }
}

export function browseView(main, id, params) {
  const c = findConnector(id);
  if (!c) { fill(main, h('h1', {}, 'Browse'), h('p', { class: 'error' }, 'There is no such connector.')); return null; }
  if (c.state !== 'online') {
    fill(main, h('h1', {}, `Browse ${c.name}`),
      h('div', { class: 'notice', role: 'status' }, c.state === 'waiting' ? 'This connector is waiting for authorization.' : `${c.name} is offline. Its agent is not connected; start it, or check its status with "agent status".`));
    return (what) => { if (what === 'connectors' && findConnector(id)?.state === 'online') state.route(); };
  }
  const selection = new Set();
  const count = h('span', { class: 'muted', role: 'status' }, 'Nothing selected');
  const copy = h('button', { type: 'button', class: 'primary', disabled: true, onclick: () => {
    state.wizard = newWizard();
    state.wizard.connector = id;
    state.wizard.selection = new Set(selection);
    state.wizard.step = 2;
    location.hash = '#/new-job';
  } }, 'Copy selected…');
  const start = params.get('path') || undefined;
  const view = browser(c, start, {
    select: selection,
    onNavigate: (p) => { const q = p ? `?path=${encodeURIComponent(p)}` : ''; history.replaceState(null, '', `#/browse/${encodeURIComponent(id)}${q}`); },
  });
  view.addEventListener('selection', () => {
    count.textContent = selection.size ? `${selection.size} selected` : 'Nothing selected';
    copy.disabled = !selection.size;
  });
  fill(main, h('div', { class: 'row spread' }, h('h1', {}, `Browse ${c.name}`), h('div', { class: 'row' }, count, copy)), view);
  return null;
}

