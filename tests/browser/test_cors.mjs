// test_cors.mjs — a page on another origin uses the hub as a browser really does: Chromium
// enforces CORS, sends the token cookie only when the page asks for credentials and the hub
// allows them, and hides any answer the hub does not allow the page to read.
//
// The hub runs on 127.0.0.1:<hub> with --cookie-name, --cors-origin and --publish-origin naming
// the app's origin, 127.0.0.1:<app>, a tiny static server this test starts (another port is
// another origin, but the same host, so the cookie set for 127.0.0.1 goes to both; it is
// HttpOnly, as the spec wants: the page never sees it). A second static server on
// 127.0.0.1:<evil> is an origin the hub does not list. Steps, each with a bounded wait:
//   1. the app subscribes with new EventSource(url, {withCredentials: true}): the cookie is its
//      token (the hub runs without --anonymous);
//   2. the app publishes with fetch and an Authorization header (a preflighted request): it reads
//      the answer (the id) and its EventSource receives the update;
//   3. the app publishes with fetch and only the cookie (credentials: 'include'): 200, received;
//   4. the evil page's EventSource fails (no CORS headers for it), its fetch with a header is
//      rejected (preflight 403), its cookie publish is rejected, and the app receives nothing of
//      it.
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import {
  exitWithin, freePort, killAll, launchChromium, sanitizerReports, startHub, token, waitFor,
} from './lib.mjs';

const KEY = `cors-${Math.random().toString(36).slice(2)}-${Date.now()}-0123456789abcdef`;
const COOKIE = 'hubTok';

// A static server of one empty HTML page, on 127.0.0.1:port.
function staticServer(port) {
  const srv = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>app</title><p>app</p>');
  });
  return new Promise((resolve, reject) => {
    srv.on('error', reject);
    srv.listen(port, '127.0.0.1', () => resolve(srv));
  });
}

// In the page: an EventSource with credentials on hubUrl, whose messages and errors are kept
// in window.got and window.errors.
function subscribeInPage(hubUrl) {
  window.got = [];
  window.errors = 0;
  window.opened = false;
  const es = new EventSource(hubUrl, { withCredentials: true });
  es.onopen = () => { window.opened = true; };
  es.onmessage = (e) => { window.got.push(e.lastEventId); };
  es.onerror = () => { window.errors++; window.esState = es.readyState; };
  window.es = es;
}

// In the page: a fetch POST; resolves to {status, body} or {error} when the browser rejects it.
async function publishInPage({ url, id, auth }) {
  const headers = { 'Content-Type': 'application/x-www-form-urlencoded' };
  if (auth) headers.Authorization = `Bearer ${auth}`;
  try {
    const r = await fetch(url, {
      method: 'POST',
      credentials: auth ? 'omit' : 'include',
      headers,
      body: new URLSearchParams({ topic: 'urn:cors:x', data: id, id }).toString(),
    });
    return { status: r.status, body: await r.text() };
  } catch (e) {
    return { error: String(e) };
  }
}

test('a page on an allowed origin subscribes with the cookie and publishes; another is refused',
  { timeout: 180000 }, async () => {
    const [hubPort, appPort, evilPort] = [await freePort(), await freePort(), await freePort()];
    const app = `http://127.0.0.1:${appPort}`;
    const evil = `http://127.0.0.1:${evilPort}`;
    const hubUrl = `http://127.0.0.1:${hubPort}/.well-known/mercure`;
    const subUrl = `${hubUrl}?${new URLSearchParams({ match: 'urn:cors:x' })}`;
    const jwt = token(KEY, '--publish', 'urn:cors:x', '--subscribe', 'urn:cors:x');
    const servers = [];
    try {
      servers.push(await staticServer(appPort), await staticServer(evilPort));
      const hub = await startHub(hubPort, ['--jwt-key', KEY, '--workers', '1',
        '--cookie-name', COOKIE, '--cors-origin', app, '--publish-origin', app]);
      const browser = await launchChromium();
      const context = await browser.newContext();
      // As a server would set it during discovery: HttpOnly, for the hub's host.
      await context.addCookies([{ name: COOKIE, value: jwt, domain: '127.0.0.1', path: '/',
        httpOnly: true, sameSite: 'Lax' }]);

      const page = await context.newPage();
      await page.goto(`${app}/`);
      assert.equal(await page.evaluate(() => document.cookie), '', 'the page cannot read the cookie');
      await page.evaluate(subscribeInPage, subUrl);
      await waitFor(() => page.evaluate(() => window.opened), 15000,
        'the app\'s EventSource to open with the cookie', 50);

      const byHeader = `by-header-${Date.now()}`;
      const r1 = await page.evaluate(publishInPage, { url: hubUrl, id: byHeader, auth: jwt });
      assert.deepEqual(r1, { status: 200, body: byHeader },
        'fetch with Authorization from the app: 200, and the page reads the id');
      await waitFor(() => page.evaluate((id) => window.got.includes(id), byHeader), 10000,
        'the update published by header to reach the app', 50);

      const byCookie = `by-cookie-${Date.now()}`;
      const r2 = await page.evaluate(publishInPage, { url: hubUrl, id: byCookie });
      assert.deepEqual(r2, { status: 200, body: byCookie },
        'fetch with only the cookie from the app (a --publish-origin): 200');
      await waitFor(() => page.evaluate((id) => window.got.includes(id), byCookie), 10000,
        'the update published by cookie to reach the app', 50);

      const other = await context.newPage();
      await other.goto(`${evil}/`);
      await other.evaluate(subscribeInPage, subUrl);
      await waitFor(() => other.evaluate(() => window.errors > 0), 15000,
        'the unlisted page\'s EventSource to fail', 50);
      assert.equal(await other.evaluate(() => window.opened), false,
        'the unlisted page\'s EventSource never opens');
      assert.equal(await other.evaluate(() => window.esState), 2, 'it is CLOSED, not retrying');
      const evilHeader = `evil-header-${Date.now()}`;
      const r3 = await other.evaluate(publishInPage, { url: hubUrl, id: evilHeader, auth: jwt });
      assert.ok(r3.error, `fetch with Authorization from the unlisted page is rejected: ${JSON.stringify(r3)}`);
      const evilCookie = `evil-cookie-${Date.now()}`;
      const r4 = await other.evaluate(publishInPage, { url: hubUrl, id: evilCookie });
      assert.ok(r4.error, `a cookie publish from the unlisted page is rejected: ${JSON.stringify(r4)}`);
      // A marker published after both: once it arrives, anything the evil page had managed to
      // publish would have arrived before it.
      const marker = `marker-${Date.now()}`;
      const r5 = await page.evaluate(publishInPage, { url: hubUrl, id: marker, auth: jwt });
      assert.equal(r5.status, 200, 'the marker is published');
      await waitFor(() => page.evaluate((id) => window.got.includes(id), marker), 10000,
        'the marker to reach the app', 50);
      const got = await page.evaluate(() => window.got);
      assert.deepEqual(got, [byHeader, byCookie, marker],
        'the app received its two updates and the marker, nothing from the unlisted page');

      await browser.close();
      hub.proc.kill('SIGTERM');
      const exit = await exitWithin(hub, 15000);
      assert.deepEqual(exit, { code: 0, signal: null }, `the hub exits 0 after SIGTERM: ${hub.log()}`);
      assert.deepEqual(sanitizerReports(hub), [], `the sanitizers found nothing: ${hub.log()}`);
    } finally {
      for (const s of servers) s.close();
      await killAll();
    }
  });
