// The wizard's destination step: a folder on the Bifrost machine (with home-drives mode), or a
// path inside a stored object-storage destination, with a browser of what is already there.

import { state, can, loadDestinations, findDestination } from './api.js';
import { h, fill } from './ui.js';
import { KINDS, kindLabel, containerOf, cleanPath, landing, prefixBrowser } from './objects.js';
import { mappingEditor, checkMappings } from './mappings.js';

// The job body's `destination`.
export function destinationOf(w) {
  if (w.target === 'stored') return { kind: 'stored', id: w.destId, path: cleanPath(w.destPath) };
  return { kind: 'folder', path: w.destination.trim() };
}

// Throws what is missing or wrong, in words for the wizard's error line.
export function checkDestination(w) {
  if (w.target === 'stored') {
    if (!findDestination(w.destId)) throw new Error('Choose the stored destination to copy into, or add one on the Destinations page.');
    cleanPath(w.destPath);
    return;
  }
  if (!w.destination.trim().startsWith('/') && !/^[A-Za-z]:[\\/]/.test(w.destination.trim())) throw new Error('The destination must be an absolute folder path on the Bifrost machine, such as /srv/migration.');
  if (w.mode === 'home') checkMappings(w);
}

// The review's "To" line.
export function reviewTo(w) {
  if (w.mode === 'home') return 'the destinations in the mapping table';
  if (w.target !== 'stored') return w.destination;
  const d = findDestination(w.destId);
  if (!d) return 'a stored destination that no longer exists: go back and choose another';
  let path = '';
  try { path = cleanPath(w.destPath); } catch { /* checked before review */ }
  return [`${d.name} (${kindLabel(d.kind)}): `, h('span', { class: 'mono', id: 'review-landing' }, landing(d, path))];
}

function radio(name, value, checked, label, onchange) {
  return h('div', {}, h('label', {}, h('input', { type: 'radio', name, value, checked, onchange, 'data-key': `${name}-${value}` }), ' ', label));
}

// The step's content; `redraw` draws the step again after a choice that changes its shape.
export function destinationStep(w, { error, redraw }) {
  const stored = w.target === 'stored';
  const choice = h('fieldset', { class: 'field' }, h('legend', {}, 'Land the files in'),
    radio('target', 'folder', !stored, 'Folder on the Bifrost machine', () => { w.target = 'folder'; redraw(); }),
    radio('target', 'stored', stored, 'Object storage (S3, Azure Blob or Google Cloud Storage)', () => { w.target = 'stored'; w.mode = 'standard'; redraw(); }));
  return [h('h2', {}, 'Where to?'), choice, stored ? storedPart(w, redraw) : folderPart(w, error, redraw)];
}

function folderPart(w, error, redraw) {
  const dest = h('input', { type: 'text', id: 'destination', value: w.destination, placeholder: '/srv/migration', oninput: (ev) => { w.destination = ev.target.value; } });
  const modeRadio = (value, label, hint) => h('div', {}, h('label', {}, h('input', { type: 'radio', name: 'mode', value, checked: w.mode === value, 'data-key': `mode-${value}`,
    onchange: () => { w.mode = value; redraw(); } }), ' ', label), h('div', { class: 'hint muted' }, hint));
  return [
    h('div', { class: 'field' }, h('label', { for: 'destination' }, 'Destination folder on the Bifrost machine'), dest,
      h('span', { class: 'hint' }, 'Each selected folder or file lands inside it under its own name.')),
    h('fieldset', { class: 'field' }, h('legend', {}, 'Mode'),
      modeRadio('standard', 'Standard copy', 'Copy what you selected into the destination folder.'),
      modeRadio('home', 'Home drives', 'Select one folder (such as /home or D:\\Users); each of its top-level folders goes to its own destination folder.')),
    w.mode === 'home' ? mappingEditor(w, error) : null,
  ];
}

function storedPart(w, redraw) {
  const list = state.destinations;
  if (!list) {
    const box = h('p', { class: 'muted', role: 'status' }, 'Loading destinations…');
    loadDestinations().then(redraw, (e) => fill(box, h('span', { class: 'error' }, e.message)));
    return box;
  }
  if (!list.length) {
    // Only admins add destinations; an operator is told whom to ask.
    return h('p', { class: 'notice' }, 'No object-storage destination yet. ', can('destinations') ? h('a', { href: '#/destinations/new' }, 'Add one') : 'An admin can add one',
      ' (S3, Azure Blob or Google Cloud Storage) on the Destinations page', can('destinations') ? ', then come back.' : '.');
  }
  if (!findDestination(w.destId)) { w.destId = list[0].id; w.destPath = ''; }
  const d = findDestination(w.destId);
  const select = h('select', { id: 'dest-id', 'data-key': 'dest-id', onchange: (ev) => { w.destId = ev.target.value; w.destPath = ''; redraw(); } },
    Object.entries(KINDS).map(([kind, k]) => {
      const of = list.filter((x) => x.kind === kind);
      return of.length ? h('optgroup', { label: k.long }, of.map((x) => h('option', { value: x.id, selected: x.id === w.destId },
        `${x.name} (${k.label}: ${containerOf(x)}${x.prefix ? '/' + x.prefix : ''})`))) : null;
    }));
  const where = h('p', { id: 'landing' });
  const showWhere = () => {
    let path;
    try { path = cleanPath(w.destPath); } catch (e) { fill(where, h('span', { class: 'error' }, e.message)); return; }
    fill(where, 'Each selected folder or file lands under ', h('strong', { class: 'mono' }, landing(d, path)), ' with its own name.');
  };
  const path = h('input', { type: 'text', id: 'dest-path', value: w.destPath, placeholder: 'dept/finance', spellcheck: false,
    oninput: (ev) => { w.destPath = ev.target.value; showWhere(); },
    onchange: () => { try { browse.open(cleanPath(w.destPath)); } catch { /* shown in the landing line */ } } });
  const browse = prefixBrowser(d, safe(w.destPath), {
    onOpen: (p) => { if (cleanPathOr(w.destPath) !== p) { w.destPath = p; path.value = p; } showWhere(); },
  });
  showWhere();
  return [
    h('div', { class: 'field' }, h('label', { for: 'dest-id' }, 'Stored destination'), select,
      h('span', { class: 'hint' }, can('destinations') ? 'Destinations are added, tested and edited on the ' : 'Destinations are tested on the ', h('a', { href: '#/destinations' }, 'Destinations'), ' page.')),
    h('div', { class: 'field' }, h('label', { for: 'dest-path' }, 'Path inside it'), path,
      h('span', { class: 'hint' }, 'Folders separated by /, or empty for the top. Click a folder below to choose it.')),
    where,
    h('h3', {}, 'Already there'),
    browse.element,
    h('p', { class: 'hint muted' }, 'Home drives mode needs a folder on the Bifrost machine.'),
  ];
}

const cleanPathOr = (p) => { try { return cleanPath(p); } catch { return null; } };
const safe = (p) => cleanPathOr(p) ?? '';
