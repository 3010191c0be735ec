// The console's object-storage destinations in a real browser: a real Bifrost, a real agent and
// a real moto S3 server that checks signatures against an IAM user made for the test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBifrost, startAgent, startMoto, signIn, api, launch, newPage, waitFor, tempDir, screenshots } from './harness.mjs';

let dir, bifrost, agent, moto, keys, browser, page, share, destId;
const started = Date.now();

before(async () => {
  dir = tempDir();
  share = join(dir, 'share');
  for (const [rel, text] of [
    ['Finance/2026/Q1/report.txt', 'first quarter'],
    ['Finance/2026/summary.txt', 'summary'],
    ['Finance/readme.txt', 'finance readme'],
  ]) {
    mkdirSync(join(share, rel, '..'), { recursive: true });
    writeFileSync(join(share, rel), text);
  }
  mkdirSync(screenshots, { recursive: true });
  moto = await startMoto();
  await moto.createBucket('archive');
  // Already in the bucket before any transfer: the wizard's prefix browser must show it.
  await moto.putObject('archive', 'mover/migration/existing.txt', 'already here');
  keys = await moto.iamUser();
  await moto.enableAuth();
  bifrost = await startBifrost(dir);
  agent = await startAgent(join(dir, 'home'), bifrost, share);
  // The agent waits for authorization once it has reached Bifrost; until then its key is unknown (404).
  await waitFor('the agent to wait for authorization', async () =>
    (await api(bifrost, 'POST', '/connectors', { key: agent.key, name: 'Finance server' })).status === 201);
  await waitFor('the connector online', async () => (await api(bifrost, 'GET', '/connectors')).body.some((c) => c.state === 'online'));
  browser = await launch();
  page = await newPage(browser);
  await signIn(page, bifrost);
});

after(async () => {
  await browser?.close();
  agent?.child.kill();
  bifrost?.child.kill();
  moto?.child.kill();
  console.log(`destination browser tests took ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

function noErrors() {
  assert.deepEqual(page.errors, [], 'the browser console stayed clean');
}

const row = () => page.locator('#destinations tbody tr[data-id]', { hasText: 'archive' });

async function testAndSee(result) {
  await row().getByRole('button', { name: 'Test' }).click();
  await row().locator('.test-result .badge', { hasText: result }).waitFor({ timeout: 20000 });
}

async function editSecret(secret) {
  await row().getByRole('link', { name: 'Edit' }).click();
  await page.getByRole('heading', { name: /^Edit / }).waitFor();
  assert.equal(await page.getByLabel('Secret access key').inputValue(), '', 'a stored secret is never shown');
  assert.equal(await page.getByLabel('Access key ID').inputValue(), '');
  if (secret !== null) await page.getByLabel('Secret access key').fill(secret);
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByRole('heading', { name: 'Destinations' }).waitFor();
}

test('create an S3 destination, see it listed, and Test it', async () => {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Destinations' }).click();
  await page.getByRole('heading', { name: 'Destinations' }).waitFor();
  await page.getByText('No destinations yet.').waitFor();
  await page.getByRole('link', { name: 'New destination' }).click();
  await page.getByRole('heading', { name: 'New destination' }).waitFor();
  assert.ok(await page.getByRole('radio', { name: 'Amazon S3 or S3-compatible' }).isChecked());
  await page.getByLabel('Name', { exact: true }).fill('Archive');
  await page.getByLabel('Bucket', { exact: true }).fill('archive');
  await page.getByLabel('Prefix', { exact: true }).fill('mover');
  await page.getByLabel('Endpoint', { exact: true }).fill(moto.endpoint);
  await page.getByLabel('Region').fill('us-east-1');
  assert.ok(await page.getByLabel(/Path-style addressing/).isChecked(), 'path-style follows a given endpoint');
  await page.getByLabel('Access key ID').fill(keys.id);
  await page.getByLabel('Secret access key').fill(keys.secret);
  assert.equal(await page.getByLabel('Secret access key').getAttribute('type'), 'password');
  await page.screenshot({ path: join(screenshots, 'destination-new.png'), fullPage: true });
  await page.getByRole('button', { name: 'Add destination' }).click();
  await page.getByRole('heading', { name: 'Destinations' }).waitFor();
  const r = row();
  await r.getByRole('cell', { name: 'Archive', exact: true }).waitFor();
  await r.getByRole('cell', { name: 'S3', exact: true }).waitFor();
  await r.getByRole('cell', { name: 'mover', exact: true }).waitFor();
  await r.getByRole('cell', { name: moto.endpoint, exact: true }).waitFor();
  destId = await r.getAttribute('data-id');
  await testAndSee('ok');
  await page.screenshot({ path: join(screenshots, 'destinations.png') });
  // A narrow window scrolls the table, not the page.
  const narrow = await newPage(browser, { width: 390, height: 800 });
  await signIn(narrow, bifrost);
  await narrow.goto(bifrost.url + '/#/destinations');
  await narrow.locator('#destinations').getByText('Archive', { exact: true }).waitFor();
  const overflow = await narrow.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than a narrow window`);
  assert.deepEqual(narrow.errors, []);
  await narrow.context().close();
  const { body } = await api(bifrost, 'GET', '/destinations');
  assert.equal(body.length, 1);
  assert.ok(!JSON.stringify(body).includes(keys.secret), 'the API never returns the secret');
  noErrors();
});

test('a wrong secret fails Test with the service\u2019s answer; a blank secret keeps the stored one', async () => {
  await editSecret('not-the-secret-key');
  await testAndSee('failed');
  const shown = await page.locator(`tr.detail[data-for="${destId}"]`).textContent();
  assert.match(shown, /list failed/, shown);
  await page.screenshot({ path: join(screenshots, 'destination-test-failed.png') });
  await editSecret(keys.secret);
  await testAndSee('ok');
  // Rename with the secret fields left blank: the stored secret still works.
  await row().getByRole('link', { name: 'Edit' }).click();
  await page.getByText('leave blank to keep it').first().waitFor();
  await page.screenshot({ path: join(screenshots, 'destination-edit.png'), fullPage: true });
  await page.getByLabel('Name', { exact: true }).fill('Archive bucket');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await row().getByRole('cell', { name: 'Archive bucket', exact: true }).waitFor();
  await testAndSee('ok');
  noErrors();
});

async function wizardTo(step) {
  await page.locator('.steps li[aria-current="step"]', { hasText: step }).waitFor();
}

test('a transfer into the stored destination, its path chosen in the prefix browser', async () => {
  await page.getByRole('link', { name: 'New transfer' }).first().click();
  await wizardTo('Source');
  await page.getByRole('radio', { name: /Finance server/ }).check();
  await page.getByRole('button', { name: 'Next' }).click();
  await wizardTo('Choose');
  await page.getByRole('button', { name: share }).click();
  await page.getByRole('checkbox', { name: 'Select Finance' }).check();
  await page.getByRole('button', { name: 'Next' }).click();
  await wizardTo('Destination');
  await page.getByRole('radio', { name: /Object storage/ }).check();
  const chosen = await page.getByLabel('Stored destination').locator('option:checked').textContent();
  assert.match(chosen, /^Archive bucket \(S3: archive\/mover\)$/);
  const objects = page.locator('#prefix-browser');
  await objects.getByRole('button', { name: 'migration', exact: true }).click();
  await objects.getByRole('cell', { name: 'existing.txt', exact: true }).waitFor();
  await objects.getByRole('cell', { name: '12 B', exact: true }).waitFor();
  assert.equal(await page.getByLabel('Path inside it').inputValue(), 'migration');
  await page.locator('#landing', { hasText: 'archive/mover/migration/' }).waitFor();
  await page.screenshot({ path: join(screenshots, 'wizard-destination.png'), fullPage: true });
  await page.getByRole('button', { name: 'Next' }).click();
  await wizardTo('Options');
  await page.getByRole('button', { name: 'Next' }).click();
  await wizardTo('Review');
  await page.locator('#review-landing', { hasText: 'archive/mover/migration/' }).waitFor();
  await page.locator('#review', { hasText: '3 files' }).waitFor();
  await page.getByRole('button', { name: 'Start transfer' }).click();
  await page.getByRole('heading', { name: /^Transfer / }).waitFor();
  const jobId = decodeURIComponent(new URL(page.url()).hash.split('/').pop());
  const done = ['completed', 'completed_with_errors', 'failed', 'cancelled'];
  const job = await waitFor('the transfer to finish', async () => {
    const { body: j } = await api(bifrost, 'GET', `/jobs/${jobId}`);
    return done.includes(j.state) ? j : null;
  }, 60000);
  await page.locator(`.badge.${job.state}`).first().waitFor();
  await page.screenshot({ path: join(screenshots, 'job-objects.png'), fullPage: true });
  if (job.state !== 'completed') {
    const { body: report } = await api(bifrost, 'GET', `/jobs/${jobId}/files`);
    assert.fail(`the transfer ended ${job.state} (${job.reason || 'no reason'}): ${JSON.stringify(report.files.map((f) => [f.destination, f.status, f.reason]))}`);
  }
  await page.locator('.badge.completed').first().waitFor();
  await page.getByRole('columnheader', { name: 'Object key in archive' }).waitFor();
  const files = page.locator('#files');
  await files.getByRole('cell', { name: 'mover/migration/Finance/2026/Q1/report.txt', exact: true }).waitFor();
  await files.getByRole('cell', { name: 'mover/migration/Finance/readme.txt', exact: true }).waitFor();
  // The table follows the job to its end: every line copied, none left pending.
  await waitFor('the report to show every file copied', async () =>
    (await files.locator('.badge.copied').count()) === 3 && (await files.locator('.badge.pending').count()) === 0 ? true : null, 15000);
  await page.screenshot({ path: join(screenshots, 'job-objects.png'), fullPage: true });
  await page.locator('p', { hasText: 'into Archive bucket (S3): archive/mover/migration/' }).waitFor();
  // What landed, read back through Bifrost's own browse of the bucket.
  const { body } = await api(bifrost, 'GET', `/destinations/${destId}/browse?prefix=migration/Finance/2026/Q1`);
  assert.deepEqual(body.objects.map((o) => [o.key, o.size]), [['migration/Finance/2026/Q1/report.txt', 13]]);
  noErrors();
});

test('delete the destination, with a confirmation', async () => {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Destinations' }).click();
  await row().getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('dialog').getByText('Objects already copied stay').waitFor();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  await page.getByText('No destinations yet.').waitFor();
  const { body } = await api(bifrost, 'GET', '/destinations');
  assert.deepEqual(body, []);
  noErrors();
});

test('an Azure Blob destination: its own form, a refused field, and a Test that cannot connect', async () => {
  await page.getByRole('link', { name: 'New destination' }).click();
  await page.getByRole('radio', { name: 'Azure Blob Storage' }).check();
  await page.getByLabel('Name', { exact: true }).fill('Blob archive');
  await page.getByLabel('Storage account').fill('devstoreaccount1');
  await page.getByLabel('Container').fill('migration');
  // Nothing listens on port 9 of this machine.
  await page.getByLabel('Endpoint', { exact: true }).fill('http://127.0.0.1:9/devstoreaccount1');
  await page.getByLabel('Account key').fill('not base64!');
  page.expectStatus = 400;
  await page.getByRole('button', { name: 'Add destination' }).click();
  await page.locator('#destination-error', { hasText: 'not base64' }).waitFor();
  page.expectStatus = null;
  await page.getByLabel('Account key').fill('RmFrZSBrZXkgZm9yIGEgdGVzdA==');
  await page.getByRole('button', { name: 'Add destination' }).click();
  const blob = page.locator('#destinations tbody tr[data-id]', { hasText: 'Blob archive' });
  await blob.getByRole('cell', { name: 'Azure Blob', exact: true }).waitFor();
  await blob.getByRole('cell', { name: 'devstoreaccount1/migration', exact: true }).waitFor();
  await blob.getByRole('button', { name: 'Test' }).click();
  await blob.locator('.test-result .badge', { hasText: 'failed' }).waitFor({ timeout: 30000 });
  const id = await blob.getAttribute('data-id');
  const shown = await page.locator(`tr.detail[data-for="${id}"]`).textContent();
  assert.match(shown, /^list failed: /, shown);
  const { body } = await api(bifrost, 'GET', `/destinations/${id}`);
  assert.equal(body.kind, 'azure_blob');
  assert.equal(body.endpoint, 'http://127.0.0.1:9/devstoreaccount1');
  assert.equal((await api(bifrost, 'DELETE', `/destinations/${id}`)).status, 204);
  noErrors();
});
