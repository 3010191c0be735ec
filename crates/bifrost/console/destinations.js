// The Destinations page: object storage (S3, Azure Blob, Google Cloud Storage) that transfers
// land in. List, Test, delete, and one form to create or edit. Credentials go in and never
// come back: the API has no field that returns one, so an edit shows them blank.

import { state, api, can, loadDestinations } from './api.js';
import { h, fill, keepFocus, dialog } from './ui.js';
import { KINDS, kindLabel, containerOf } from './objects.js';

// The form's fields per kind, in the API's names. `secret`: a password input, never prefilled.
const FIELDS = {
  s3: [
    { key: 'bucket', label: 'Bucket', required: true, placeholder: 'archive' },
    { key: 'prefix', label: 'Prefix', hint: 'Optional: every object goes under it, such as migration/2026.' },
    { key: 'endpoint', label: 'Endpoint', placeholder: 'https://s3.example.com', hint: 'Empty for Amazon S3; the URL of an S3-compatible service otherwise.' },
    { key: 'region', label: 'Region', placeholder: 'us-east-1', hint: 'The region requests are signed for; us-east-1 when empty.' },
    { key: 'path_style', label: 'Path-style addressing', type: 'check', hint: 'Requests go to ENDPOINT/BUCKET/KEY rather than BUCKET.ENDPOINT/KEY, as most S3-compatible services (MinIO, Ceph, moto) want. On by default when an endpoint is given.' },
    { key: 'access_key_id', label: 'Access key ID', type: 'secret' },
    { key: 'secret_access_key', label: 'Secret access key', type: 'secret' },
  ],
  azure_blob: [
    { key: 'account', label: 'Storage account', required: true, placeholder: 'contosoarchive' },
    { key: 'container', label: 'Container', required: true, placeholder: 'migration' },
    { key: 'prefix', label: 'Prefix', hint: 'Optional: every blob goes under it.' },
    { key: 'endpoint', label: 'Endpoint', placeholder: 'http://127.0.0.1:10000/devstoreaccount1', hint: 'Empty for https://ACCOUNT.blob.core.windows.net; the account URL of an emulator or sovereign cloud otherwise.' },
    { key: 'access_key', label: 'Account key', type: 'secret', hint: 'One of the storage account\u2019s access keys (base64).' },
  ],
  gcs: [
    { key: 'bucket', label: 'Bucket', required: true, placeholder: 'archive' },
    { key: 'prefix', label: 'Prefix', hint: 'Optional: every object goes under it.' },
    { key: 'endpoint', label: 'Endpoint', hint: 'Empty for Google; the URL of a GCS-compatible service otherwise.' },
    { key: 'service_account_json', label: 'Service account key (JSON)', type: 'secret', hint: 'Paste the key file\u2019s contents, or load the file.' },
  ],
};

export function destinationsView(main) {
  const table = h('div');
  // Operators may test a destination; only admins add, edit or delete one. A viewer gets
  // neither the Test column nor the Actions column.
  const testing = can('test-destination');
  const managing = can('destinations');
  const cols = ['Name', 'Kind', 'Bucket or container', 'Prefix', 'Endpoint', testing && 'Test', (testing || managing) && 'Actions'].filter(Boolean);
  const render = () => {
    const list = state.destinations;
    if (!list) { fill(table, h('p', { class: 'muted', role: 'status' }, 'Loading destinations…')); return; }
    if (!list.length) {
      fill(table, h('div', { class: 'card' }, h('p', {}, 'No destinations yet.'),
        h('p', { class: 'muted' }, managing ? 'Add' : 'An admin can add', ' an S3 bucket (AWS or any S3-compatible service), an Azure Blob container or a Google Cloud Storage bucket; the transfer wizard can then land files in it. Folders on the Bifrost machine need no destination here.')));
      return;
    }
    fill(table, h('div', { class: 'table-wrap' }, h('table', { id: 'destinations' },
      h('thead', {}, h('tr', {}, cols.map((t) => h('th', { scope: 'col', class: t === 'Endpoint' ? 'hide-narrow' : null }, t)))),
      h('tbody', {}, list.map((d) => {
        const r = state.destTests.get(d.id);
        return [h('tr', { 'data-id': d.id, class: r && r.error ? 'has-detail' : null },
          h('td', {}, d.name),
          h('td', {}, kindLabel(d.kind)),
          h('td', { class: 'path' }, containerOf(d)),
          h('td', { class: 'path' }, d.prefix || h('span', { class: 'muted' }, '(none)')),
          h('td', { class: 'path hide-narrow' }, d.endpoint || h('span', { class: 'muted' }, 'default')),
          testing && h('td', { class: 'test-result', role: 'status' }, testBadge(r)),
          (testing || managing) && h('td', {}, h('div', { class: 'row nowrap' },
            testing && h('button', { type: 'button', 'data-key': `test-${d.id}`, onclick: () => test(d), disabled: r && r.pending }, 'Test'),
            managing && h('a', { class: 'button', 'data-key': `edit-${d.id}`, href: `#/destinations/${encodeURIComponent(d.id)}` }, 'Edit'),
            managing && h('button', { type: 'button', class: 'danger', 'data-key': `delete-${d.id}`, onclick: () => remove(d) }, 'Delete')))),
        // The service's own words, on a line of their own under the destination.
        r && r.error ? h('tr', { class: 'detail', 'data-for': d.id }, h('td', { colspan: cols.length, class: 'error test-error', role: 'alert' }, r.error)) : null];
      })))));
  };

  async function test(d) {
    state.destTests.set(d.id, { pending: true });
    keepFocus(render);
    let r;
    try { r = await api('POST', `/destinations/${encodeURIComponent(d.id)}/test`); } catch (e) { r = { ok: false, error: e.message }; }
    state.destTests.set(d.id, r);
    keepFocus(render);
  }

  async function remove(d) {
    const done = await dialog(`Delete ${d.name}?`,
      h('p', {}, 'Bifrost forgets this destination and its credentials. Objects already copied stay where they are; a transfer still running into it must finish or be cancelled first.'),
      { submit: 'Delete', danger: true, onSubmit: async () => { await api('DELETE', `/destinations/${encodeURIComponent(d.id)}`); return true; } });
    if (done === null) return;
    state.destTests.delete(d.id);
    await loadDestinations();
    render();
  }

  fill(main, h('div', { class: 'row spread' }, h('h1', {}, 'Destinations'),
    managing ? h('a', { class: 'button primary', id: 'new-destination', href: '#/destinations/new' }, 'New destination') : null), table);
  render();
  loadDestinations().then(render, (e) => fill(table, h('p', { class: 'error' }, e.message)));
  return null;
}

function testBadge(r) {
  if (!r) return h('span', { class: 'muted' }, 'not tested');
  if (r.pending) return h('span', { class: 'muted' }, 'Testing…');
  if (r.ok) return h('span', { class: 'badge completed', title: 'Listing, writing and deleting a small object all worked' }, 'ok');
  return h('span', { class: 'badge failed' }, 'failed');
}

// Create (`id` null) or edit a destination.
export function destinationFormView(main, id) {
  const editing = id !== null;
  const error = h('p', { class: 'error', role: 'alert', id: 'destination-error' });
  const fields = h('div');
  // path_style stays undefined until touched: it then follows the endpoint, as Bifrost's default does.
  const values = { kind: 's3', name: '', prefix: '', endpoint: '', region: '', path_style: undefined };
  let view = null;

  function input(f) {
    const fid = `d-${f.key}`;
    if (f.type === 'check') {
      const box = h('input', { type: 'checkbox', id: fid, checked: values[f.key] ?? !!values.endpoint.trim(), onchange: (ev) => { values[f.key] = ev.target.checked; } });
      return h('div', { class: 'field' }, h('label', {}, box, ' ', f.label),
        f.hint ? h('span', { class: 'hint' }, f.hint) : null);
    }
    const secret = f.type === 'secret';
    const el = h('input', {
      type: secret ? 'password' : 'text', id: fid, value: secret ? '' : (values[f.key] ?? ''), placeholder: secret && editing ? '(stored)' : (f.placeholder || null),
      required: f.required || (secret && !editing), autocomplete: secret ? 'new-password' : 'off', spellcheck: false,
      oninput: (ev) => {
        values[f.key] = ev.target.value;
        const box = fields.querySelector('#d-path_style');
        if (f.key === 'endpoint' && box && values.path_style === undefined) box.checked = !!ev.target.value.trim();
      },
    });
    let extra = null;
    if (f.key === 'service_account_json') {
      const file = h('input', { type: 'file', accept: '.json,application/json', hidden: true, onchange: async (ev) => {
        const t = ev.target.files[0];
        if (!t) return;
        try { el.value = JSON.stringify(JSON.parse(await t.text())); values[f.key] = el.value; error.textContent = ''; } catch { error.textContent = 'That file is not a JSON key file.'; }
        ev.target.value = '';
      } });
      extra = h('div', {}, h('button', { type: 'button', onclick: () => file.click() }, 'Load from a key file…'), file);
    }
    const hint = secret && editing ? [f.hint ? f.hint + ' ' : '', 'Stored and never shown: leave blank to keep it, or type a new one to replace it.'] : f.hint;
    return h('div', { class: 'field' }, h('label', { for: fid }, f.label), el, extra, hint ? h('span', { class: 'hint' }, hint) : null);
  }

  function drawFields() {
    fill(fields, FIELDS[values.kind].map(input));
  }

  const kindChoice = h('fieldset', { class: 'field' }, h('legend', {}, 'Kind'),
    Object.entries(KINDS).map(([kind, k]) => h('div', {}, h('label', {}, h('input', { type: 'radio', name: 'kind', value: kind, checked: values.kind === kind,
      onchange: () => { values.kind = kind; drawFields(); } }), ' ', k.long))));

  async function save(ev) {
    ev.preventDefault();
    error.textContent = '';
    const submit = form.querySelector('button[type=submit]');
    submit.disabled = true;
    try {
      if (editing) {
        const patch = changes();
        if (Object.keys(patch).length) await api('PATCH', `/destinations/${encodeURIComponent(id)}`, patch);
        state.destTests.delete(id);
      } else {
        await api('POST', '/destinations', body());
      }
      await loadDestinations();
      location.hash = '#/destinations';
    } catch (e) {
      error.textContent = e.message;
      submit.disabled = false;
    }
  }

  // A new destination's body: its kind's fields; empty optional ones left out.
  function body() {
    const b = { name: values.name.trim(), kind: values.kind };
    for (const f of FIELDS[values.kind]) {
      const v = values[f.key];
      if (f.type === 'check') { if (v !== undefined) b[f.key] = v; }
      else if (f.type === 'secret') b[f.key] = (v || '').trim();
      else if (f.key === 'prefix') b.prefix = (v || '').trim();
      else if ((v || '').trim()) b[f.key] = v.trim();
    }
    return b;
  }

  // What the edit changed; a secret only when one was typed.
  function changes() {
    const p = {};
    if (values.name.trim() !== view.name) p.name = values.name.trim();
    for (const f of FIELDS[view.kind]) {
      const v = values[f.key];
      if (f.type === 'secret') { if ((v || '').trim()) p[f.key] = v.trim(); } else if (f.type === 'check') { if (!!v !== !!view[f.key]) p[f.key] = !!v; } else if ((v || '').trim() !== (view[f.key] || '')) p[f.key] = (v || '').trim();
    }
    return p;
  }

  const name = h('input', { type: 'text', id: 'd-name', required: true, maxLength: 200, placeholder: 'Archive', oninput: (ev) => { values.name = ev.target.value; } });
  const form = h('form', { class: 'card', id: 'destination-form', onsubmit: save },
    h('div', { class: 'field' }, h('label', { for: 'd-name' }, 'Name'), name),
    editing ? null : kindChoice,
    fields, error,
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, editing ? 'Save changes' : 'Add destination'),
      h('a', { class: 'button', href: '#/destinations' }, 'Cancel')));

  if (!editing) {
    drawFields();
    fill(main, h('h1', {}, 'New destination'), form);
    return null;
  }
  fill(main, h('h1', {}, 'Edit destination'), h('p', { class: 'muted', role: 'status' }, 'Loading…'));
  api('GET', `/destinations/${encodeURIComponent(id)}`).then((d) => {
    view = d;
    Object.assign(values, d, { endpoint: d.endpoint || '', region: d.region || '' });
    name.value = d.name;
    drawFields();
    fill(main, h('h1', {}, `Edit ${d.name}`), h('p', { class: 'muted' }, `${KINDS[d.kind] ? KINDS[d.kind].long : d.kind}; its kind cannot change.`), form);
    const heading = main.querySelector('h1');
    if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
  }, (e) => fill(main, h('h1', {}, 'Edit destination'), h('p', { class: 'error' }, e.message)));
  return null;
}
