// The transfer wizard: source connector, what to copy, where to (where.js), options, review.

import { state, api, connectorName, findConnector } from './api.js';
import { h, fill, bytes, keepFocus } from './ui.js';
import { browser } from './browser.js';
import { destinationStep, checkDestination, destinationOf, reviewTo } from './where.js';

const STEPS = ['Source', 'Choose', 'Destination', 'Options', 'Review'];

export function newWizard() {
  return {
    step: 1, connector: null, selection: new Set(), mode: 'standard', mappings: [],
    target: 'folder', destination: '', destId: '', destPath: '', // where.js
    concurrency: 8, include: '', exclude: '', skipHidden: false, modifiedAfter: '',
    limitMBps: '', compareContent: false, deleteRemoved: false,
  };
}

export function jobBody(w) {
  const lines = (s) => s.split('\n').map((x) => x.trim()).filter(Boolean);
  const body = {
    connector: w.connector,
    destination: destinationOf(w),
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


export function wizardView(main) {
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
      if (w.step === 3) checkDestination(w);
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
      fill(body, destinationStep(w, { error, redraw: () => keepFocus(draw) }));
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
          h('dt', {}, 'To'), h('dd', {}, reviewTo(w)),
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

