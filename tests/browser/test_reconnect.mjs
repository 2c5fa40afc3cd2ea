// test_reconnect.mjs — a browser's EventSource across a hub restart: told to go by the drain, it
// comes back by itself to the new process on the same port and keeps receiving.
//
// Debian's Chromium (headless, through playwright-core) loads a page served at the hub's own
// origin (Playwright answers that one URL; the EventSource goes to the real hub) that subscribes
// with `new EventSource(...)` and records every event. Steps, each with a bounded wait:
//   1. hub A (--reconnect-spread 1): three updates arrive;
//   2. SIGTERM A: the page gets `event: close` with data server_shutdown (a listener for "close"),
//      then an error with readyState CONNECTING (reconnecting, not given up); A exits 0;
//   3. hub B on the same port;
//   4. the EventSource reconnects by itself, sending Last-Event-ID = the last update's id, no
//      sooner than the `retry:` the close frame carried;
//   5. three updates published to B arrive; nothing is duplicated.
// Steps 3 and 4 are separate so that, once history survives a restart, an update published
// between them (and replayed by Last-Event-ID) is one more publish and one more expectation.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  exitWithin, freePort, killAll, launchChromium, publish, sanitizerReports, sleep, startHub, token,
  waitFor,
} from './lib.mjs';

const KEY = `browser-${Math.random().toString(36).slice(2)}-${Date.now()}-0123456789abcdef`;
const SPREAD_S = 1;
const TOPIC = `https://example.com/browser/${Date.now()}`;
const PAGE = `<!doctype html>
<meta charset="utf-8"><title>sluice reconnect test</title>
<script>
  window.sseLog = [];
  const note = (e) => window.sseLog.push(Object.assign({ at: Date.now() }, e));
  const topic = new URLSearchParams(location.search).get('topic');
  const es = new EventSource('/.well-known/mercure?topic=' + encodeURIComponent(topic));
  es.onopen = () => note({ type: 'open' });
  es.onmessage = (e) => note({ type: 'message', data: e.data, id: e.lastEventId });
  es.addEventListener('close', (e) => note({ type: 'close', data: e.data, id: e.lastEventId }));
  es.onerror = () => note({ type: 'error', readyState: es.readyState });
</script>
<p>EventSource on the hub; events are recorded in window.sseLog.</p>`;

const HUB_ARGS = ['--jwt-key', KEY, '--anonymous', '--workers', '1',
  '--reconnect-spread', String(SPREAD_S)];

test('EventSource reconnects to a restarted hub after the drain', { timeout: 120000 }, async () => {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const jwt = token(KEY, '--publish', '*');
  let hubA;
  let hubB;
  try {
    hubA = await startHub(port, HUB_ARGS);
    const browser = await launchChromium();
    const page = await browser.newPage();
    // Every subscription request the page makes: when, and the headers as sent on the wire
    // (from the DevTools protocol: Playwright's request headers leave out Last-Event-ID).
    const streamRequests = [];
    const streamBodies = []; // bodies of subscription responses that ended
    const cdp = await page.context().newCDPSession(page);
    const byId = new Map();
    cdp.on('Network.requestWillBeSent', (e) => {
      if (!e.request.url.includes('/.well-known/mercure')) return;
      const r = { at: Date.now(), headers: {} };
      byId.set(e.requestId, r);
      streamRequests.push(r);
    });
    cdp.on('Network.requestWillBeSentExtraInfo', (e) => {
      const r = byId.get(e.requestId);
      if (r)
        for (const [k, v] of Object.entries(e.headers)) r.headers[k.toLowerCase()] = v;
    });
    await cdp.send('Network.enable');
    page.on('requestfinished', async (req) => {
      if (!req.url().includes('/.well-known/mercure')) return;
      const res = await req.response();
      try {
        streamBodies.push((await res.body()).toString('utf8'));
      } catch (e) {
        streamBodies.push(`<body unavailable: ${e.message}>`);
      }
    });
    await page.route(`${origin}/reconnect-test.html*`,
      (route) => route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: PAGE }));
    await page.goto(`${origin}/reconnect-test.html?topic=${encodeURIComponent(TOPIC)}`);
    const log = () => page.evaluate(() => window.sseLog);
    const count = async (type) => (await log()).filter((e) => e.type === type).length;

    // 1. Three updates on hub A.
    await waitFor(async () => (await count('open')) === 1, 10000, 'the first open');
    const before = [];
    for (let i = 1; i <= 3; i++)
      before.push({ data: `before-${i}`, id: await publish(port, jwt, TOPIC, `before-${i}`) });
    await waitFor(async () => (await count('message')) === 3, 10000, 'three updates from hub A');

    // 2. Drain A.
    hubA.proc.kill('SIGTERM');
    await waitFor(async () => (await count('close')) === 1, 10000, 'the close event');
    const exitA = await exitWithin(hubA, 15000);
    assert.deepEqual(exitA, { code: 0, signal: null }, `hub A exits 0 after SIGTERM: ${hubA.log()}`);
    assert.deepEqual(sanitizerReports(hubA), [], `hub A: the sanitizers found nothing: ${hubA.log()}`);
    await waitFor(async () => (await count('error')) >= 1, 5000, 'the error after the close');
    const drained = await log();
    const closeEv = drained.find((e) => e.type === 'close');
    const closeAt = closeEv.at;
    assert.equal(closeEv.data, 'server_shutdown', 'the close event carries server_shutdown');
    assert.deepEqual(drained.filter((e) => e.type === 'message').map((e) => [e.data, e.id]),
      before.map((u) => [u.data, u.id]), 'hub A delivered the three updates, with their ids');
    assert.ok(drained.findIndex((e) => e.type === 'close') >
      drained.findLastIndex((e) => e.type === 'message'), 'the close event follows the updates');
    const firstError = drained.find((e) => e.type === 'error' && e.at >= closeAt);
    assert.equal(firstError?.readyState, 0, 'after the close the EventSource is CONNECTING, not CLOSED');

    // The ended response: its last frame is the close event, with the retry the browser obeys.
    await waitFor(() => streamBodies.length >= 1, 5000, 'the first stream response to finish');
    const retry = /retry: (\d+)\nevent: close\ndata: server_shutdown\n\n$/.exec(streamBodies[0]);
    assert.ok(retry, `the first stream ends with the close frame: ${JSON.stringify(streamBodies[0].slice(-200))}`);
    const retryMs = Number(retry[1]);
    assert.ok(retryMs >= 0 && retryMs <= SPREAD_S * 1000, `retry ${retryMs} ms is within the spread`);

    // 3. Hub B on the same port.
    hubB = await startHub(port, HUB_ARGS);
    const restartedAt = Date.now();

    // 4. The browser comes back by itself.
    await waitFor(async () => (await count('open')) === 2, 15000, 'the EventSource to reconnect');
    const reconnects = streamRequests.slice(1);
    assert.ok(reconnects.length >= 1, 'the page made a new subscription request');
    assert.ok(reconnects[0].at >= closeAt + retryMs - 50,
      `the first reconnect waited for retry (${retryMs} ms): it came ${reconnects[0].at - closeAt} ms after the close`);
    // Attempts made while no hub listened never sent headers; the ones that reached hub B did.
    const delivered = await waitFor(() => {
      const d = reconnects.filter((r) => Object.keys(r.headers).length > 0);
      return d.length > 0 && d;
    }, 5000, 'the headers of the reconnect request');
    for (const r of delivered)
      assert.equal(r.headers['last-event-id'], before[2].id,
        'the reconnect carries Last-Event-ID = the id of the last update received');

    // 5. Updates published to hub B arrive.
    const after = [];
    for (let i = 1; i <= 3; i++)
      after.push({ data: `after-${i}`, id: await publish(port, jwt, TOPIC, `after-${i}`) });
    await waitFor(async () => (await count('message')) === 6, 10000, 'three updates from hub B');
    await sleep(200); // room for a duplicate to show up
    const final = await log();
    assert.deepEqual(final.filter((e) => e.type === 'message').map((e) => [e.data, e.id]),
      [...before, ...after].map((u) => [u.data, u.id]), 'every update arrived exactly once, in order');
    console.log(`# retry ${retryMs} ms; first reconnect ${reconnects[0].at - closeAt} ms after the ` +
      `close; hub B served ${restartedAt - closeAt} ms after the close; ${reconnects.length} ` +
      'reconnect request(s)');

    await browser.close();
    hubB.proc.kill('SIGTERM');
    const exitB = await exitWithin(hubB, 15000);
    assert.deepEqual(exitB, { code: 0, signal: null }, `hub B exits 0 after SIGTERM: ${hubB.log()}`);
    assert.deepEqual(sanitizerReports(hubB), [], `hub B: the sanitizers found nothing: ${hubB.log()}`);
  } finally {
    await killAll();
  }
});
