// test_demo.mjs — the demo page at `/`, as someone who ran `make run` uses it in a browser: it
// subscribes by itself, publishes with the token from its URL, and shows what arrives, named
// events included; a refused publish shows the hub's error.
//
// Debian's Chromium (headless, through playwright-core) loads the page from the real hub. Steps,
// each with a bounded wait:
//   1. the page says "subscribed";
//   2. Publish with the default topic: the answer's id appears, and the update is in the log;
//   3. Publish with a type: the update arrives as that named event and is in the log;
//   4. a type entered under Subscribe: an update of that type published from outside is shown;
//   5. a publish with a bad token shows 401 and the hub's reason.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  exitWithin, freePort, killAll, launchChromium, publish, sanitizerReports, startHub, token, waitFor,
} from './lib.mjs';

const KEY = `demo-${Math.random().toString(36).slice(2)}-${Date.now()}-0123456789abcdef`;

const text = (page, sel) => page.locator(sel).innerText();

async function logHas(page, needle, what) {
  return waitFor(async () => (await text(page, '#log')).includes(needle), 10000, what, 50);
}

async function publishFromPage(page, data, type) {
  await page.fill('#pub-data', data);
  await page.fill('#pub-type', type);
  const before = await text(page, '#pub-result');
  await page.click('#pub-btn');
  const result = await waitFor(async () => {
    const t = await text(page, '#pub-result');
    return t !== before && t !== '' ? t : null;
  }, 10000, `the answer to publishing ${data}`, 50);
  return result;
}

test('the demo page subscribes, publishes and shows what arrives', { timeout: 120000 }, async () => {
  const port = await freePort();
  const jwt = token(KEY, '--publish', '*');
  try {
    const hub = await startHub(port, ['--jwt-key', KEY, '--anonymous', '--workers', '1']);
    const browser = await launchChromium();
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${port}/#jwt=${jwt}`);

    await waitFor(async () => (await text(page, '#status')) === 'subscribed', 15000,
      'the page to say "subscribed"', 50);
    assert.equal(await page.inputValue('#pub-jwt'), jwt, 'the token in the URL fills the form');

    const plain = `plain-${Date.now()}`;
    const r1 = await publishFromPage(page, plain, '');
    const m1 = /^published (urn:uuid:[0-9a-f-]{36})$/.exec(r1);
    assert.ok(m1, `Publish answers with the update's id: ${r1}`);
    await logHas(page, `[${m1[1]}] ${plain}`, 'the published update in the log, with its id');

    const named = `named-${Date.now()}`;
    const r2 = await publishFromPage(page, named, 'greeting');
    const m2 = /^published (\S+)$/.exec(r2);
    assert.ok(m2, `a typed publish is answered with its id: ${r2}`);
    await logHas(page, `greeting [${m2[1]}] ${named}`, 'the typed update in the log as "greeting"');

    // A type entered under Subscribe, for updates someone else publishes.
    await page.fill('#sub-types', 'alert');
    await page.click('#sub-btn');
    await waitFor(async () => (await text(page, '#status')) === 'subscribed', 15000,
      'the page to subscribe again', 50);
    const outside = `outside-${Date.now()}`;
    const id = await publish(port, jwt, 'demo', outside, { type: 'alert', id: `alert-${Date.now()}` });
    await logHas(page, `alert [${id}] ${outside}`, 'the "alert" update from outside');

    await page.fill('#pub-jwt', 'not-a-token');
    const r3 = await publishFromPage(page, 'refused', '');
    assert.match(r3, /^401: \S/, `a bad token shows 401 and a reason: ${r3}`);
    assert.equal(await page.getAttribute('#pub-result', 'class'), 'err', 'shown as an error');
    await browser.close();
    hub.proc.kill('SIGTERM');
    const exit = await exitWithin(hub, 15000);
    assert.deepEqual(exit, { code: 0, signal: null }, `the hub exits 0 after SIGTERM: ${hub.log()}`);
    assert.deepEqual(sanitizerReports(hub), [], `the sanitizers found nothing: ${hub.log()}`);
  } finally {
    await killAll();
  }
});
