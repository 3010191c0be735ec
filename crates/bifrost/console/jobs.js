// The Transfers list and one transfer's page: live progress, actions and the per-file report.

import { state, api, can, connectorName, findDestination, loadDestinations } from './api.js';
import { h, fill, keepFocus, bytes, when, duration, baseName, badge, progressBar, dialog, showError, breakable } from './ui.js';
import { kindLabel, containerOf, landing } from './objects.js';

export function rateOf(id) {
  const s = state.samples.get(id);
  if (!s || s.length < 2) return 0;
  const a = s[0], b = s[s.length - 1];
  return b.t > a.t ? ((b.bytes - a.bytes) * 1000) / (b.t - a.t) : 0;
}

export function jobsView(main) {
  const table = h('div');
  const render = () => {
    const jobs = state.jobs;
    if (!jobs) { fill(table, h('p', { class: 'muted' }, 'Loading transfers…')); return; }
    if (!jobs.length) {
      fill(table, h('div', { class: 'card' }, h('p', {}, 'No transfers yet.'),
        can('transfers') ? h('p', {}, h('a', { href: '#/new-job' }, 'Start a transfer'), ' from a connector\u2019s folders.') : null));
      return;
    }
    fill(table, h('div', { class: 'table-wrap' }, h('table', { id: 'jobs' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Transfer'), h('th', { scope: 'col' }, 'From'), h('th', { scope: 'col' }, 'State'),
        h('th', { scope: 'col' }, 'Progress'), h('th', { scope: 'col', class: 'num' }, 'Files'), h('th', { scope: 'col', class: 'hide-narrow' }, 'Started'),
        h('th', { scope: 'col', class: 'hide-narrow' }, 'By'))),
      h('tbody', {}, jobs.map((j) => h('tr', { 'data-id': j.id },
        h('td', {}, h('a', { 'data-key': `job-${j.id}`, href: `#/jobs/${encodeURIComponent(j.id)}` }, j.mappings.length ? `Home drives (${j.mappings.length})` : j.sources.map(baseName).join(', '))),
        h('td', {}, connectorName(j.connector)),
        h('td', {}, badge(j.state)),
        h('td', {}, progressBar(j.bytes_done, j.bytes_total, `Progress of ${j.id}`), h('span', { class: 'muted' }, `${bytes(j.bytes_done)} of ${bytes(j.bytes_total)}`)),
        h('td', { class: 'num' }, `${j.files_done + j.files_skipped} / ${j.files_total}`, j.files_failed ? h('span', { class: 'error' }, ` (${j.files_failed} failed)`) : null),
        h('td', { class: 'hide-narrow' }, when(j.created)),
        h('td', { class: 'hide-narrow' }, j.started_by || h('span', { class: 'muted' }, '—'))))))));
  };
  fill(main, h('div', { class: 'row spread' }, h('h1', {}, 'Transfers'), can('transfers') ? h('a', { class: 'button primary', href: '#/new-job' }, 'New transfer') : null), table);
  render();
  return (what) => { if (what === 'jobs' || what === 'connectors') keepFocus(render); };
}

export function jobView(main, id) {
  let filter = '';
  let reportKey = '';
  let reportTimer = null;
  let reportDue = false;
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
      const j = (state.jobs || []).find((x) => x.id === id);
      const d = j && j.destination.kind === 'stored' ? findDestination(j.destination.id) : null;
      // Into object storage the API reports each object's key; say so, and in which bucket.
      const destHead = j && j.destination.kind === 'stored' ? (d ? `Object key in ${containerOf(d)}` : 'Object key') : 'Destination';
      fill(report, files.length ? h('div', { class: 'table-wrap' }, h('table', { id: 'files' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Source'), h('th', { scope: 'col', class: 'hide-narrow' }, destHead), h('th', { scope: 'col', class: 'num' }, 'Size'), h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Reason'))),
        h('tbody', {}, shown.map((f) => h('tr', {}, h('td', { class: 'path soft' }, breakable(f.source)), h('td', { class: 'path soft hide-narrow' }, breakable(f.destination)), h('td', { class: 'num' }, bytes(f.size)), h('td', {}, badge(f.status)), h('td', {}, f.kind ? h('span', { class: 'muted' }, `${f.kind.replaceAll('_', ' ')}: `) : null, f.reason || ''))))))
        : h('p', { class: 'muted' }, filter ? `No ${filter} files.` : 'No files listed yet.'),
      files.length > shown.length ? h('p', { class: 'muted' }, `Showing the first ${shown.length} of ${files.length}; the CSV has them all.`) : null);
    } catch (e) { fill(report, h('p', { class: 'error' }, e.message)); }
  }

  function drawTabs() {
    fill(tabs, ...[['', 'All'], ['copied', 'Copied'], ['failed', 'Failed'], ['skipped', 'Skipped'], ['pending', 'Pending'], ['deleted', 'Deleted at source']].map(([v, label]) =>
      h('button', { type: 'button', 'aria-pressed': String(filter === v), onclick: () => { filter = v; drawTabs(); loadReport(); } }, label)));
  }

  // Where a job lands: its folder, or its stored destination and the path inside it.
  function into(j) {
    if (j.destination.kind !== 'stored') return j.destination.path;
    const d = findDestination(j.destination.id);
    if (!d) {
      if (!state.destinations) loadDestinations().then(() => { render(); loadReport(); }, () => {});
      return `stored destination ${j.destination.id}, path ${j.destination.path || '(top)'}`;
    }
    return [`${d.name} (${kindLabel(d.kind)}): `, h('span', { class: 'mono' }, landing(d, j.destination.path))];
  }

  function render() {
    const j = (state.jobs || []).find((x) => x.id === id);
    if (!j) { fill(head, h('h1', {}, 'Transfer'), h('p', { class: state.jobs ? 'error' : 'muted' }, state.jobs ? 'There is no such transfer.' : 'Loading…')); return; }
    const rate = j.state === 'running' ? rateOf(id) : 0;
    const left = j.bytes_total - j.bytes_done;
    fill(head, h('div', { class: 'row' }, h('h1', {}, `Transfer ${j.id}`), badge(j.state)),
      j.reason ? h('p', { class: j.state === 'failed' ? 'error' : 'muted' }, j.reason) : null,
      h('p', { class: 'muted' }, `From ${connectorName(j.connector)}: `, j.mappings.length ? `${j.mappings.length} home folders, each to its own destination` : [`${j.sources.join(', ')} into `, into(j)]),
      // Jobs made before accounts existed do not know who started them.
      j.started_by ? h('p', { class: 'muted', id: 'started-by' }, `Started by ${j.started_by}`, j.created ? ` on ${when(j.created)}` : '') : null,
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
    // A viewer gets the report only: every other control changes the job.
    const control = can('transfers');
    if (actions.dataset.state !== j.state) {
      actions.dataset.state = j.state;
      keepFocus(() => fill(actions, !control ? csv : [
      ['queued', 'running'].includes(j.state) ? h('button', { type: 'button', onclick: () => act('pause') }, 'Pause') : null,
      j.state === 'paused' ? h('button', { type: 'button', class: 'primary', onclick: () => act('resume') }, 'Resume') : null,
      !finished ? h('button', { type: 'button', class: 'danger', onclick: () => act('cancel', { title: 'Cancel this transfer?', body: 'Files already copied stay at the destination. A cancelled transfer cannot be resumed; re-run it later to copy what is left.', submit: 'Cancel transfer' }) }, 'Cancel') : null,
      finished ? h('button', { type: 'button', class: 'primary', onclick: () => act('rerun') }, 'Rerun (new and changed files)') : null,
      csv]));
    }
    // Reload the report when the counts move, at most every two seconds; a move inside the
    // two seconds (the job's last) is loaded when they end, so the table never stays behind.
    const key = `${j.state}/${j.files_done}/${j.files_failed}/${j.files_skipped}/${j.files_total}`;
    if (key !== reportKey) {
      reportKey = key;
      if (reportTimer) {
        reportDue = true;
      } else {
        const tick = () => {
          reportTimer = null;
          if (reportDue) { reportDue = false; reportTimer = setTimeout(tick, 2000); loadReport(); }
        };
        reportTimer = setTimeout(tick, 2000);
        loadReport();
      }
    }
  }

  drawTabs();
  fill(main, head, stats, actions, h('h2', {}, 'Files'), tabs, report);
  render();
  return (what) => { if (what === 'jobs' || what === 'connectors') render(); };
}

