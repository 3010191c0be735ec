// The Mover Agent window: renders the controller's view and sends the user's requests to it.
const { invoke } = window.__TAURI__.core;
const { listen } = window.__TAURI__.event;
const $ = (id) => document.getElementById(id);
let current = null;

function render(v) {
  current = v;
  $('key').textContent = v.key || '…';
  $('status').textContent = v.status || 'starting';
  $('status').className = `badge ${v.status}`;
  $('detail').textContent = v.detail ? `— ${v.detail}` : '';
  $('relay').textContent = v.relay || 'not set';
  $('error').hidden = !v.error;
  $('error').textContent = v.error || '';
  $('toggle').textContent = v.detail === 'disconnected by user' ? 'Connect to Mover' : 'Disconnect from Mover';
  $('autostart').checked = v.start_on_login;
  if (v.needs_relay && $('relay-form').hidden) showRelayForm();
  $('served').textContent = v.transferring ? `Transferring — ${v.served} files served so far. ${v.progress.replace(/^Progress: /, '')}` : (v.served ? `${v.served} files served.` : 'No files served yet.');
  const list = $('activity');
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.replaceChildren(...v.activity.map((line) => { const li = document.createElement('li'); li.textContent = line; return li; }));
  if (atBottom) list.scrollTop = list.scrollHeight;
  $('about-version').textContent = v.version;
  $('about-os').textContent = v.os;
  $('about-logs').textContent = v.log_dir;
  $('about-updates').textContent = v.updates || 'checking…';
}

function showRelayForm() {
  $('relay-form').hidden = false;
  $('relay-url').value = (current && current.relay) || '';
  $('relay-url').focus();
}

$('copy').addEventListener('click', async () => {
  try { await invoke('copy_key'); $('copied').textContent = 'Copied.'; } catch (e) { $('copied').textContent = String(e); }
  setTimeout(() => { $('copied').textContent = ''; }, 3000);
});
$('toggle').addEventListener('click', () => invoke(current && current.detail === 'disconnected by user' ? 'connect' : 'disconnect'));
$('autostart').addEventListener('change', (ev) => invoke('set_start_on_login', { on: ev.target.checked }));
$('change-relay').addEventListener('click', showRelayForm);
$('relay-cancel').addEventListener('click', () => { $('relay-form').hidden = true; });
$('relay-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('relay-error').textContent = '';
  try {
    await invoke('save_relay', { url: $('relay-url').value, fingerprint: $('relay-fp').value || null });
    $('relay-form').hidden = true;
  } catch (e) { $('relay-error').textContent = String(e); }
});
$('about-close').addEventListener('click', () => $('about').close());
$('about-logs-open').addEventListener('click', () => invoke('open_log_folder'));

listen('view', (ev) => render(ev.payload));
listen('about', () => { if (!$('about').open) $('about').showModal(); });
invoke('view').then(render);
