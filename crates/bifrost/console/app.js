// Bifrost console: a small single-page app over /api/v1. No framework and no build step, so it
// is embedded in the binary as written and works on an air-gapped network.

const state = {
  csrf: null,
  connectors: null,
  jobs: null,
  events: null,
  samples: new Map(), // job id -> [{t, bytes}] for rate and ETA
  wizard: null,
  render: null, // re-renders the current view when live data changes
};

// ---------- helpers ----------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: 'same-origin' };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  if (method !== 'GET' && state.csrf) opts.headers['X-CSRF-Token'] = state.csrf;
  let res;
  try {
    res = await fetch('/api/v1' + path, opts);
  } catch (e) {
    throw new ApiError(0, 'Bifrost cannot be reached. Check that it is running, then try again.');
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    const message = (data && typeof data.error === 'string') ? data.error : `Bifrost answered ${res.status} ${res.statusText}`;
    if (res.status === 401 && path !== '/session') signedOut();
    throw new ApiError(res.status, message);
  }
  return data;
}

// Builds elements without ever parsing strings as HTML.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'style') el.style.cssText = v; // CSSOM, which the console's CSP allows

    else if (k in el && k !== 'list' && !k.startsWith('aria') && !k.startsWith('data')) el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const $ = (sel) => document.querySelector(sel);

// Replaces an element's children; like `h`, it flattens arrays and drops empty ones.
function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

// Live updates redraw parts of a page; the control that had focus (by its data-key) keeps it.
function keepFocus(draw) {
  const active = document.activeElement;
  const key = active && active.dataset ? active.dataset.key : null;
  draw();
  if (key) {
    const again = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again && again !== document.activeElement) again.focus();
  }
}

function bytes(n) {
  if (n === null || n === undefined) return '';
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0, v = n;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return (i === 0 ? v : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)) + ' ' + units[i];
}

function when(s) {
  if (!s) return '';
  const d = new Date(s);
  return isNaN(d) ? s : d.toLocaleString();
}

function duration(seconds) {
  if (!isFinite(seconds) || seconds < 0) return '—';
  seconds = Math.round(seconds);
  const hh = Math.floor(seconds / 3600), mm = Math.floor((seconds % 3600) / 60), ss = seconds % 60;
  return hh ? `${hh} h ${mm} min` : mm ? `${mm} min ${ss} s` : `${ss} s`;
}

function joinPath(dir, name) {
  if (dir.endsWith('/') || dir.endsWith('\\')) return dir + name;
  return dir + (dir.includes('\\') && !dir.includes('/') ? '\\' : '/') + name;
}

function baseName(p) {
  const t = p.replace(/[\\/]+$/, '');
  return t.slice(Math.max(t.lastIndexOf('/'), t.lastIndexOf('\\')) + 1) || p;
}

function showError(e) {
  const box = $('#alert');
  fill(box, 
    h('span', {}, e instanceof Error ? e.message : String(e)),
    h('button', { type: 'button', class: 'link', onclick: () => { box.hidden = true; } }, 'Dismiss'),
  );
  box.hidden = false;
}

function clearError() { $('#alert').hidden = true; }

function badge(s) { return h('span', { class: `badge ${s}` }, s.replaceAll('_', ' ')); }

function progressBar(done, total, label) {
  const pct = total > 0 ? Math.min(100, Math.floor((done / total) * 100)) : (done > 0 ? 100 : 0);
  return h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': String(pct), 'aria-label': label || 'progress' },
    h('div', { style: `width:${pct}%` }));
}

function connectorName(id) {
  const c = (state.connectors || []).find((x) => x.id === id);
  return c ? c.name : id;
}

// A modal dialog; resolves with the value `onSubmit` returns, or null when cancelled.
function dialog(title, body, { submit = 'OK', danger = false, onSubmit } = {}) {
  const dlg = $('#dialog');
  return new Promise((resolve) => {
    const error = h('p', { class: 'error', role: 'alert' });
    const cancel = h('button', { type: 'button', onclick: () => { dlg.close(); } }, 'Cancel');
    const ok = h('button', { type: 'submit', class: danger ? 'danger primary' : 'primary' }, submit);
    const form = h('form', {
      method: 'dialog',
      onsubmit: async (ev) => {
        ev.preventDefault();
        ok.disabled = true;
        error.textContent = '';
        try {
          const value = onSubmit ? await onSubmit(form) : true;
          resolved = true;
          dlg.close();
          resolve(value);
        } catch (e) {
          error.textContent = e.message;
        } finally {
          ok.disabled = false;
        }
      },
    }, h('h2', { id: 'dialog-title' }, title), body, error, h('div', { class: 'row' }, ok, cancel));
    let resolved = false;
    fill(dlg, form);
    dlg.onclose = () => { if (!resolved) resolve(null); };
    dlg.showModal();
    const first = form.querySelector('input, textarea, select');
    (first || ok).focus();
  });
}

// ---------- session and live events ----------

function signedOut() {
  state.csrf = null;
  if (state.events) { state.events.close(); state.events = null; }
  if (location.hash !== '#/login') location.hash = '#/login';
}

function startEvents() {
  if (state.events) return;
  const es = new EventSource('/api/v1/events');
  es.addEventListener('connectors', (ev) => { state.connectors = JSON.parse(ev.data); if (state.render) state.render('connectors'); });
  es.addEventListener('jobs', (ev) => {
    state.jobs = JSON.parse(ev.data);
    const now = Date.now();
    for (const j of state.jobs) {
      const s = state.samples.get(j.id) || [];
      s.push({ t: now, bytes: j.bytes_done });
      while (s.length > 2 && now - s[0].t > 10000) s.shift();
      state.samples.set(j.id, s);
    }
    if (state.render) state.render('jobs');
  });
  es.onerror = async () => {
    // EventSource retries by itself; find out whether the session ended meanwhile.
    try { if (!(await api('GET', '/session')).signed_in) signedOut(); } catch { /* Bifrost is away; EventSource keeps trying */ }
  };
  state.events = es;
}

async function loadLists() {
  const [connectors, jobs] = await Promise.all([api('GET', '/connectors'), api('GET', '/jobs')]);
  state.connectors = connectors;
  state.jobs = jobs;
}

// ---------- views ----------

function loginView(main) {
  $('#nav').hidden = true;
  $('#signout').hidden = true;
  const error = h('p', { class: 'error', role: 'alert', id: 'login-error' });
  const token = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'current-password', required: true });
  const form = h('form', {
    class: 'card login',
    onsubmit: async (ev) => {
      ev.preventDefault();
      error.textContent = '';
      try {
        const s = await api('POST', '/session', { token: token.value.trim() });
        state.csrf = s.csrf;
        token.value = '';
        if (['', '#', '#/login'].includes(location.hash)) location.hash = '#/connectors';
        else route().catch(showError);
      } catch (e) {
        error.textContent = e.message;
        token.select();
      }
    },
  },
  h('h1', {}, 'Sign in to Bifrost'),
  h('div', { class: 'field' },
    h('label', { for: 'token' }, 'Admin token'),
    token,
    h('span', { class: 'hint' }, 'Printed when Bifrost first started, and kept in DATA/admin.token.')),
  error,
  h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  fill(main, form);
  token.focus();
}

async function authorizeDialog(prefillName) {
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

function connectorsView(main) {
  const table = h('div');
  const render = () => {
    const list = state.connectors;
    if (!list) { fill(table, h('p', { class: 'muted' }, 'Loading connectors…')); return; }
    if (!list.length) {
      fill(table, h('div', { class: 'card' },
        h('p', {}, 'No connectors yet.'),
        h('p', { class: 'muted' }, 'Install the agent on a file server, run ', h('code', {}, `agent start --relay ${location.origin}`),
          ', then paste the key it shows with Authorize New Connector.')));
      return;
    }
    fill(table, h('div', { class: 'table-wrap' }, h('table', { id: 'connectors' },
      h('thead', {}, h('tr', {}, ['Name', 'Status', 'Version', 'OS', 'Host', 'Last seen', 'Actions'].map((t) => h('th', { scope: 'col', class: ['Version', 'OS', 'Last seen'].includes(t) ? 'hide-narrow' : null }, t)))),
      h('tbody', {}, list.map((c) => h('tr', { 'data-id': c.id },
        h('td', {}, c.name),
        h('td', {}, badge(c.state)),
        h('td', { class: 'hide-narrow' }, c.version || ''),
        h('td', { class: 'hide-narrow' }, c.os || ''),
        h('td', {}, c.host || ''),
        h('td', { class: 'hide-narrow' }, c.state === 'online' ? 'now' : when(c.last_seen)),
        h('td', {}, h('div', { class: 'row' },
          c.state === 'waiting'
            ? h('button', { type: 'button', 'data-key': `auth-${c.id}`, onclick: () => authorizeDialog(c.name) }, 'Authorize…')
            : [
              h('a', { class: 'button', 'data-key': `browse-${c.id}`, href: `#/browse/${encodeURIComponent(c.id)}` }, 'Browse'),
              h('button', { type: 'button', 'data-key': `rename-${c.id}`, onclick: () => renameConnector(c) }, 'Rename'),
              h('button', { type: 'button', class: 'danger', 'data-key': `revoke-${c.id}`, onclick: () => revokeConnector(c) }, 'Revoke'),
            ]))))))));
  };
  fill(main, 
    h('div', { class: 'row spread' }, h('h1', {}, 'Connectors'),
      h('button', { type: 'button', class: 'primary', id: 'authorize', onclick: () => authorizeDialog() }, 'Authorize New Connector')),
    table);
  render();
  return (what) => { if (what === 'connectors') keepFocus(render); };
}

async function renameConnector(c) {
  const name = h('input', { type: 'text', id: 'r-name', value: c.name, required: true, maxLength: 200 });
  const done = await dialog(`Rename ${c.name}`, h('div', { class: 'field' }, h('label', { for: 'r-name' }, 'Name'), name), {
    submit: 'Rename',
    onSubmit: () => api('PATCH', `/connectors/${encodeURIComponent(c.id)}`, { name: name.value.trim() }),
  });
  if (done) { state.connectors = await api('GET', '/connectors'); if (state.render) state.render('connectors'); }
}

async function revokeConnector(c) {
  const done = await dialog(`Revoke ${c.name}?`,
    h('p', {}, 'The agent is disconnected at once and its key stops working here. Its transfers stop. To use the agent again, reset its key and authorize the new one.'),
    { submit: 'Revoke', danger: true, onSubmit: () => api('DELETE', `/connectors/${encodeURIComponent(c.id)}`) });
  if (done !== null) { state.connectors = await api('GET', '/connectors'); if (state.render) state.render('connectors'); }
}

// A folder view of one connector; with `select`, entries get checkboxes.
function browser(connector, startPath, { select = null, onNavigate = null } = {}) {
  const root = h('div', { class: 'browser' });
  let path = startPath;
  let entries = [];
  let cursor = null;
  let loading = false;

  const roots = () => (connector.roots && connector.roots.length ? connector.roots : null);

  async function open(p) {
    path = p;
    entries = [];
    cursor = null;
    if (onNavigate) onNavigate(p);
    if (p === null) { draw(); return; }
    await more();
  }

  async function more() {
    loading = true;
    draw();
    try {
      const q = new URLSearchParams({ path });
      if (cursor) q.set('cursor', cursor);
      const page = await api('GET', `/connectors/${encodeURIComponent(connector.id)}/browse?${q}`);
      entries = entries.concat(page.entries);
      cursor = page.next_cursor;
      loading = false;
      draw();
    } catch (e) {
      loading = false;
      draw(e);
    }
  }

  function crumbs() {
    const items = [h('li', {}, h('button', { type: 'button', class: 'link', onclick: () => open(roots() ? null : '/') }, roots() ? 'Shared folders' : '/'))];
    if (path) {
      const base = roots() ? roots().find((r) => path === r || path.startsWith(r.replace(/[\\/]$/, '') + '/')) : null;
      let acc = base || '';
      if (base) items.push(h('li', {}, h('button', { type: 'button', class: 'link', onclick: () => open(base) }, base)));
      const rest = base ? path.slice(base.length) : path;
      for (const part of rest.split(/[\\/]/).filter(Boolean)) {
        acc = acc ? joinPath(acc, part) : (path.startsWith('/') ? '/' + part : part);
        const target = acc;
        items.push(h('li', {}, h('button', { type: 'button', class: 'link', onclick: () => open(target) }, part)));
      }
    }
    return h('nav', { class: 'crumbs', 'aria-label': 'Folder path' }, h('ol', {}, items));
  }

  function checkbox(full, label) {
    if (!select) return null;
    return h('td', {}, h('input', {
      type: 'checkbox', checked: select.has(full), 'aria-label': `Select ${label}`,
      onchange: (ev) => { if (ev.target.checked) select.add(full); else select.delete(full); root.dispatchEvent(new Event('selection')); },
    }));
  }

  async function folderSize(full, cell) {
    fill(cell, 'counting…');
    try {
      const q = new URLSearchParams({ path: full });
      const s = await api('GET', `/connectors/${encodeURIComponent(connector.id)}/size?${q}`);
      fill(cell, `${bytes(s.bytes)} in ${s.files} files`);
    } catch (e) {
      fill(cell, h('span', { class: 'error' }, e.message));
    }
  }

  function draw(error) {
    const head = h('tr', {}, select ? h('th', { scope: 'col' }, h('span', { class: 'skip' }, 'Select')) : null,
      h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col', class: 'num' }, 'Size'), h('th', { scope: 'col', class: 'hide-narrow' }, 'Modified'));
    let rows;
    if (path === null) {
      rows = roots().map((r) => h('tr', {}, checkbox(r, r),
        h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => open(r) }, r)), h('td', { class: 'num' }, 'folder'), h('td', { class: 'hide-narrow' })));
    } else {
      const sorted = [...entries].sort((a, b) => (a.kind === 'dir') === (b.kind === 'dir') ? a.name.localeCompare(b.name) : (a.kind === 'dir' ? -1 : 1));
      rows = sorted.map((e) => {
        const full = joinPath(path, e.name);
        const exact = !e.name_b64;
        if (e.kind === 'dir') {
          const sizeCell = h('td', { class: 'num' }, h('button', { type: 'button', class: 'link', 'aria-label': `Total size of ${e.name}`, onclick: () => folderSize(full, sizeCell) }, 'Size'));
          return h('tr', {}, exact ? checkbox(full, e.name) : (select ? h('td') : null),
            h('td', {}, exact ? h('button', { type: 'button', class: 'link folder', onclick: () => open(full) }, e.name) : h('span', { class: 'folder' }, e.name)),
            sizeCell, h('td', { class: 'hide-narrow' }, when(e.modified)));
        }
        const note = e.kind === 'file' ? '' : ` (${e.kind})`;
        return h('tr', {}, exact && e.kind === 'file' ? checkbox(full, e.name) : (select ? h('td') : null),
          h('td', {}, e.name + note), h('td', { class: 'num' }, e.kind === 'file' ? bytes(e.size) : ''), h('td', { class: 'hide-narrow' }, when(e.modified)));
      });
    }
    const parts = [crumbs()];
    if (error) {
      parts.push(h('div', { class: 'notice', role: 'alert' }, h('p', { class: 'error' }, error.message),
        h('button', { type: 'button', onclick: () => open(path) }, 'Try again')));
    } else if (!loading && path !== null && !entries.length) {
      parts.push(h('p', { class: 'muted' }, 'This folder is empty.'));
    }
    if (rows.length) parts.push(h('div', { class: 'table-wrap' }, h('table', { class: 'entries' }, h('thead', {}, head), h('tbody', {}, rows))));
    if (loading) parts.push(h('p', { class: 'muted', role: 'status' }, 'Loading…'));
    if (cursor && !loading) parts.push(h('p', {}, h('button', { type: 'button', onclick: more }, `Load more (${entries.length} shown)`)));
    fill(root, ...parts);
  }

  open(startPath === undefined ? (roots() ? null : '/') : startPath);
  return root;
}

function findConnector(id) {
  return (state.connectors || []).find((c) => c.id === id);
}

function browseView(main, id, params) {
  const c = findConnector(id);
  if (!c) { fill(main, h('h1', {}, 'Browse'), h('p', { class: 'error' }, 'There is no such connector.')); return null; }
  if (c.state !== 'online') {
    fill(main, h('h1', {}, `Browse ${c.name}`),
      h('div', { class: 'notice', role: 'status' }, c.state === 'waiting' ? 'This connector is waiting for authorization.' : `${c.name} is offline. Its agent is not connected; start it, or check its status with "agent status".`));
    return (what) => { if (what === 'connectors' && findConnector(id)?.state === 'online') route(); };
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

// ---------- transfer wizard ----------

const STEPS = ['Source', 'Choose', 'Destination', 'Options', 'Review'];

function newWizard() {
  return {
    step: 1, connector: null, selection: new Set(), destination: '', mode: 'standard', mappings: [],
    concurrency: 8, include: '', exclude: '', skipHidden: false, modifiedAfter: '',
    limitMBps: '', compareContent: false, deleteRemoved: false,
  };
}

function jobBody(w) {
  const lines = (s) => s.split('\n').map((x) => x.trim()).filter(Boolean);
  const body = {
    connector: w.connector,
    destination: { kind: 'folder', path: w.destination.trim() },
    concurrency: Number(w.concurrency) || 8,
    filters: { include: lines(w.include), exclude: lines(w.exclude), skip_hidden: w.skipHidden, modified_after: w.modifiedAfter || null },
    compare: w.compareContent ? 'blake3' : 'size_mtime',
    delete_removed: w.deleteRemoved,
  };
  const limit = Number(w.limitMBps);
  if (limit > 0) body.bandwidth_limit = Math.round(limit * 1e6);
  if (w.mode === 'home') body.mappings = w.mappings.map((m) => ({ source: m.source, destination: m.destination.trim() }));
  else body.sources = [...w.selection];
  return body;
}

function csvEscape(s) { return '"' + String(s).replaceAll('"', '""') + '"'; }

function parseCsv(text) {
  const rows = [];
  let row = [], field = '', quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (ch === '"') quoted = false; else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') { row.push(field); field = ''; } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field); rows.push(row); row = []; field = '';
    } else field += ch;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  return rows.filter((r) => r.some((x) => x.trim()));
}

function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function wizardView(main) {
  const w = state.wizard || (state.wizard = newWizard());
  const error = h('p', { class: 'error', role: 'alert', id: 'wizard-error' });
  const body = h('div', { class: 'card' });
  const back = h('button', { type: 'button', onclick: () => { w.step--; draw(); } }, 'Back');
  const next = h('button', { type: 'button', class: 'primary', id: 'wizard-next', onclick: () => advance() }, 'Next');

  async function advance() {
    error.textContent = '';
    try {
      if (w.step === 1 && !w.connector) throw new Error('Choose the connector to copy from.');
      if (w.step === 2 && !w.selection.size) throw new Error('Select at least one folder or file.');
      if (w.step === 3) {
        if (!w.destination.trim().startsWith('/') && !/^[A-Za-z]:[\\/]/.test(w.destination.trim())) throw new Error('The destination must be an absolute folder path on the Bifrost machine, such as /srv/migration.');
        if (w.mode === 'home') {
          if (!w.mappings.length) throw new Error('The mapping table is empty: choose one folder whose subfolders are the users\u2019 home folders.');
          if (w.mappings.some((m) => !m.destination.trim())) throw new Error('Every user folder needs a destination folder.');
        }
      }
      if (w.step === 5) {
        next.disabled = true;
        const job = await api('POST', '/jobs', jobBody(w));
        state.wizard = null;
        location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
        return;
      }
      w.step++;
      draw();
    } catch (e) {
      error.textContent = e.message;
      next.disabled = false;
    }
  }

  async function loadMappings(table) {
    const [source] = [...w.selection];
    fill(table, h('p', { class: 'muted', role: 'status' }, 'Reading user folders…'));
    try {
      const dirs = [];
      let cursor = null;
      do {
        const q = new URLSearchParams({ path: source });
        if (cursor) q.set('cursor', cursor);
        const page = await api('GET', `/connectors/${encodeURIComponent(w.connector)}/browse?${q}`);
        for (const e of page.entries) if (e.kind === 'dir' && !e.name_b64) dirs.push(e.name);
        cursor = page.next_cursor;
      } while (cursor);
      dirs.sort((a, b) => a.localeCompare(b));
      const old = new Map(w.mappings.map((m) => [m.source, m.destination]));
      w.mappings = dirs.map((d) => {
        const src = joinPath(source, d);
        return { source: src, destination: old.get(src) || joinPath(w.destination.trim() || '/', d) };
      });
      drawMappings(table);
    } catch (e) {
      fill(table, h('p', { class: 'error' }, e.message));
    }
  }

  function drawMappings(table) {
    if (!w.mappings.length) { fill(table, h('p', { class: 'muted' }, 'No subfolders found.')); return; }
    fill(table, h('div', { class: 'table-wrap' }, h('table', { id: 'mappings' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'User folder'), h('th', { scope: 'col' }, 'Destination folder'))),
      h('tbody', {}, w.mappings.map((m, i) => h('tr', {},
        h('td', { class: 'path' }, m.source),
        h('td', {}, h('input', { type: 'text', value: m.destination, 'aria-label': `Destination for ${baseName(m.source)}`, 'data-index': String(i), style: 'width:100%',
          oninput: (ev) => { w.mappings[i].destination = ev.target.value; } }))))))));
  }

  function draw() {
    const steps = h('ol', { class: 'steps', 'aria-label': 'Steps' }, STEPS.map((s, i) => h('li', { 'aria-current': i + 1 === w.step ? 'step' : null }, s)));
    back.disabled = w.step === 1;
    next.disabled = false;
    next.textContent = w.step === 5 ? 'Start transfer' : 'Next';
    error.textContent = '';
    if (w.step === 1) {
      const online = (state.connectors || []).filter((c) => c.state === 'online');
      fill(body, h('h2', {}, 'Copy from which connector?'),
        online.length ? h('div', { role: 'radiogroup', 'aria-label': 'Connector' }, online.map((c) => h('div', {},
          h('label', {}, h('input', { type: 'radio', name: 'connector', value: c.id, checked: w.connector === c.id,
            onchange: () => { if (w.connector !== c.id) { w.selection = new Set(); w.mappings = []; } w.connector = c.id; } }), ' ', c.name, h('span', { class: 'muted' }, ` — ${c.host || ''}`)))))
          : h('p', { class: 'notice' }, 'No connector is online. Start an agent and authorize it on the Connectors page.'));
    } else if (w.step === 2) {
      const c = findConnector(w.connector);
      const count = h('p', { class: 'muted', role: 'status' }, `${w.selection.size} selected`);
      if (!c || c.state !== 'online') {
        fill(body, h('p', { class: 'notice' }, 'This connector went offline. Go back and choose another, or wait for it to reconnect.'));
      } else {
        const view = browser(c, undefined, { select: w.selection });
        view.addEventListener('selection', () => { count.textContent = `${w.selection.size} selected`; w.mappings = []; });
        fill(body, h('h2', {}, 'Choose folders and files'), count, view);
      }
    } else if (w.step === 3) {
      const dest = h('input', { type: 'text', id: 'destination', value: w.destination, placeholder: '/srv/migration', oninput: (ev) => { w.destination = ev.target.value; } });
      const table = h('div', { id: 'mapping-table' });
      const home = w.mode === 'home';
      const modeRadio = (value, label, hint) => h('div', {}, h('label', {}, h('input', { type: 'radio', name: 'mode', value, checked: w.mode === value,
        onchange: () => { w.mode = value; draw(); } }), ' ', label), h('div', { class: 'hint muted' }, hint));
      const fileInput = h('input', { type: 'file', id: 'mapping-import', accept: '.csv,text/csv', hidden: true, onchange: async (ev) => {
        const file = ev.target.files[0];
        if (!file) return;
        try {
          const rows = parseCsv(await file.text());
          const data = rows[0] && rows[0][0].trim().toLowerCase() === 'source' ? rows.slice(1) : rows;
          const bySource = new Map(data.map((r) => [r[0].trim(), (r[1] || '').trim()]));
          let matched = 0;
          for (const m of w.mappings) if (bySource.has(m.source)) { m.destination = bySource.get(m.source); matched++; }
          if (!w.mappings.length) w.mappings = data.map((r) => ({ source: r[0].trim(), destination: (r[1] || '').trim() }));
          drawMappings(table);
          error.textContent = '';
          if (w.mappings.length && !matched && bySource.size) error.textContent = 'No row of that file matched a user folder here; check its first column.';
        } catch (e) { error.textContent = `Cannot read that file: ${e.message}`; }
        ev.target.value = '';
      } });
      fill(body, h('h2', {}, 'Where to?'),
        h('div', { class: 'field' }, h('label', { for: 'destination' }, 'Destination folder on the Bifrost machine'), dest,
          h('span', { class: 'hint' }, 'Each selected folder or file lands inside it under its own name.')),
        h('fieldset', { class: 'field' }, h('legend', {}, 'Mode'),
          modeRadio('standard', 'Standard copy', 'Copy what you selected into the destination folder.'),
          modeRadio('home', 'Home drives', 'Select one folder (such as /home or D:\\Users); each of its top-level folders goes to its own destination folder.')),
        home ? [
          w.selection.size === 1 ? [
            h('div', { class: 'row' },
              h('button', { type: 'button', onclick: () => loadMappings(table) }, w.mappings.length ? 'Reload user folders' : 'Read user folders'),
              h('button', { type: 'button', id: 'mapping-export', onclick: () => download('home-drives.csv', 'source,destination\r\n' + w.mappings.map((m) => `${csvEscape(m.source)},${csvEscape(m.destination)}`).join('\r\n') + '\r\n', 'text/csv') }, 'Export CSV'),
              h('button', { type: 'button', onclick: () => fileInput.click() }, 'Import CSV…'), fileInput),
            table,
          ] : h('p', { class: 'notice' }, 'Home drives needs exactly one selected folder. Go back and select the folder that holds the user folders.'),
        ] : null);
      if (home && w.selection.size === 1) { if (w.mappings.length) drawMappings(table); else loadMappings(table); }
    } else if (w.step === 4) {
      const field = (id, label, input, hint) => h('div', { class: 'field' }, h('label', { for: id }, label), input, hint ? h('span', { class: 'hint' }, hint) : null);
      fill(body, h('h2', {}, 'Options'),
        field('concurrency', 'Files copied at once', h('input', { type: 'number', id: 'concurrency', min: 1, max: 64, value: w.concurrency, oninput: (ev) => { w.concurrency = ev.target.value; } }), '1 to 64; 8 suits most links.'),
        field('include', 'Only files matching', h('textarea', { id: 'include', rows: 2, value: w.include, oninput: (ev) => { w.include = ev.target.value; } }), 'Glob patterns, one per line (for example *.docx). Empty: every file.'),
        field('exclude', 'Leave out', h('textarea', { id: 'exclude', rows: 2, value: w.exclude, oninput: (ev) => { w.exclude = ev.target.value; } }), 'Glob patterns of files and folders, one per line (for example *.tmp or **/Cache/**).'),
        h('div', { class: 'field' }, h('label', {}, h('input', { type: 'checkbox', id: 'skip-hidden', checked: w.skipHidden, onchange: (ev) => { w.skipHidden = ev.target.checked; } }), ' Skip hidden files and folders (names starting with a dot)')),
        field('modified-after', 'Only files modified on or after', h('input', { type: 'date', id: 'modified-after', value: w.modifiedAfter, oninput: (ev) => { w.modifiedAfter = ev.target.value; } })),
        field('bandwidth-limit', 'Bandwidth limit (MB/s)', h('input', { type: 'number', id: 'bandwidth-limit', min: 0.1, step: 'any', value: w.limitMBps, oninput: (ev) => { w.limitMBps = ev.target.value; } }), 'Empty: as fast as the link allows. The agent paces itself, so the office uplink stays usable.'),
        h('div', { class: 'field' }, h('label', {}, h('input', { type: 'checkbox', id: 'compare-content', checked: w.compareContent, onchange: (ev) => { w.compareContent = ev.target.checked; } }), ' On re-runs, compare files by content (BLAKE3) instead of size and time')),
        h('div', { class: 'field' }, h('label', {}, h('input', { type: 'checkbox', id: 'delete-removed', checked: w.deleteRemoved, onchange: (ev) => { w.deleteRemoved = ev.target.checked; } }), ' On re-runs, remove files deleted at the source from the destination')));
    } else {
      const summary = h('div', { id: 'review', role: 'status' }, h('p', { class: 'muted' }, 'Counting what will be copied…'));
      const b = jobBody(w);
      fill(body, h('h2', {}, 'Review'),
        h('dl', {},
          h('dt', {}, 'From'), h('dd', {}, connectorName(w.connector)),
          h('dt', {}, w.mode === 'home' ? 'User folders' : 'Selected'), h('dd', {}, w.mode === 'home' ? `${w.mappings.length} folders, each to its own destination` : [...w.selection].join(', ')),
          h('dt', {}, 'To'), h('dd', {}, w.mode === 'home' ? 'the destinations in the mapping table' : w.destination),
          h('dt', {}, 'Files at once'), h('dd', {}, String(b.concurrency)),
          b.bandwidth_limit ? [h('dt', {}, 'Bandwidth limit'), h('dd', {}, `${bytes(b.bandwidth_limit)}/s`)] : null),
        summary);
      next.disabled = true;
      api('POST', '/jobs/preview', b).then((p) => {
        fill(summary, h('p', {}, h('strong', {}, `${p.files} files`), `, ${bytes(p.bytes)}, in ${p.folders} folders will be copied.`),
          p.sample.length ? h('details', {}, h('summary', {}, 'First files'), h('ul', { class: 'mono' }, p.sample.map((s) => h('li', {}, s)))) : null);
        next.disabled = false;
      }).catch((e) => { fill(summary, h('p', { class: 'error' }, e.message)); });
    }
    fill(main, h('h1', {}, 'New transfer'), steps, body, error, h('div', { class: 'row' }, back, next));
  }
  draw();
  return (what) => { if (what === 'connectors' && w.step === 1) draw(); };
}

// ---------- jobs ----------

function rateOf(id) {
  const s = state.samples.get(id);
  if (!s || s.length < 2) return 0;
  const a = s[0], b = s[s.length - 1];
  return b.t > a.t ? ((b.bytes - a.bytes) * 1000) / (b.t - a.t) : 0;
}

function jobsView(main) {
  const table = h('div');
  const render = () => {
    const jobs = state.jobs;
    if (!jobs) { fill(table, h('p', { class: 'muted' }, 'Loading transfers…')); return; }
    if (!jobs.length) {
      fill(table, h('div', { class: 'card' }, h('p', {}, 'No transfers yet.'), h('p', {}, h('a', { href: '#/new-job' }, 'Start a transfer'), ' from a connector\u2019s folders.')));
      return;
    }
    fill(table, h('div', { class: 'table-wrap' }, h('table', { id: 'jobs' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Transfer'), h('th', { scope: 'col' }, 'From'), h('th', { scope: 'col' }, 'State'),
        h('th', { scope: 'col' }, 'Progress'), h('th', { scope: 'col', class: 'num' }, 'Files'), h('th', { scope: 'col', class: 'hide-narrow' }, 'Started'))),
      h('tbody', {}, jobs.map((j) => h('tr', { 'data-id': j.id },
        h('td', {}, h('a', { 'data-key': `job-${j.id}`, href: `#/jobs/${encodeURIComponent(j.id)}` }, j.mappings.length ? `Home drives (${j.mappings.length})` : j.sources.map(baseName).join(', '))),
        h('td', {}, connectorName(j.connector)),
        h('td', {}, badge(j.state)),
        h('td', {}, progressBar(j.bytes_done, j.bytes_total, `Progress of ${j.id}`), h('span', { class: 'muted' }, `${bytes(j.bytes_done)} of ${bytes(j.bytes_total)}`)),
        h('td', { class: 'num' }, `${j.files_done + j.files_skipped} / ${j.files_total}`, j.files_failed ? h('span', { class: 'error' }, ` (${j.files_failed} failed)`) : null),
        h('td', { class: 'hide-narrow' }, when(j.created))))))));
  };
  fill(main, h('div', { class: 'row spread' }, h('h1', {}, 'Transfers'), h('a', { class: 'button primary', href: '#/new-job' }, 'New transfer')), table);
  render();
  return (what) => { if (what === 'jobs' || what === 'connectors') keepFocus(render); };
}

function jobView(main, id) {
  let filter = '';
  let reportKey = '';
  let reportTimer = null;
  const head = h('div');
  const stats = h('div', { class: 'stats' });
  const actions = h('div', { class: 'row' });
  const report = h('div', { id: 'report' });
  const tabs = h('div', { class: 'tabs', role: 'group', 'aria-label': 'Show files' });
  const csv = h('a', { class: 'button', id: 'csv', href: `/api/v1/jobs/${encodeURIComponent(id)}/files.csv`, download: `job-${id}-report.csv` }, 'Download report (CSV)');

  async function act(verb, confirmText) {
    if (confirmText) {
      const ok = await dialog(confirmText.title, h('p', {}, confirmText.body), { submit: confirmText.submit, danger: true });
      if (ok === null) return;
    }
    try {
      const j = await api('POST', `/jobs/${encodeURIComponent(id)}/${verb}`);
      if (verb === 'rerun') { location.hash = `#/jobs/${encodeURIComponent(j.id)}`; return; }
      const i = (state.jobs || []).findIndex((x) => x.id === id);
      if (i >= 0) state.jobs[i] = j;
      render();
    } catch (e) { showError(e); }
  }

  async function loadReport() {
    const q = filter ? `?status=${filter}` : '';
    csv.href = `/api/v1/jobs/${encodeURIComponent(id)}/files.csv${q}`;
    try {
      const { files } = await api('GET', `/jobs/${encodeURIComponent(id)}/files${q}`);
      const shown = files.slice(0, 2000);
      fill(report, files.length ? h('div', { class: 'table-wrap' }, h('table', { id: 'files' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Source'), h('th', { scope: 'col', class: 'hide-narrow' }, 'Destination'), h('th', { scope: 'col', class: 'num' }, 'Size'), h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Reason'))),
        h('tbody', {}, shown.map((f) => h('tr', {}, h('td', { class: 'path' }, f.source), h('td', { class: 'path hide-narrow' }, f.destination), h('td', { class: 'num' }, bytes(f.size)), h('td', {}, badge(f.status)), h('td', {}, f.reason || ''))))))
        : h('p', { class: 'muted' }, filter ? `No ${filter} files.` : 'No files listed yet.'),
      files.length > shown.length ? h('p', { class: 'muted' }, `Showing the first ${shown.length} of ${files.length}; the CSV has them all.`) : null);
    } catch (e) { fill(report, h('p', { class: 'error' }, e.message)); }
  }

  function drawTabs() {
    fill(tabs, ...[['', 'All'], ['copied', 'Copied'], ['failed', 'Failed'], ['skipped', 'Skipped'], ['pending', 'Pending'], ['deleted', 'Deleted at source']].map(([v, label]) =>
      h('button', { type: 'button', 'aria-pressed': String(filter === v), onclick: () => { filter = v; drawTabs(); loadReport(); } }, label)));
  }

  function render() {
    const j = (state.jobs || []).find((x) => x.id === id);
    if (!j) { fill(head, h('h1', {}, 'Transfer'), h('p', { class: state.jobs ? 'error' : 'muted' }, state.jobs ? 'There is no such transfer.' : 'Loading…')); return; }
    const rate = j.state === 'running' ? rateOf(id) : 0;
    const left = j.bytes_total - j.bytes_done;
    fill(head, h('div', { class: 'row' }, h('h1', {}, `Transfer ${j.id}`), badge(j.state)),
      j.reason ? h('p', { class: j.state === 'failed' ? 'error' : 'muted' }, j.reason) : null,
      h('p', { class: 'muted' }, `From ${connectorName(j.connector)}: `, j.mappings.length ? `${j.mappings.length} home folders, each to its own destination` : `${j.sources.join(', ')} into ${j.destination.path}`),
      progressBar(j.bytes_done, j.bytes_total, 'Transfer progress'));
    const stat = (k, v, id2) => h('div', { class: 'stat' }, h('div', { class: 'v', id: id2 }, v), h('div', { class: 'k' }, k));
    fill(stats, 
      stat('Files done', `${j.files_done + j.files_skipped} / ${j.files_total}`, 'stat-files'),
      stat('Failed', String(j.files_failed), 'stat-failed'),
      stat('Skipped', String(j.files_skipped), 'stat-skipped'),
      j.files_deleted ? stat('Deleted at source', String(j.files_deleted), 'stat-deleted') : null,
      stat('Bytes', `${bytes(j.bytes_done)} / ${bytes(j.bytes_total)}`, 'stat-bytes'),
      stat('Percent', j.bytes_total ? `${Math.floor((j.bytes_done / j.bytes_total) * 100)} %` : (j.state === 'completed' ? '100 %' : '0 %'), 'stat-percent'),
      stat('Rate', rate > 0 ? `${bytes(rate)}/s` : '—', 'stat-rate'),
      stat('Time left', rate > 0 && left > 0 ? duration(left / rate) : '—', 'stat-eta'));
    const finished = ['completed', 'completed_with_errors', 'failed', 'cancelled'].includes(j.state);
    // The buttons change only with the state, so a focused button stays put during progress.
    if (actions.dataset.state !== j.state) {
      actions.dataset.state = j.state;
      keepFocus(() => fill(actions, 
      ['queued', 'running'].includes(j.state) ? h('button', { type: 'button', onclick: () => act('pause') }, 'Pause') : null,
      j.state === 'paused' ? h('button', { type: 'button', class: 'primary', onclick: () => act('resume') }, 'Resume') : null,
      !finished ? h('button', { type: 'button', class: 'danger', onclick: () => act('cancel', { title: 'Cancel this transfer?', body: 'Files already copied stay at the destination. A cancelled transfer cannot be resumed; re-run it later to copy what is left.', submit: 'Cancel transfer' }) }, 'Cancel') : null,
      finished ? h('button', { type: 'button', class: 'primary', onclick: () => act('rerun') }, 'Rerun (new and changed files)') : null,
      csv));
    }
    // Reload the report when the counts move, at most every two seconds.
    const key = `${j.state}/${j.files_done}/${j.files_failed}/${j.files_skipped}/${j.files_total}`;
    if (key !== reportKey && !reportTimer) {
      reportKey = key;
      reportTimer = setTimeout(() => { reportTimer = null; }, 2000);
      loadReport();
    }
  }

  drawTabs();
  fill(main, head, stats, actions, h('h2', {}, 'Files'), tabs, report);
  render();
  return (what) => { if (what === 'jobs' || what === 'connectors') render(); };
}

// ---------- router ----------

async function route() {
  const main = $('#main');
  clearError();
  const [path, query] = location.hash.replace(/^#/, '').split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  state.render = null;
  if (parts[0] === 'login' || !state.csrf) {
    if (!state.csrf) {
      const s = await api('GET', '/session');
      if (!s.signed_in) {
        loginView(main);
        return;
      }
      state.csrf = s.csrf;
      if (parts[0] === 'login') { location.hash = '#/connectors'; return; }
    } else { location.hash = '#/connectors'; return; }
  }
  $('#nav').hidden = false;
  $('#signout').hidden = false;
  for (const a of document.querySelectorAll('#nav a')) a.setAttribute('aria-current', a.dataset.nav === (parts[0] === 'browse' ? 'connectors' : parts[0] || 'connectors') ? 'page' : 'false');
  startEvents();
  if (!state.connectors || !state.jobs) {
    fill(main, h('p', { class: 'muted', role: 'status' }, 'Loading…'));
    try { await loadLists(); } catch (e) { fill(main, h('p', { class: 'error' }, e.message)); return; }
  }
  let render = null;
  switch (parts[0]) {
    case 'browse': render = browseView(main, parts[1], params); break;
    case 'new-job': render = wizardView(main); break;
    case 'jobs': render = parts[1] ? jobView(main, parts[1]) : jobsView(main); break;
    default: render = connectorsView(main);
  }
  state.render = render;
  const heading = main.querySelector('h1');
  if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
}

$('#signout').addEventListener('click', async () => {
  try { await api('DELETE', '/session'); } catch (e) { /* signed out either way */ }
  state.connectors = null;
  state.jobs = null;
  signedOut();
});

window.addEventListener('hashchange', () => { route().catch(showError); });
window.addEventListener('unhandledrejection', (ev) => { ev.preventDefault(); showError(ev.reason); });
route().catch(showError);
