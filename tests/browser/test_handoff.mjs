// test_handoff.mjs — a browser's EventSource across a live upgrade (SIGUSR2, issue 15): the
// stream is handed to the new process and the page notices nothing.
//
// Debian's Chromium (headless, through playwright-core) loads a page at the hub's own origin
// (Playwright answers that one URL; the EventSource goes to the real hub) that subscribes with
// `new EventSource(...)` and records every open, message and error. Updates are published every
// 50 ms, from before SIGUSR2 until a second after the old process exited. Asserted: the old pid
// exits 0 and the pid file names a new one; the page saw exactly one `open` and no `error` event;
// the browser made exactly one subscription request (no reconnect); every update published
// arrived once, in order, with its id; the new process serves an update published after the
// upgrade; it drains and exits on SIGTERM, and no sanitizer report is in the log the two
// processes shared (the new process inherited the old one's stderr).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import {
  exitWithin, freePort, killAll, launchChromium, publish, sanitizerReports, sleep, startHub, token,
  waitFor,
} from './lib.mjs';

const KEY = `browser-${Math.random().toString(36).slice(2)}-${Date.now()}-0123456789abcdef`;
const TOPIC = `https://example.com/handoff/${Date.now()}`;
const PAGE = `<!doctype html>
<meta charset="utf-8"><title>sluice handoff test</title>
<script>
  window.sseLog = [];
  const note = (e) => window.sseLog.push(Object.assign({ at: Date.now() }, e));
  const topic = new URLSearchParams(location.search).get('topic');
  const es = new EventSource('/.well-known/mercure?topic=' + encodeURIComponent(topic));
  es.onopen = () => note({ type: 'open' });
  es.onmessage = (e) => note({ type: 'message', data: e.data, id: e.lastEventId });
  es.addEventListener('close', (e) => note({ type: 'close', data: e.data }));
  es.onerror = () => note({ type: 'error', readyState: es.readyState });
</script>
<p>EventSource on the hub; events are recorded in window.sseLog.</p>`;

function readPid(file) {
  try {
    return Number(fs.readFileSync(file, 'utf8').trim()) || null;
  } catch {
    return null;
  }
}

function alive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

test('EventSource sees nothing of a live upgrade', { timeout: 150000 }, async () => {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const jwt = token(KEY, '--publish', '*');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-browser-handoff-'));
  const pidFile = path.join(dir, 'sluice.pid');
  let newPid = null;
  try {
    const hub = await startHub(port, ['--jwt-key', KEY, '--anonymous', '--workers', '2',
      '--heartbeat', '0', '--pid-file', pidFile]);
    const browser = await launchChromium();
    const page = await browser.newPage();
    const streamRequests = [];
    page.on('request', (req) => {
      if (req.url().includes('/.well-known/mercure')) streamRequests.push(Date.now());
    });
    await page.route(`${origin}/handoff-test.html*`,
      (route) => route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: PAGE }));
    await page.goto(`${origin}/handoff-test.html?topic=${encodeURIComponent(TOPIC)}`);
    const log = () => page.evaluate(() => window.sseLog);
    const count = async (type) => (await log()).filter((e) => e.type === type).length;
    await waitFor(async () => (await count('open')) === 1, 10000, 'the EventSource to open');

    const sent = [];
    for (let i = 0; i < 3; i++) sent.push({ data: `before-${i}`, id: await publish(port, jwt, TOPIC, `before-${i}`) });
    await waitFor(async () => (await count('message')) === 3, 10000, 'three updates');

    // A steady publisher through the upgrade: every 50 ms, each publish answered before the next.
    let stop = false;
    const failures = [];
    const publisher = (async () => {
      for (let i = 0; !stop && i < 2000; i++) {
        try {
          sent.push({ data: `during-${i}`, id: await publish(port, jwt, TOPIC, `during-${i}`) });
        } catch (e) {
          failures.push(`during-${i}: ${e.message}`);
        }
        await sleep(50);
      }
    })();
    await sleep(500);
    const oldPid = hub.proc.pid;
    assert.equal(readPid(pidFile), oldPid, 'the pid file names the hub at start');
    const sigAt = Date.now();
    hub.proc.kill('SIGUSR2');
    const exit = await exitWithin(hub, 30000);
    const upgradeMs = Date.now() - sigAt;
    assert.deepEqual(exit, { code: 0, signal: null },
      `the old pid exits 0 after SIGUSR2 (null: still running): ${hub.log().slice(-1500)}`);
    newPid = await waitFor(() => {
      const p = readPid(pidFile);
      return p && p !== oldPid && alive(p) ? p : null;
    }, 5000, 'the pid file to name the new process');
    await sleep(1000);
    stop = true;
    await publisher;
    assert.deepEqual(failures, [], 'every publish through the upgrade was answered 200');

    sent.push({ data: 'after', id: await publish(port, jwt, TOPIC, 'after') });
    await waitFor(async () => (await count('message')) >= sent.length, 15000,
      `all ${sent.length} updates in the page`);
    await sleep(300);
    const events = await log();
    console.log(`info upgrade ${upgradeMs} ms; old pid ${oldPid}, new pid ${newPid}; ` +
      `${sent.length} updates; page events: ${events.filter((e) => e.type !== 'message').map((e) => e.type).join(', ')}`);
    const msgs = events.filter((e) => e.type === 'message');
    let gap = 0;
    for (let i = 1; i < msgs.length; i++) gap = Math.max(gap, msgs[i].at - msgs[i - 1].at);
    console.log(`info largest interval between two updates in the page: ${gap} ms (one every 50 ms)`);
    assert.equal(events.filter((e) => e.type === 'error').length, 0, 'no error event');
    assert.equal(events.filter((e) => e.type === 'open').length, 1, 'one open event: no reconnect');
    assert.equal(events.filter((e) => e.type === 'close').length, 0, 'no close event');
    assert.equal(streamRequests.length, 1, 'the browser made one subscription request');
    assert.deepEqual(msgs.map((e) => [e.data, e.id]), sent.map((u) => [u.data, u.id]),
      'every update arrived once, in order, with its id');

    // The new process drains on SIGTERM; its stderr is the pipe the old one wrote to.
    process.kill(newPid, 'SIGTERM');
    await waitFor(() => !alive(newPid), 40000, 'the new process to exit after SIGTERM');
    newPid = null;
    await sleep(200);
    assert.match(hub.log(), /drain: done in [0-9.]+ s: \d+ streams drained, \d+ updates flushed, 0 connections forced/,
      'the new process drained cleanly');
    assert.deepEqual(sanitizerReports(hub), [], `the sanitizers found nothing: ${hub.log().slice(-2000)}`);
  } finally {
    if (newPid && alive(newPid)) process.kill(newPid, 'SIGKILL');
    await killAll();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
