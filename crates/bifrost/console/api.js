// Bifrost's API as the console uses it: the shared state, calls with the session's CSRF token,
// the live event stream, and the lists every page reads.

export const state = {
  csrf: null,
  me: null, // who is signed in: GET /api/v1/session's answer {name, role, must_change, ...}
  connectors: null,
  jobs: null,
  destinations: null, // stored destinations, loaded by the pages that show them
  destTests: new Map(), // destination id -> the last Test answer, kept across redraws
  events: null,
  samples: new Map(), // job id -> [{t, bytes}] for rate and ETA
  wizard: null,
  render: null, // re-renders the current view when live data changes
  route: null, // redraws the page the address names (set by app.js)
};

// What each role may do, mirroring Bifrost's route table (GET /api/v1/openapi.json has it as
// `x-bifrost-role`). The server enforces it; the console only leaves out the controls a role
// would see refused. Each role includes the ones below it: admin > operator > viewer.
const NEEDS = {
  view: 'viewer', // connectors, destinations, jobs, reports, the event stream
  connectors: 'operator', // authorize, rename, revoke
  browse: 'operator', // a connector's folders, and a destination's objects in the wizard
  transfers: 'operator', // start, preview, pause, resume, cancel, rerun, keep in sync
  'test-destination': 'operator',
  destinations: 'admin', // create, edit, delete
  audit: 'admin',
};
const RANK = { viewer: 1, operator: 2, admin: 3 };

// Whether the signed-in account may do `what` (a key of NEEDS).
export function can(what) {
  const need = NEEDS[what];
  if (!need) throw new Error(`can(${what}): no such permission`);
  return (RANK[state.me?.role] || 0) >= RANK[need];
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(method, path, body) {
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
    // A wrong password on the sign-in or password form is that form's error, not a sign-out.
    if (res.status === 401 && !path.startsWith('/session')) signedOut();
    throw new ApiError(res.status, message);
  }
  return data;
}


export function signedOut() {
  state.csrf = null;
  state.me = null;
  if (state.events) { state.events.close(); state.events = null; }
  if (location.hash !== '#/login') location.hash = '#/login';
}

export function startEvents() {
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

export async function loadLists() {
  const [connectors, jobs] = await Promise.all([api('GET', '/connectors'), api('GET', '/jobs')]);
  state.connectors = connectors;
  state.jobs = jobs;
}

export function connectorName(id) {
  const c = (state.connectors || []).find((x) => x.id === id);
  return c ? c.name : id;
}


export function findConnector(id) {
  return (state.connectors || []).find((c) => c.id === id);
}


export async function loadDestinations() {
  state.destinations = await api('GET', '/destinations');
  return state.destinations;
}

export function findDestination(id) {
  return (state.destinations || []).find((d) => d.id === id);
}
