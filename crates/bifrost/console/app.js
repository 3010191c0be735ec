// Bifrost console: a small single-page app over /api/v1. No framework and no build step, so its
// ES modules are embedded in the binary as written and it works on an air-gapped network.
// This module signs in and routes; each page lives in its own module.

import { state, api, signedOut, startEvents, loadLists } from './api.js';
import { h, $, fill, showError, clearError } from './ui.js';
import { connectorsView, browseView } from './connectors.js';
import { wizardView } from './wizard.js';
import { jobsView, jobView } from './jobs.js';
import { destinationsView, destinationFormView } from './destinations.js';
import { loginView, passwordView } from './signin.js';

// ---------- router ----------

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
    case 'destinations': render = parts[1] ? destinationFormView(main, parts[1] === 'new' ? null : parts[1]) : destinationsView(main); break;
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
  state.destinations = null;
  state.me = null;
  signedOut();
});

state.route = () => route().catch(showError);
window.addEventListener('hashchange', () => { route().catch(showError); });
window.addEventListener('unhandledrejection', (ev) => { ev.preventDefault(); showError(ev.reason); });
route().catch(showError);
