// Bifrost console: a small single-page app over /api/v1. No framework and no build step, so its
// ES modules are embedded in the binary as written and it works on an air-gapped network.
// This module signs in and routes; each page lives in its own module.

import { state, api, can, signedOut, startEvents, loadLists } from './api.js';
import { h, $, fill, showError, clearError } from './ui.js';
import { connectorsView, browseView } from './connectors.js';
import { wizardView } from './wizard.js';
import { jobsView, jobView } from './jobs.js';
import { destinationsView, destinationFormView } from './destinations.js';
import { loginView, passwordView } from './signin.js';
import { auditView } from './audit.js';

// ---------- router ----------

// Pages a role may not use, by the address's first part: what they need, in words.
const GUARDS = {
  browse: ['browse', 'the operator role to browse a connector\u2019s folders'],
  'new-job': ['transfers', 'the operator role to start transfers'],
  audit: ['audit', 'the admin role to read the audit trail'],
};

function guard(parts) {
  if (parts[0] === 'destinations' && parts[1]) return ['destinations', 'the admin role to add or edit destinations'];
  return GUARDS[parts[0]] || null;
}

// The header: who is signed in, and only the links their role can use.
function showChrome() {
  $('#nav').hidden = state.me.role === 'metrics';
  $('#signout').hidden = false;
  fill($('#who'), state.me.name || '', ' ', h('span', { class: 'badge role' }, state.me.role));
  $('#who').hidden = false;
  for (const a of document.querySelectorAll('#nav a[data-can]')) a.hidden = !can(a.dataset.can);
}

async function route() {
  const main = $('#main');
  clearError();
  const [path, query] = location.hash.replace(/^#/, '').split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  state.render = null;
  // After signing in: the page asked for, or the connectors when that was the sign-in page.
  const done = () => {
    if (['', '#', '#/login'].includes(location.hash)) location.hash = '#/connectors';
    else route().catch(showError);
  };
  if (parts[0] === 'login' || !state.csrf) {
    if (!state.csrf) {
      const s = await api('GET', '/session');
      if (!s.signed_in) {
        loginView(main, done);
        return;
      }
      state.csrf = s.csrf;
      state.me = s;
      if (parts[0] === 'login' && !s.must_change) { location.hash = '#/connectors'; return; }
    } else if (!state.me?.must_change) { location.hash = '#/connectors'; return; }
  }
  if (state.me?.must_change) {
    passwordView(main, '', done);
    return;
  }
  showChrome();
  for (const a of document.querySelectorAll('#nav a')) a.setAttribute('aria-current', a.dataset.nav === (parts[0] === 'browse' ? 'connectors' : parts[0] || 'connectors') ? 'page' : 'false');
  state.render = await page(main, parts, params);
  const heading = main.querySelector('h1');
  if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
}

// Draws the page the address names for the signed-in account; returns its live-update hook.
async function page(main, parts, params) {
  // A metrics account may read /metrics and nothing else, not even the event stream.
  if (state.me.role === 'metrics') {
    fill(main, h('h1', {}, 'Metrics account'), h('p', {}, 'This account can only read /metrics; sign out to use another account.'));
    return null;
  }
  // The server would refuse this page's calls anyway; say why instead of showing its 403s.
  const needs = guard(parts);
  if (needs && !can(needs[0])) {
    fill(main, h('h1', {}, 'Not for your role'), h('p', {}, `${state.me.name} has the ${state.me.role} role; this page needs ${needs[1]}.`));
    return null;
  }
  startEvents();
  if (!state.connectors || !state.jobs) {
    fill(main, h('p', { class: 'muted', role: 'status' }, 'Loading…'));
    try { await loadLists(); } catch (e) { fill(main, h('p', { class: 'error' }, e.message)); return null; }
  }
  switch (parts[0]) {
    case 'browse': return browseView(main, parts[1], params);
    case 'new-job': return wizardView(main);
    case 'jobs': return parts[1] ? jobView(main, parts[1]) : jobsView(main);
    case 'audit': return auditView(main, params);
    case 'destinations': return parts[1] ? destinationFormView(main, parts[1] === 'new' ? null : parts[1]) : destinationsView(main);
    default: return connectorsView(main);
  }
}

$('#signout').addEventListener('click', async () => {
  try { await api('DELETE', '/session'); } catch (e) { /* signed out either way */ }
  state.connectors = null;
  state.jobs = null;
  state.destinations = null;
  state.destTests.clear();
  state.wizard = null;
  state.me = null;
  signedOut();
});

state.route = () => route().catch(showError);
window.addEventListener('hashchange', () => { route().catch(showError); });
window.addEventListener('unhandledrejection', (ev) => { ev.preventDefault(); showError(ev.reason); });
route().catch(showError);
