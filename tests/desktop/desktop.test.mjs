// The desktop app under Xvfb against a real Bifrost: WebDriver reads the window, xdotool drives
// the real GTK menu, xclip reads the clipboard, dbus-send clicks the tray menu.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { homedir } from 'node:os';
import { startBifrost, api, waitFor, tempDir, repo, bin } from '../console/harness.mjs';

const app = bin('mover-agent-desktop');
const tools = join(process.env.MOVER_TOOLS || join(homedir(), '.cache', 'mover-tools'), 'bin');
let dir, home, bifrost, driver, session, port, connectorId, env;

const sh = (cmd, args) => execFileSync(cmd, args, { env, encoding: 'utf8', timeout: 10000 }).trim();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function wd(method, path, body) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers: { 'Content-Type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
  const data = await res.json();
  if (!res.ok) throw new Error(`WebDriver ${method} ${path}: ${JSON.stringify(data)}`);
  return data.value;
}
async function text(css) {
  const el = await wd('POST', `/session/${session}/element`, { using: 'css selector', value: css });
  return wd('GET', `/session/${session}/element/${Object.values(el)[0]}/text`);
}
const waitText = (css, pred, what) => waitFor(what, async () => { try { const t = await text(css); return pred(t) ? t : null; } catch { return null; } }, 20000);

// Screenshots go to a temp folder, or to the README's docs/screenshots with MOVER_SCREENSHOTS=docs.
const shot = (name) => join(process.env.MOVER_SCREENSHOTS === 'docs' ? join(repo, 'docs/screenshots') : dir, name);

function windowId() { return sh('xdotool', ['search', '--name', '^Mover Agent$']).split('\n')[0]; }
// Presses a menu path until `done` holds: GTK under Xvfb now and then drops the first key of a
// freshly focused window, so a path is retried (after closing any open menu) up to 3 times.
async function menuUntil(keys, done, what) {
  for (let attempt = 0; attempt < 3; attempt++) {
    await menu(...keys);
    try { return await waitFor(what, done, 5000); } catch { await menu('Escape', 'Escape'); }
  }
  throw new Error(`the menu path ${keys.join(' ')} never led to ${what}`);
}

async function menu(...keys) {
  const w = windowId();
  // No window manager runs under Xvfb: focus the window directly, then give GTK time to open
  // each menu before the next key.
  sh('xdotool', ['windowfocus', '--sync', w]);
  await sleep(200);
  // Real (XTEST) key events: GTK ignores synthetic ones sent to a window.
  for (const k of keys) { sh('xdotool', ['key', k]); await sleep(600); }
}
function appLog() {
  const logs = join(home, 'logs');
  return readdirSync(logs).filter((f) => f.startsWith('desktop')).map((f) => readFileSync(join(logs, f), 'utf8')).join('');
}
async function connectorState() {
  const { body } = await api(bifrost, 'GET', '/connectors');
  return body.find((c) => c.id === connectorId)?.state;
}

// The tray: libayatana-appindicator exports its menu as com.canonical.dbusmenu on the session bus.
function dbus(dest, path, method, ...args) {
  const r = spawnSync('dbus-send', ['--session', '--print-reply', '--reply-timeout=1000', `--dest=${dest}`, path, method, ...args], { env, encoding: 'utf8', timeout: 5000 });
  return r.status === 0 ? r.stdout : null;
}
function findTrayMenus() {
  const names = (dbus('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus.ListNames') || '').match(/":[0-9.]+"/g) || [];
  const found = [];
  for (const q of names) {
    const name = q.slice(1, -1);
    const xml = dbus(name, '/org/ayatana/NotificationItem', 'org.freedesktop.DBus.Introspectable.Introspect');
    const node = xml && xml.match(/<node name="([^"]+)"/);
    if (node) found.push({ name, path: `/org/ayatana/NotificationItem/${node[1]}/Menu` });
  }
  return found;
}
const findTrayMenu = () => findTrayMenus()[0] || null;
function trayItems(tray) {
  const out = dbus(tray.name, tray.path, 'com.canonical.dbusmenu.GetLayout', 'int32:0', 'int32:-1', 'array:string:');
  const items = [];
  // Each item: its int32 id, then its properties, among them "label".
  const re = /int32 (\d+)\s+array \[([\s\S]*?)\]\s+array \[/g;
  let m;
  while ((m = re.exec(out || ''))) {
    const label = m[2].match(/string "label"\s+variant\s+string "([^"]*)"/);
    if (label) items.push({ id: Number(m[1]), label: label[1] });
  }
  return items;
}
function trayClick(tray, label) {
  const items = trayItems(tray);
  const item = items.find((i) => i.label === label);
  assert.ok(item, `tray item ${label} in ${JSON.stringify(items)}`);
  const r = dbus(tray.name, tray.path, 'com.canonical.dbusmenu.Event', `int32:${item.id}`, 'string:clicked', 'variant:int32:0', 'uint32:0');
  assert.ok(r !== null, `the tray did not take the click on ${label}`);
}

before(async () => {
  dir = tempDir();
  home = join(dir, 'agent-home');
  mkdirSync(home, { recursive: true });
  bifrost = await startBifrost(dir);
  writeFileSync(join(home, 'config.toml'), `relay = "${bifrost.url}"\nrelay_fingerprint = "${bifrost.fingerprint}"\n`);
  // The app's whole world lives in temp folders: agent home, HOME (autostart entry), XDG dirs.
  env = { ...process.env, MOVER_AGENT_HOME: home, HOME: join(dir, 'user'), XDG_CONFIG_HOME: join(dir, 'user/.config') };
  mkdirSync(env.XDG_CONFIG_HOME, { recursive: true });
  port = 4444 + Math.floor(Math.random() * 1000);
  driver = spawn(join(tools, 'tauri-driver'), ['--port', String(port), '--native-driver', '/usr/bin/WebKitWebDriver'], { env, stdio: 'ignore' });
  await waitFor('tauri-driver', async () => { try { await fetch(`http://127.0.0.1:${port}/status`); return true; } catch { return false; } });
  const s = await wd('POST', '/session', { capabilities: { alwaysMatch: { 'tauri:options': { application: app } } } });
  session = s.sessionId;
});

after(async () => {
  try { if (session) await wd('DELETE', `/session/${session}`); } catch { /* the app may have quit */ }
  driver?.kill();
  bifrost?.child.kill();
});

test('the window shows the key and online', async () => {
  const key = readFileSync(join(home, 'connector.key'), 'utf8').trim();
  await waitText('#key', (t) => t === key, 'the key in the window');
  await waitText('#status', (t) => t === 'online', 'online');
  const { body } = await api(bifrost, 'GET', '/connectors');
  assert.equal(body[0].state, 'waiting');
  const c = await api(bifrost, 'POST', '/connectors', { key, name: 'Desktop' });
  assert.equal(c.status, 201);
  connectorId = c.body.id;
  await waitText('#detail', (t) => t.includes('authorized as Desktop'), 'authorized');
  // WebKit paints under Xvfb a moment after the DOM changes.
  await sleep(1500);
  sh('import', ['-window', 'root', shot('desktop-window.png')]);
  // `agent status` reaches the app's runtime.
  const status = execFileSync(bin('agent'), ['status'], { env, encoding: 'utf8' });
  assert.match(status, /Mover Agent Status: online\nauthorized as Desktop/);
});

test('File > Copy Key puts the key on the clipboard', async () => {
  await menu('alt+f');
  sh('import', ['-window', 'root', shot('desktop-file-menu.png')]);
  await menu('Escape');
  const key = readFileSync(join(home, 'connector.key'), 'utf8').trim();
  await menuUntil(['alt+f', 'k'], async () => spawnSync('xclip', ['-o', '-selection', 'clipboard'], { env, encoding: 'utf8' }).stdout === key, 'the key on the clipboard');
  // One click, one action: a menu event handled twice would toggle Connect straight back.
  await sleep(500);
  assert.equal(appLog().split('connector key copied').length - 1, 1, 'Copy Key ran once');
});

test('File > Disconnect from Mover, then Connect to Mover', async () => {
  await menuUntil(['alt+f', 'd'], async () => (await text('#status')) === 'offline', 'offline in the window');
  await waitText('#detail', (t) => t.includes('disconnected by user'), 'the reason');
  await waitFor('Bifrost to list it offline', async () => (await connectorState()) === 'offline');
  // The item now reads "Connect to Mover": its mnemonic is C.
  await menuUntil(['alt+f', 'c'], async () => (await text('#status')) === 'online', 'online again');
  await waitFor('Bifrost to list it online', async () => (await connectorState()) === 'online');
});

test('File > Help and Help > About show the version agent -v prints', async () => {
  const version = execFileSync(bin('agent'), ['-v'], { encoding: 'utf8' }).split('\n')[1].split(' ')[0];
  const aboutShows = async () => (await wd('POST', `/session/${session}/execute/sync`, { script: 'return document.getElementById("about").open', args: [] })) === true;
  await menuUntil(['alt+f', 'h'], aboutShows, 'the About dialog from File > Help');
  assert.equal(await text('#about-version'), version);
  await menu('Escape');
  await waitFor('About to close', async () => !(await aboutShows()));
  await menuUntil(['alt+h', 'a'], aboutShows, 'the About dialog from Help > About');
  assert.equal(await text('#about-version'), version);
  sh('import', ['-window', 'root', shot('desktop-about.png')]);
  await menu('Escape');
});

test('editing the config file moves the app to another Bifrost', async () => {
  const other = await startBifrost(tempDir());
  try {
    writeFileSync(join(home, 'config.toml'), `relay = "${other.url}"\nrelay_fingerprint = "${other.fingerprint}"\n`);
    await waitFor('the other Bifrost to see the agent', async () => (await api(other, 'GET', '/connectors')).body.length === 1);
    await waitText('#relay', (t) => t === other.url, 'the new address in the window');
  } finally {
    writeFileSync(join(home, 'config.toml'), `relay = "${bifrost.url}"\nrelay_fingerprint = "${bifrost.fingerprint}"\n`);
    await waitFor('the agent back at the first Bifrost', async () => (await connectorState()) === 'online');
    other.child.kill();
  }
});

test('the tray menu follows the state and toggles the connection', async () => {
  const tray = await waitFor('the tray menu on the session bus', async () => findTrayMenu());
  await waitFor('the tray status line', async () => trayItems(tray).some((i) => i.label === 'Mover Agent: online (authorized as Desktop)'));
  trayClick(tray, 'Disconnect from Mover');
  await waitFor('Bifrost to list it offline', async () => (await connectorState()) === 'offline');
  await waitFor('the tray to offer Connect', async () => trayItems(tray).some((i) => i.label === 'Connect to Mover'));
  assert.ok(trayItems(tray).some((i) => i.label === 'Mover Agent: offline (disconnected by user)'));
  trayClick(tray, 'Connect to Mover');
  await waitFor('Bifrost to list it online', async () => (await connectorState()) === 'online');
  await waitFor('the tray to offer Disconnect', async () => trayItems(tray).some((i) => i.label === 'Disconnect from Mover'));
});

test('a second launch exits and leaves one agent connected', async () => {
  const second = spawnSync(app, [], { env, timeout: 20000 });
  assert.equal(second.status, 0, 'the second instance handed over and exited');
  await sleep(500);
  assert.equal(await connectorState(), 'online');
  const { body } = await api(bifrost, 'GET', '/connectors');
  assert.equal(body.length, 1);
});

test('the tray menu disconnects and quits', async () => {
  const tray = await waitFor('the tray menu on the session bus', async () => findTrayMenu());
  trayClick(tray, 'Disconnect from Mover');
  await waitFor('Bifrost to list it offline', async () => (await connectorState()) === 'offline');
  await waitFor('the tray to offer Connect', async () => trayItems(tray).some((i) => i.label === 'Connect to Mover'));
  trayClick(tray, 'Quit');
  await waitFor('the app to quit', async () => spawnSync('xdotool', ['search', '--name', '^Mover Agent$'], { env }).status !== 0);
  const out = spawnSync(bin('agent'), ['status'], { env, encoding: 'utf8' });
  assert.match(out.stdout, /Mover Agent is not running/);
  session = null;
});
