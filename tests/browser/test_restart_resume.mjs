// test_restart_resume.mjs — restart invisibility, end to end: a hub with --data-dir stopped with
// SIGTERM and started again on the same port and data dir; a real EventSource in Chromium and
// the npm `eventsource` client, both reconnecting by themselves with their Last-Event-ID, get
// every update published while they were away — those published to the old process before it
// exited and those published to the new one before they came back — then the live ones: each
// once, in publish order.
//
// The clients reach the hub through a gate (a TCP relay in this process on its own port), so
// that when they come back is the test's choice, not the jitter's: while the gate is shut a
// reconnect attempt is refused and the client tries again later, as it would against a hub that
// is down. Two rounds:
//   A. the clients are cut off (gate shut, their connections dropped), 3 updates go to hub 1,
//      hub 1 gets SIGTERM, hub 2 starts on the same data dir, 3 updates go to hub 2, the gate
//      opens: both clients get the 6 they missed (the first 3 exist only in the data dir: an
//      in-memory hub loses them), then 3 live ones.
//   B. the drain itself: the gate stops taking new connections, hub 2 gets SIGTERM with the
//      clients connected (they get its close frame and try to come back), hub 3 starts on the
//      same data dir, 3 updates go to it, the gate opens: both get the 3, then 3 live ones.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import {
  exitWithin, freePort, killAll, launchChromium, publish, sanitizerReports, sleep, startHub, token,
  waitFor,
} from './lib.mjs';

const require = createRequire(import.meta.url);
const KEY = `restart-${Math.random().toString(36).slice(2)}-${Date.now()}-0123456789abcdef`;
const TOPIC = `https://example.com/restart/${Date.now()}`;
const PAGE = `<!doctype html>
<meta charset="utf-8"><title>sluice restart test</title>
<script>
  window.sseLog = [];
  const note = (e) => window.sseLog.push(Object.assign({ at: Date.now() }, e));
  const topic = new URLSearchParams(location.search).get('topic');
  const es = new EventSource('/.well-known/mercure?topic=' + encodeURIComponent(topic));
  es.onopen = () => note({ type: 'open' });
  es.onmessage = (e) => note({ type: 'message', data: e.data, id: e.lastEventId });
  es.addEventListener('close', (e) => note({ type: 'close', data: e.data }));
  es.onerror = () => note({ type: 'error', readyState: es.readyState });
</script>`;

// A TCP relay from its own port to the hub's: open() listens, shut() stops listening (new
// connections are refused), cut() also drops the connections it carries.
function gate(target) {
  const pairs = new Set();
  let server = null;
  let port = 0;
  const relay = (client) => {
    const up = net.connect(target, '127.0.0.1');
    const pair = [client, up];
    pairs.add(pair);
    const end = () => { client.destroy(); up.destroy(); pairs.delete(pair); };
    client.on('error', end); up.on('error', end); client.on('close', end); up.on('close', end);
    client.pipe(up); up.pipe(client);
  };
  return {
    get port() { return port; },
    open: (p) => new Promise((resolve, reject) => {
      server = net.createServer(relay);
      server.on('error', reject);
      server.listen(p, '127.0.0.1', () => { port = server.address().port; resolve(); });
    }),
    // Stops listening at once (close()'s callback would wait for the relayed connections).
    shut() { if (server) server.close(); server = null; },
    cut() { for (const [a, b] of pairs) { a.destroy(); b.destroy(); } pairs.clear(); },
  };
}

test('EventSource and the npm eventsource client lose nothing across a restart', { timeout: 180000 }, async () => {
  const hubPort = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-restart-'));
  const args = ['--jwt-key', KEY, '--anonymous', '--workers', '2', '--reconnect-spread', '0.3',
    '--data-dir', dataDir, '--fsync', 'batch'];
  const jwt = token(KEY, '--publish', '*');
  const g = gate(hubPort);
  const hubs = [];
  let es;
  try {
    hubs.push(await startHub(hubPort, args));
    await g.open(0);
    const origin = `http://127.0.0.1:${g.port}`;

    const browser = await launchChromium();
    const page = await browser.newPage();
    await page.route(`${origin}/restart-test.html*`,
      (route) => route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: PAGE }));
    await page.goto(`${origin}/restart-test.html?topic=${encodeURIComponent(TOPIC)}`);
    const browserMsgs = async () => (await page.evaluate(() => window.sseLog))
      .filter((e) => e.type === 'message').map((e) => [e.data, e.id]);

    const { EventSource } = require('eventsource');
    const npmMsgs = [];
    let npmOpens = 0;
    es = new EventSource(`${origin}/.well-known/mercure?topic=${encodeURIComponent(TOPIC)}`);
    es.onopen = () => { npmOpens++; };
    es.onmessage = (e) => npmMsgs.push([e.data, e.lastEventId]);
    es.onerror = () => {};

    await waitFor(async () => (await page.evaluate(() => window.sseLog))
      .some((e) => e.type === 'open') && npmOpens === 1, 15000, 'both clients to open');
    const want = [];
    const pub = async (label) => {
      const data = `${label}-${want.length}`;
      want.push([data, await publish(hubPort, jwt, TOPIC, data)]);
    };
    const bothHave = (n, what) => waitFor(async () => (await browserMsgs()).length >= n &&
      npmMsgs.length >= n, 20000, what);

    for (let i = 0; i < 3; i++) await pub('live1');
    await bothHave(3, 'three live updates on hub 1');

    // Round A: cut off, updates on hub 1, restart, updates on hub 2, back.
    g.shut();
    g.cut();
    for (let i = 0; i < 3; i++) await pub('away-on-1');
    hubs[0].proc.kill('SIGTERM');
    assert.deepEqual(await exitWithin(hubs[0], 15000), { code: 0, signal: null },
      `hub 1 exits 0: ${hubs[0].log()}`);
    hubs.push(await startHub(hubPort, args));
    for (let i = 0; i < 3; i++) await pub('away-on-2');
    await g.open(g.port);
    await bothHave(want.length, 'both clients to come back and catch up');
    for (let i = 0; i < 3; i++) await pub('live2');
    await bothHave(want.length, 'three live updates on hub 2');

    // Round B: the drain with the clients connected.
    g.shut();
    hubs[1].proc.kill('SIGTERM');
    assert.deepEqual(await exitWithin(hubs[1], 15000), { code: 0, signal: null },
      `hub 2 exits 0: ${hubs[1].log()}`);
    await waitFor(async () => (await page.evaluate(() => window.sseLog))
      .some((e) => e.type === 'close'), 10000, 'the browser to get the close frame');
    hubs.push(await startHub(hubPort, args));
    for (let i = 0; i < 3; i++) await pub('away-on-3');
    await sleep(500); // the clients keep knocking at the shut gate meanwhile
    await g.open(g.port);
    await bothHave(want.length, 'both clients to come back after the drain and catch up');
    for (let i = 0; i < 3; i++) await pub('live3');
    await bothHave(want.length, 'three live updates on hub 3');
    await sleep(300); // room for a duplicate to show up

    assert.deepEqual(await browserMsgs(), want,
      'Chromium EventSource: every update once, in publish order, with its id');
    assert.deepEqual(npmMsgs, want, 'npm eventsource: every update once, in publish order, with its id');
    console.log(`# ${want.length} updates over 3 processes; ${npmOpens} npm opens`);

    es.close();
    await browser.close();
    hubs[2].proc.kill('SIGTERM');
    assert.deepEqual(await exitWithin(hubs[2], 15000), { code: 0, signal: null },
      `hub 3 exits 0: ${hubs[2].log()}`);
    for (const h of hubs)
      assert.deepEqual(sanitizerReports(h), [], `the sanitizers found nothing: ${h.log()}`);
  } finally {
    es?.close();
    g.shut();
    g.cut();
    await killAll();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
