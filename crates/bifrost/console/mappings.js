// Home-drives mode: each top-level folder of one chosen folder goes to its own destination
// folder, in an editable table that exports and imports as CSV (`source,destination`).

import { api } from './api.js';
import { h, fill, joinPath, baseName, csvEscape, download } from './ui.js';

export function parseCsv(text) {
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

// Refuses to go on while a user folder has no destination.
export function checkMappings(w) {
  if (!w.mappings.length) throw new Error('The mapping table is empty: choose one folder whose subfolders are the users\u2019 home folders.');
  if (w.mappings.some((m) => !m.destination.trim())) throw new Error('Every user folder needs a destination folder.');
}

// The table with its Read / Export / Import buttons; `error` is the wizard's error line.
export function mappingEditor(w, error) {
  const table = h('div', { id: 'mapping-table' });

  async function load() {
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
      draw();
    } catch (e) {
      fill(table, h('p', { class: 'error' }, e.message));
    }
  }

  function draw() {
    if (!w.mappings.length) { fill(table, h('p', { class: 'muted' }, 'No subfolders found.')); return; }
    fill(table, h('div', { class: 'table-wrap' }, h('table', { id: 'mappings' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'User folder'), h('th', { scope: 'col' }, 'Destination folder'))),
      h('tbody', {}, w.mappings.map((m, i) => h('tr', {},
        h('td', { class: 'path' }, m.source),
        h('td', {}, h('input', { type: 'text', value: m.destination, 'aria-label': `Destination for ${baseName(m.source)}`, 'data-index': String(i), style: 'width:100%',
          oninput: (ev) => { w.mappings[i].destination = ev.target.value; } }))))))));
  }

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
      draw();
      error.textContent = '';
      if (w.mappings.length && !matched && bySource.size) error.textContent = 'No row of that file matched a user folder here; check its first column.';
    } catch (e) { error.textContent = `Cannot read that file: ${e.message}`; }
    ev.target.value = '';
  } });

  if (w.selection.size !== 1) {
    return h('p', { class: 'notice' }, 'Home drives needs exactly one selected folder. Go back and select the folder that holds the user folders.');
  }
  const csv = () => 'source,destination\r\n' + w.mappings.map((m) => `${csvEscape(m.source)},${csvEscape(m.destination)}`).join('\r\n') + '\r\n';
  if (w.mappings.length) draw(); else load();
  return [
    h('div', { class: 'row' },
      h('button', { type: 'button', onclick: load }, w.mappings.length ? 'Reload user folders' : 'Read user folders'),
      h('button', { type: 'button', id: 'mapping-export', onclick: () => download('home-drives.csv', csv(), 'text/csv') }, 'Export CSV'),
      h('button', { type: 'button', onclick: () => fileInput.click() }, 'Import CSV…'), fileInput),
    table,
  ];
}
