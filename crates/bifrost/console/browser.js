// A folder view of one connector's shares, page by page, with breadcrumbs, folder sizes on
// request and, for choosing sources, checkboxes.

import { api } from './api.js';
import { h, fill, bytes, when, joinPath } from './ui.js';

// A folder view of one connector; with `select`, entries get checkboxes.
export function browser(connector, startPath, { select = null, onNavigate = null } = {}) {
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
