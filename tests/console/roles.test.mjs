// Roles in the console: an operator, a viewer, an admin reading the audit trail, and a
// metrics account, each signed in through the form against a real Bifrost and agent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBifrost, startAgent, addUser, api, launch, newPage, waitFor, tempDir, screenshots, signIn, signInAs, pageApi, controls } from './harness.mjs';

let dir, share, bifrost, agent, browser, connectorId, destId;
const users = {}; // role -> { name, password, page }
const jobs = {}; // 'small' (finished) and 'big' (paused by the operator) -> job id
const started = Date.now();

// What every signed-in page offers whatever the role: none of it changes anything.
const CHROME = ['Skip to content', 'Bifrost', 'Connectors', 'Destinations', 'Transfers', 'Sign out'];
// A job page's report: its file filters and the CSV.
const REPORT = ['All', 'Copied', 'Failed', 'Skipped', 'Pending', 'Deleted at source', 'Download report (CSV)'];

before(async () => {
  dir = tempDir();
  share = join(dir, 'share');
  mkdirSync(share, { recursive: true });
  writeFileSync(join(share, 'small.txt'), 'small');
  // Read at the lowest bandwidth limit (64 KiB/s) this takes a minute: long enough to pause.
  writeFileSync(join(share, 'big.bin'), Buffer.alloc(4 * 1024 * 1024, 7));
  mkdirSync(screenshots, { recursive: true });
  bifrost = await startBifrost(dir);
  agent = await startAgent(join(dir, 'home'), bifrost, share);
  // The agent waits for authorization once it has reached Bifrost; until then its key is unknown (404).
  await waitFor('the agent to wait for authorization', async () =>
    (await api(bifrost, 'POST', '/connectors', { key: agent.key, name: 'Finance server' })).status === 201);
  const online = await waitFor('the connector online', async () => (await api(bifrost, 'GET', '/connectors')).body.find((c) => c.state === 'online'));
  connectorId = online.id;
  const dest = await api(bifrost, 'POST', '/destinations', {
    kind: 's3', name: 'Archive', bucket: 'archive', endpoint: 'http://127.0.0.1:9', access_key_id: 'AKIDEXAMPLE', secret_access_key: 'not-a-real-secret',
  });
  assert.equal(dest.status, 201, JSON.stringify(dest.body));
  destId = dest.body.id;
  for (const [role, name] of [['operator', 'olga'], ['viewer', 'victor'], ['metrics', 'mia']]) {
    users[role] = { name, password: addUser(bifrost, name, role) };
  }
  browser = await launch();
});

after(async () => {
  // The paused job would otherwise hold the agent's file open until Bifrost stops.
  if (jobs.big) await api(bifrost, 'POST', `/jobs/${jobs.big}/cancel`);
  await browser?.close();
  agent?.child.kill();
  bifrost?.child.kill();
  console.log(`role tests took ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

const jobState = async (id) => (await api(bifrost, 'GET', `/jobs/${id}`)).body.state;
const navLinks = (page) => page.getByRole('navigation', { name: 'Main' }).getByRole('link').allInnerTexts();

// Every control on the page is one of `allowed`: nothing there changes anything.
async function onlyControls(page, allowed, where) {
  const names = await controls(page);
  const extra = names.filter((n) => !allowed.includes(n));
  assert.deepEqual(extra, [], `${where}: controls beyond the allow-list (all: ${JSON.stringify(names)})`);
}

test('an operator controls connectors and jobs, but not destinations or the audit trail', async () => {
  const op = users.operator;
  const page = op.page = await newPage(browser);
  op.password = await signInAs(page, bifrost, op.name, op.password);
  await page.getByRole('heading', { name: 'Connectors' }).waitFor();
  await page.getByRole('button', { name: 'Authorize New Connector' }).waitFor();
  const row = page.locator('#connectors tr', { hasText: 'Finance server' });
  for (const name of ['Browse', 'Rename', 'Revoke']) await row.getByRole(name === 'Browse' ? 'link' : 'button', { name }).waitFor();
  assert.deepEqual(await navLinks(page), ['Connectors', 'Destinations', 'Transfers', 'New transfer']);
  assert.equal((await page.locator('#who').textContent()).replace(/\s+/g, ' '), 'olga operator');

  // Jobs started from the operator's own session carry the operator's name.
  const small = await pageApi(page, 'POST', '/jobs', { connector: connectorId, sources: [join(share, 'small.txt')], destination: { kind: 'folder', path: join(dir, 'out-small') } });
  assert.equal(small.status, 201, JSON.stringify(small.body));
  jobs.small = small.body.id;
  assert.equal(small.body.started_by, op.name);
  const big = await pageApi(page, 'POST', '/jobs', {
    connector: connectorId, sources: [join(share, 'big.bin')], destination: { kind: 'folder', path: join(dir, 'out-big') }, bandwidth_limit: 65536,
  });
  assert.equal(big.status, 201, JSON.stringify(big.body));
  jobs.big = big.body.id;
  await waitFor('the small job to finish', async () => (await jobState(jobs.small)) === 'completed');

  await page.goto(`${bifrost.url}/#/jobs/${jobs.big}`);
  await page.locator('#started-by', { hasText: `Started by ${op.name}` }).waitFor();
  await page.getByRole('button', { name: 'Cancel', exact: true }).waitFor();
  await page.getByRole('button', { name: 'Pause' }).click();
  await page.getByRole('button', { name: 'Resume' }).waitFor();
  assert.equal(await jobState(jobs.big), 'paused');

  await page.goto(`${bifrost.url}/#/jobs/${jobs.small}`);
  await page.getByRole('button', { name: 'Rerun (new and changed files)' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Pause' }).count(), 0);

  // Operators test destinations; only admins add, edit or delete them.
  await page.getByRole('link', { name: 'Destinations' }).click();
  const dest = page.locator('#destinations tr', { hasText: 'Archive' });
  await dest.getByRole('button', { name: 'Test' }).waitFor();
  for (const name of ['New destination', 'Edit', 'Delete']) assert.equal(await page.getByRole('link', { name, exact: true }).or(page.getByRole('button', { name, exact: true })).count(), 0, name);
  // Typed addresses of admin pages explain themselves rather than failing.
  for (const hash of ['#/destinations/new', `#/destinations/${destId}`, '#/audit']) {
    await page.goto(`${bifrost.url}/${hash}`);
    await page.getByRole('heading', { name: 'Not for your role' }).waitFor();
    await page.getByText('olga has the operator role; this page needs the admin role').waitFor();
  }
  assert.deepEqual(page.errors, []);
});

test('a viewer sees nothing that changes anything, and forced calls are refused', async () => {
  const v = users.viewer;
  const page = v.page = await newPage(browser);
  v.password = await signInAs(page, bifrost, v.name, v.password);
  await page.locator('#connectors tr', { hasText: 'Finance server' }).getByText('online').waitFor();
  assert.deepEqual(await navLinks(page), ['Connectors', 'Destinations', 'Transfers']);
  await onlyControls(page, CHROME, 'Connectors');
  assert.equal(await page.locator('#connectors th', { hasText: 'Actions' }).count(), 0);

  await page.getByRole('link', { name: 'Transfers' }).click();
  await page.locator('#jobs tbody tr').nth(1).waitFor();
  await page.locator('#jobs tr', { hasText: 'big.bin' }).getByRole('cell', { name: users.operator.name }).waitFor();
  await onlyControls(page, [...CHROME, 'big.bin', 'small.txt'], 'Transfers');

  await page.getByRole('link', { name: 'big.bin' }).click();
  await page.locator('#started-by', { hasText: `Started by ${users.operator.name}` }).waitFor();
  await page.locator('.badge.paused').first().waitFor();
  await page.getByRole('link', { name: 'Download report (CSV)' }).waitFor();
  await onlyControls(page, [...CHROME, ...REPORT], 'a paused job');
  await page.screenshot({ path: join(screenshots, 'viewer-job.png'), fullPage: true });

  await page.goto(`${bifrost.url}/#/jobs/${jobs.small}`);
  await page.locator('.badge.completed').first().waitFor();
  await page.getByRole('link', { name: 'Download report (CSV)' }).waitFor();
  await onlyControls(page, [...CHROME, ...REPORT], 'a finished job');

  await page.getByRole('link', { name: 'Destinations' }).click();
  await page.locator('#destinations tr', { hasText: 'Archive' }).waitFor();
  await onlyControls(page, CHROME, 'Destinations');

  await page.goto(`${bifrost.url}/#/new-job`);
  await page.getByText('victor has the viewer role; this page needs the operator role').waitFor();

  // What the console leaves out, the API refuses: calls forced from the viewer's own page.
  page.expectStatus = 403;
  const forced = [
    await pageApi(page, 'POST', `/jobs/${jobs.big}/cancel`),
    await pageApi(page, 'POST', `/jobs/${jobs.big}/resume`),
    await pageApi(page, 'DELETE', `/connectors/${connectorId}`),
    await pageApi(page, 'POST', '/destinations', { kind: 's3', name: 'Sneaky', bucket: 'sneaky', access_key_id: 'x', secret_access_key: 'y' }),
    await pageApi(page, 'DELETE', `/destinations/${destId}`),
  ];
  page.expectStatus = null;
  for (const r of forced) {
    assert.equal(r.status, 403, JSON.stringify(r.body));
    assert.match(r.body.error, /^victor has the viewer role; this needs (operator|admin)/);
  }
  assert.equal(await jobState(jobs.big), 'paused');
  assert.ok((await api(bifrost, 'GET', '/connectors')).body.some((c) => c.id === connectorId && c.state === 'online'));
  assert.deepEqual((await api(bifrost, 'GET', '/destinations')).body.map((d) => d.name), ['Archive']);
  assert.deepEqual(page.errors, []);
});

test('an admin reads the audit trail, filters it, pages it and downloads it', async () => {
  const page = await newPage(browser);
  await signIn(page, bifrost);
  assert.deepEqual(await navLinks(page), ['Connectors', 'Destinations', 'Transfers', 'New transfer', 'Audit']);
  await page.getByRole('link', { name: 'Audit' }).click();
  await page.getByRole('heading', { name: 'Audit' }).waitFor();
  const rows = page.locator('#audit tbody tr');
  const row = (...texts) => texts.reduce((l, t) => l.filter({ hasText: t }), rows);
  await row(users.operator.name, 'sign_in', '127.0.0.1').first().waitFor();
  await row(users.operator.name, 'job.pause', jobs.big, '127.0.0.1').waitFor();
  await row(users.operator.name, 'job.create', jobs.big).waitFor();
  await row(users.operator.name, 'password.change').waitFor();
  await row(users.viewer.name, 'sign_in', 'viewer').first().waitFor();
  const seqs = (await rows.evaluateAll((trs) => trs.map((tr) => Number(tr.dataset.seq))));
  assert.deepEqual(seqs, [...seqs].sort((a, b) => b - a), 'newest first');
  await page.screenshot({ path: join(screenshots, 'audit.png'), fullPage: true });

  // By actor, then also by action family: the address, the table and the CSV link follow.
  await page.getByLabel('Who').fill(users.operator.name);
  await page.getByRole('button', { name: 'Apply' }).click();
  await waitFor('the actor filter', async () => (await rows.allInnerTexts()).length > 0 && (await rows.evaluateAll((trs, name) => trs.every((tr) => tr.cells[1].textContent === name), users.operator.name)) && page.url().includes(`actor=${users.operator.name}`));
  await page.getByLabel('Action').selectOption('job.');
  await page.getByRole('button', { name: 'Apply' }).click();
  // The table is redrawn after the address changes: wait for the filtered rows, not the old ones.
  const actionsShown = () => rows.evaluateAll((trs) => trs.map((tr) => tr.cells[4].textContent));
  await waitFor('the action filter', async () => page.url().includes('action=job.') && (await actionsShown()).length > 0 && (await actionsShown()).every((a) => a.startsWith('job.')));
  await row('job.pause').waitFor();
  const actions = await actionsShown();
  assert.ok(actions.length >= 3 && actions.every((a) => a.startsWith('job.')), actions.join());
  const href = new URL(await page.getByRole('link', { name: 'Download CSV' }).getAttribute('href'), bifrost.url);
  assert.equal(href.pathname, '/api/v1/audit.csv');
  assert.equal(href.searchParams.get('actor'), 'olga');
  assert.equal(href.searchParams.get('action'), 'job.');
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download CSV' }).click()]);
  const csv = readFileSync(await download.path(), 'utf8').trim().split('\r\n');
  assert.equal(csv[0], 'seq,at,actor,role,addr,action,target,detail');
  assert.equal(csv.length - 1, actions.length, csv.join('\n'));
  // Every field but seq is quoted (report.rs's csv_field, which also defuses formulas).
  assert.ok(csv.slice(1).every((l) => /^\d+,"[^"]+","olga","operator","127\.0\.0\.1","job\./.test(l)), csv.join('\n'));

  // One row a page: Older brings the next, older one.
  await page.goto(`${bifrost.url}/#/audit?actor=olga&limit=1`);
  await waitFor('one row', async () => (await rows.count()) === 1);
  const first = Number(await rows.first().getAttribute('data-seq'));
  await page.getByRole('button', { name: 'Older' }).click();
  await waitFor('two rows', async () => (await rows.count()) === 2);
  assert.ok(Number(await rows.nth(1).getAttribute('data-seq')) < first);

  // A day before anything happened matches nothing.
  await page.goto(`${bifrost.url}/#/audit?until=2020-01-01`);
  await page.getByText('No rows match these filters.').waitFor();
  assert.equal(await rows.count(), 0);
  assert.deepEqual(page.errors, []);
});

test('a metrics account gets a one-line page and can sign out', async () => {
  const m = users.metrics;
  const page = await newPage(browser);
  await signInAs(page, bifrost, m.name, m.password);
  await page.getByRole('heading', { name: 'Metrics account' }).waitFor();
  await page.getByText('This account can only read /metrics').waitFor();
  assert.equal(await page.getByRole('navigation', { name: 'Main' }).isVisible(), false);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in to Bifrost' }).waitFor();
  assert.deepEqual(page.errors, []);
});
