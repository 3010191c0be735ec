// Object storage as the console shows it: kind names, where a path lands, and the prefix
// browser over GET /destinations/{id}/browse.

import { api } from './api.js';
import { h, fill, bytes, when } from './ui.js';

export const KINDS = {
  s3: { label: 'S3', long: 'Amazon S3 or S3-compatible', bucket: 'Bucket' },
  azure_blob: { label: 'Azure Blob', long: 'Azure Blob Storage', bucket: 'Container' },
  gcs: { label: 'GCS', long: 'Google Cloud Storage', bucket: 'Bucket' },
};

export const kindLabel = (kind) => (KINDS[kind] ? KINDS[kind].label : kind);

// The bucket, or the Azure account's container.
export function containerOf(d) {
  return d.kind === 'azure_blob' ? `${d.account}/${d.container}` : d.bucket;
}

// A path inside a destination as the API takes it: relative, single slashes, no `.` or `..`.
export function cleanPath(p) {
  const parts = p.trim().split('/').filter(Boolean);
  if (parts.some((s) => s === '.' || s === '..')) throw new Error('The path inside the destination may not contain "." or ".." folders; give folders like dept/finance.');
  return parts.join('/');
}

// `bucket/prefix/path/`: where the files of a job with this path land.
export function landing(d, path) {
  return [containerOf(d), d.prefix, path].filter(Boolean).join('/') + '/';
}

// A folder view of a destination below its prefix. `path` is relative to the prefix ("" for
// its top); `onOpen(path)` runs when the user opens a folder or a breadcrumb.
export function prefixBrowser(d, path, { onOpen } = {}) {
  const root = h('div', { class: 'browser', id: 'prefix-browser' });
  let current = null;

  async function open(p) {
    current = p;
    if (onOpen) onOpen(p);
    fill(root, crumbs(p), h('p', { class: 'muted', role: 'status' }, 'Loading…'));
    try {
      const q = new URLSearchParams({ prefix: p });
      const list = await api('GET', `/destinations/${encodeURIComponent(d.id)}/browse?${q}`);
      if (current === p) draw(p, list);
    } catch (e) {
      if (current !== p) return;
      fill(root, crumbs(p), h('div', { class: 'notice', role: 'alert' }, h('p', { class: 'error' }, e.message),
        h('button', { type: 'button', onclick: () => open(p) }, 'Try again')));
    }
  }

  function crumbs(p) {
    const items = [h('li', {}, h('button', { type: 'button', class: 'link', onclick: () => open('') }, containerOf(d) + (d.prefix ? `/${d.prefix}` : '')))];
    let acc = '';
    for (const part of p.split('/').filter(Boolean)) {
      acc = acc ? `${acc}/${part}` : part;
      const target = acc;
      items.push(h('li', {}, h('button', { type: 'button', class: 'link', onclick: () => open(target) }, part)));
    }
    return h('nav', { class: 'crumbs', 'aria-label': 'Prefix path' }, h('ol', {}, items));
  }

  function draw(p, list) {
    const base = p ? `${p}/` : '';
    const name = (k) => (k.startsWith(base) ? k.slice(base.length) : k);
    const rows = [
      ...list.folders.map((f) => {
        const rel = f.replace(/\/+$/, '');
        return h('tr', {}, h('td', {}, h('button', { type: 'button', class: 'link folder', onclick: () => open(rel) }, name(rel))),
          h('td', { class: 'num' }, 'folder'), h('td', { class: 'hide-narrow' }));
      }),
      ...list.objects.map((o) => h('tr', {}, h('td', { class: 'path' }, name(o.key)), h('td', { class: 'num' }, bytes(o.size)),
        h('td', { class: 'hide-narrow' }, when(o.modified)))),
    ];
    fill(root, crumbs(p),
      rows.length
        ? h('div', { class: 'table-wrap' }, h('table', { class: 'entries objects' },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col', class: 'num' }, 'Size'), h('th', { scope: 'col', class: 'hide-narrow' }, 'Modified'))),
          h('tbody', {}, rows)))
        : h('p', { class: 'muted' }, 'Nothing here yet: copied files will be the first.'),
      list.truncated ? h('p', { class: 'muted' }, `Showing the first ${rows.length} entries.`) : null);
  }

  open(path);
  return { element: root, open };
}
