// test_conformance.mjs — the Mercure conformance cases, as a browser and an existing Mercure
// deployment use the hub: Chromium's native EventSource subscribes, the page publishes with
// fetch() and a token minted the way the spec tells publishers to (JWS header
// {"alg":"HS256","typ":"at+jwt"}, the RFC 9068 claims, grants in authorization_details).
//
// The case list follows the public conformance suite of the reference hub (dunglas/mercure,
// conformance-tests/): raw string, several topics, several selectors, URI, URI template, the
// non-matching variant of each, the private variant of each, and the custom id echoed back as
// text/plain; plus what draft-dunglas-mercure-08 added since (match_urlpattern, relative patterns,
// alternate-topic authorization, an empty private=, tokens in the URL ignored, hub-generated ids,
// typed events, CR/CRLF in data, the stream ending at the token's exp) and an interop case with
// the unchanged npm `eventsource` client. Each case is its own node:test test, so the run reports
// every case by name;
// `node --test-name-pattern '<name>' test_conformance.mjs` runs one. docs/mercure-conformance.md
// maps the spec's requirements to these cases.
//
// How a case proves what it claims (no timed waits decide anything):
//   - every publish must be answered 200, Content-Type text/plain, with the id sent (or, without
//     one, the id the hub made up), so no case passes because a publish was refused;
//   - a subscriber that must receive the update waits for it (bounded), then it must hold it
//     exactly once, with the id and the data (multi-line) intact;
//   - a subscriber that must NOT receive it also listens to a sentinel topic of its own; after the
//     case's update, a public update on that sentinel is published: the hub writes one
//     connection's updates in publish order, so once the sentinel has arrived the case's update
//     would have arrived before it. Each such case also has a witness subscriber that does
//     receive the update (the matching selector, or a token allowed to read the private update),
//     so "not received" never stands for "not published".
// Private updates are read with the token in the __Secure-mercure_access_token cookie (the name
// the spec recommends), in a second browser context; anonymous subscribers have no cookie.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';
import {
  exitWithin, freePort, killAll, launchChromium, sanitizerReports, startHub, waitFor,
} from './lib.mjs';

const require = createRequire(import.meta.url);

const KEY = `conformance-${crypto.randomBytes(16).toString('hex')}`;
const ISSUER = 'https://publisher.example.org';
const DETAIL_TYPE = 'https://mercure.rocks/authorization-detail';
const COOKIE = '__Secure-mercure_access_token';
const RUN = crypto.randomBytes(6).toString('hex'); // keeps this run's topics apart
const WAIT_MS = 10000;

const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

// A spec access token (RFC 9068 profile): HS256 JWS, typ at+jwt, every claim RFC 9068 asks an
// issuer to populate, and one Mercure authorization detail for `action` on `matchers`
// ({match, match_type?} objects).
function specToken(audience, action, matchers, lifetime = 600) {
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'HS256', typ: 'at+jwt' };
  const claims = {
    iss: ISSUER,
    aud: audience,
    sub: `urn:uuid:${crypto.randomUUID()}`,
    client_id: ISSUER,
    iat: now,
    exp: now + lifetime,
    jti: `urn:uuid:${crypto.randomUUID()}`,
    authorization_details: [{ type: DETAIL_TYPE, actions: [action], topics: matchers }],
  };
  const input = `${b64url(header)}.${b64url(claims)}`;
  const sig = crypto.createHmac('sha256', KEY).update(input).digest('base64url');
  return `${input}.${sig}`;
}

const exact = (...topics) => topics.map((match) => ({ match }));

// The page every case runs in, served at the hub's own origin (Playwright answers this one URL;
// everything else goes to the real hub).
const PAGE = `<!doctype html>
<meta charset="utf-8"><title>sluice conformance</title>
<script>
  window.streams = {};
  // A subscription: the hub URL with params ([name, value] pairs, appended in order).
  window.subscribe = (name, params, types) => {
    const url = new URL('/.well-known/mercure', location.origin);
    for (const [k, v] of params) url.searchParams.append(k, v);
    const s = { open: false, errors: 0, events: [], url: url.toString() };
    const es = new EventSource(url, { withCredentials: true });
    const note = (e) => s.events.push({ type: e.type, id: e.lastEventId, data: e.data });
    es.onopen = () => { s.open = true; };
    es.onerror = () => { s.errors += 1; };
    es.onmessage = note;
    for (const t of types || []) es.addEventListener(t, note);
    s.es = es;
    window.streams[name] = s;
  };
  window.readyState = (name) => window.streams[name].es.readyState;
  window.streamState = (name) => {
    const s = window.streams[name];
    return s && { open: s.open, errors: s.errors, events: s.events, url: s.url };
  };
  window.closeAll = () => {
    for (const s of Object.values(window.streams)) s.es.close();
    window.streams = {};
  };
  // A publish as a browser application makes it: fetch() with a Bearer token and a
  // URLSearchParams body (application/x-www-form-urlencoded;charset=UTF-8).
  window.publishUpdate = async (jwt, topics, fields) => {
    const body = new URLSearchParams();
    for (const t of topics) body.append('topic', t);
    for (const [k, v] of Object.entries(fields)) body.append(k, v);
    const r = await fetch('/.well-known/mercure', {
      method: 'POST', headers: { Authorization: 'Bearer ' + jwt }, body,
    });
    return { status: r.status, contentType: r.headers.get('content-type'), body: await r.text() };
  };
</script>
<p>sluice conformance page</p>`;

// --- the cases -----------------------------------------------------------------------------
// A case: the update (topics, private, id or none, type, data) and its subscribers. A subscriber
// is anonymous ('anon') or reads with a subscribe token for `grant` in the cookie ('authed'),
// subscribes with `params`, and `gets` the update or not. Topics and selectors are unique to the
// case (k), so no case sees another's updates.
const key = () => crypto.randomBytes(8).toString('hex');
const uri = (k, rest) => `https://example.net/${RUN}/${k}/${rest}`;

function cases() {
  const list = [];
  const add = (name, build) => list.push({ name, ...build(key()) });
  const pub = (...topics) => ({ topics });

  add('raw string', (k) => ({
    ...pub(`raw-${k}`),
    subs: [{ params: [['match', `raw-${k}`]], gets: true }],
  }));
  add('multiple topics (an alternate topic selects the update)', (k) => ({
    ...pub(`canonical-${k}`, `alternate-${k}`),
    subs: [{ params: [['match', `alternate-${k}`]], gets: true }],
  }));
  add('multiple topic selectors', (k) => ({
    ...pub(`selected-${k}`),
    subs: [{ params: [['match', `other-${k}`], ['match', `selected-${k}`]], gets: true }],
  }));
  add('URI', (k) => ({
    ...pub(uri(k, 'foo/1')),
    subs: [{ params: [['match', uri(k, 'foo/1')]], gets: true }],
  }));
  add('URI, explicit match_exact', (k) => ({
    ...pub(uri(k, 'foo/1')),
    subs: [{ params: [['match_exact', uri(k, 'foo/1')]], gets: true }],
  }));
  add('URI template (legacy topic=)', (k) => ({
    ...pub(uri(k, 'foo/1')),
    subs: [{ params: [['topic', uri(k, 'foo/{id}')]], gets: true }],
  }));
  add('raw string (legacy topic=)', (k) => ({
    ...pub(`legacy-${k}`),
    subs: [{ params: [['topic', `legacy-${k}`]], gets: true }],
  }));
  add('URL pattern', (k) => ({
    ...pub(uri(k, 'books/42')),
    subs: [{ params: [['match_urlpattern', uri(k, 'books/:id')]], gets: true }],
  }));
  add('URL pattern relative to the hub URL', (k) => ({
    ...pub(`/${RUN}/${k}/books/42`),
    subs: [{ params: [['match_urlpattern', `/${RUN}/${k}/books/:id`]], gets: true }],
  }));
  add('exact and URL pattern selectors together', (k) => ({
    ...pub(uri(k, 'books/7')),
    subs: [{ params: [['match', `other-${k}`], ['match_urlpattern', uri(k, 'books/:id')]], gets: true }],
  }));
  add('wildcard *', (k) => ({
    ...pub(`anything-${k}`),
    subs: [{ params: [['match', '*']], gets: true }],
  }));
  add('nonmatching raw string', (k) => ({
    ...pub(`will-not-match-${k}`),
    subs: [{ params: [['match', `another-name-${k}`]], gets: false },
      { params: [['match', `will-not-match-${k}`]], gets: true }],
  }));
  add('nonmatching URI', (k) => ({
    ...pub(uri(k, 'foo/will-not-match')),
    subs: [{ params: [['match', uri(k, 'foo/another-name')]], gets: false },
      { params: [['match', uri(k, 'foo/will-not-match')]], gets: true }],
  }));
  add('nonmatching URI (exact matching is case-sensitive)', (k) => ({
    ...pub(uri(k, 'foo/Case')),
    subs: [{ params: [['match', uri(k, 'foo/case')]], gets: false },
      { params: [['match', uri(k, 'foo/Case')]], gets: true }],
  }));
  add('nonmatching URI template (legacy topic=)', (k) => ({
    ...pub(uri(k, 'foo/will-not-match')),
    subs: [{ params: [['topic', uri(k, 'bar/{var}')]], gets: false },
      { params: [['match', uri(k, 'foo/will-not-match')]], gets: true }],
  }));
  add('nonmatching URL pattern', (k) => ({
    ...pub(uri(k, 'foo/will-not-match')),
    subs: [{ params: [['match_urlpattern', uri(k, 'bar/:id')]], gets: false },
      { params: [['match', uri(k, 'foo/will-not-match')]], gets: true }],
  }));
  add('nonmatching URL pattern (a named group stops at /)', (k) => ({
    ...pub(uri(k, 'books/1/chapters/2')),
    subs: [{ params: [['match_urlpattern', uri(k, 'books/:id')]], gets: false },
      { params: [['match', uri(k, 'books/1/chapters/2')]], gets: true }],
  }));
  add('private raw string', (k) => ({
    ...pub(`secret-${k}`), private: true,
    subs: [{ params: [['match', `secret-${k}`]], gets: false },
      { authed: exact(`secret-${k}`), params: [['match', `secret-${k}`]], gets: true }],
  }));
  add('private URI', (k) => ({
    ...pub(uri(k, 'foo/secret')), private: true,
    subs: [{ params: [['match', uri(k, 'foo/secret')]], gets: false },
      { authed: exact(uri(k, 'foo/secret')), params: [['match', uri(k, 'foo/secret')]], gets: true }],
  }));
  add('private URI template (legacy topic=)', (k) => ({
    ...pub(uri(k, 'foo/secret')), private: true,
    subs: [{ params: [['topic', uri(k, 'foo/{id}')]], gets: false },
      { authed: exact(uri(k, 'foo/secret')), params: [['topic', uri(k, 'foo/{id}')]], gets: true }],
  }));
  add('private URL pattern (selected and granted by URL patterns)', (k) => ({
    ...pub(uri(k, 'books/secret')), private: true,
    subs: [{ params: [['match_urlpattern', uri(k, 'books/:id')]], gets: false },
      { authed: [{ match: uri(k, 'books/*'), match_type: 'urlpattern' }],
        params: [['match_urlpattern', uri(k, 'books/:id')]], gets: true }],
  }), 'match_urlpattern and urlpattern grants (parts A, B)');
  add('private update, token granted another topic only', (k) => ({
    ...pub(`secret-${k}`), private: true,
    subs: [{ authed: exact(`elsewhere-${k}`), params: [['match', `secret-${k}`]], gets: false },
      { authed: exact(`secret-${k}`), params: [['match', `secret-${k}`]], gets: true }],
  }));
  add('private update, token granted its alternate topic', (k) => ({
    ...pub(uri(k, 'books/1'), uri(k, 'users/42/books/1')), private: true,
    subs: [{ params: [['match', uri(k, 'books/1')]], gets: false },
      { authed: exact(uri(k, 'users/42/books/1')), params: [['match', uri(k, 'books/1')]], gets: true }],
  }));
  add('private field with an empty value still makes the update private', (k) => ({
    ...pub(`secret-${k}`), private: true, privateValue: '',
    subs: [{ params: [['match', `secret-${k}`]], gets: false },
      { authed: exact(`secret-${k}`), params: [['match', `secret-${k}`]], gets: true }],
  }));
  // Tokens in the URL are not accepted (RFC 9700): a valid subscribe token in access_token= or
  // the pre-standard authorization= query parameter must not unlock a private update.
  add('a token in the access_token query parameter is ignored', (k) => ({
    ...pub(`secret-${k}`), private: true,
    subs: [{ params: [['match', `secret-${k}`],
      ['access_token', () => specToken(hubUrl, 'subscribe', exact(`secret-${k}`))]], gets: false },
    { authed: exact(`secret-${k}`), params: [['match', `secret-${k}`]], gets: true }],
  }));
  add('a token in the legacy authorization query parameter is ignored', (k) => ({
    ...pub(`secret-${k}`), private: true,
    subs: [{ params: [['match', `secret-${k}`],
      ['authorization', () => specToken(hubUrl, 'subscribe', exact(`secret-${k}`))]], gets: false },
    { authed: exact(`secret-${k}`), params: [['match', `secret-${k}`]], gets: true }],
  }));
  add('hub-generated id returned as text/plain and sent as the event id', (k) => ({
    ...pub(`generated-${k}`), noId: true,
    subs: [{ params: [['match', `generated-${k}`]], gets: true }],
  }));
  add('typed event (type field)', (k) => ({
    ...pub(`typed-${k}`), type: 'book-changed',
    subs: [{ params: [['match', `typed-${k}`]], gets: true }],
  }));
  add('data with CR and CRLF line breaks arrives with LF', (k) => ({
    ...pub(`lines-${k}`), data: 'one\rtwo\r\nthree\n\nfive', expectData: 'one\ntwo\nthree\n\nfive',
    subs: [{ params: [['match', `lines-${k}`]], gets: true }],
  }));
  return list;
}

// --- the run -------------------------------------------------------------------------------
let hub;
let browser;
let origin;
let hubUrl;
let anon; // { context, page }
let authed = []; // one { context, page } per subscriber reading with a cookie, made as needed
let pubToken;

async function newPage(cookieToken) {
  const context = await browser.newContext();
  if (cookieToken)
    await context.addCookies([{
      name: COOKIE, value: cookieToken, domain: '127.0.0.1', path: '/.well-known/mercure',
      secure: true, httpOnly: true, sameSite: 'Strict',
    }]);
  await context.route(`${origin}/conformance.html`,
    (route) => route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: PAGE }));
  const page = await context.newPage();
  page.on('pageerror', (e) => console.log(`# page error: ${e.message}`));
  await page.goto(`${origin}/conformance.html`);
  return { context, page };
}

before(async () => {
  const port = await freePort();
  origin = `http://127.0.0.1:${port}`;
  hubUrl = `${origin}/.well-known/mercure`;
  // The spec profile (lib.mjs starts hubs with --jwt-legacy; the later flag wins), with no
  // leeway so that a token's stream ends at its exp.
  hub = await startHub(port, ['--jwt-key', KEY, '--anonymous', '--workers', '1',
    '--jwt-legacy=0', '--jwt-leeway', '0', '--jwt-audience', hubUrl, '--jwt-issuer', ISSUER]);
  pubToken = specToken(hubUrl, 'publish', exact('*'));
  browser = await launchChromium();
  anon = await newPage(null);
});

after(async () => {
  try {
    if (browser) await browser.close();
    if (hub) {
      hub.proc.kill('SIGTERM');
      const exit = await exitWithin(hub, 15000);
      assert.deepEqual(exit, { code: 0, signal: null }, `the hub exits 0 after SIGTERM: ${hub.log()}`);
      assert.deepEqual(sanitizerReports(hub), [], `the sanitizers found nothing: ${hub.log()}`);
    }
  } finally {
    await killAll();
  }
});

const state = (page, name) => page.evaluate((n) => window.streamState(n), name);

async function publishFrom(page, jwt, topics, fields, what) {
  const r = await page.evaluate(([j, t, f]) => window.publishUpdate(j, t, f), [jwt, topics, fields]);
  assert.equal(r.status, 200, `${what}: the publish is accepted (HTTP ${r.status}: ${r.body})`);
  assert.match(r.contentType ?? '', /^text\/plain(;|$)/, `${what}: answered as text/plain`);
  return r.body;
}

async function runCase(c) {
  const data = c.data ?? `data for\n\n  ${c.name}\nlast line`;
  const expectData = c.expectData ?? data;
  const id = c.noId ? null : `urn:example:conformance:${RUN}:${crypto.randomUUID()}`;
  const sentinel = `sentinel-${RUN}-${key()}`;
  const streams = [];
  try {
    // Subscribers, each with the sentinel selector as well.
    for (const [i, s] of c.subs.entries()) {
      let where = anon;
      if (s.authed) {
        where = await newPage(specToken(hubUrl, 'subscribe', s.authed));
        authed.push(where);
      }
      const name = `s${i}`;
      await where.page.evaluate(([n, p, t]) => window.subscribe(n, p, t),
        [name, [...s.params.map(([n, v]) => [n, typeof v === 'function' ? v() : v]),
          ['match', sentinel]], c.type ? [c.type] : []]);
      streams.push({ ...s, name, page: where.page });
    }
    for (const s of streams)
      await waitFor(async () => {
        const st = await state(s.page, s.name);
        if (st.errors > 0 && !st.open)
          throw new Error(`subscriber ${s.name} (${st.url}) was refused or failed to connect`);
        return st.open;
      }, WAIT_MS, `subscriber ${s.name} to connect`, 25);

    // The update, from the page, with a spec token.
    const fields = { data };
    if (id) fields.id = id;
    if (c.private) fields.private = c.privateValue ?? 'on';
    if (c.type) fields.type = c.type;
    const got = await publishFrom(anon.page, pubToken, c.topics, fields, 'the update');
    if (id) assert.equal(got, id, 'the answer is the id the publisher chose');
    else assert.match(got, /^(urn:uuid:[0-9a-f-]{36}|#\S+|[a-z][a-z0-9+.-]*:\S+)$/i,
      `the answer is an id the hub made up (an IRI or a #fragment): ${got}`);
    const eventId = id ?? got;

    const matches = (e) => e.id === eventId;
    for (const s of streams.filter((x) => x.gets))
      await waitFor(async () => (await state(s.page, s.name)).events.some(matches), WAIT_MS,
        `subscriber ${s.name} to receive the update`, 25);

    // The sentinel, then what each subscriber holds.
    const sentinelId = await publishFrom(anon.page, pubToken, [sentinel], { data: 'sentinel' },
      'the sentinel');
    for (const s of streams)
      await waitFor(async () => (await state(s.page, s.name)).events.some((e) => e.id === sentinelId),
        WAIT_MS, `subscriber ${s.name} to receive the sentinel`, 25);
    for (const s of streams) {
      const st = await state(s.page, s.name);
      const mine = st.events.filter(matches);
      if (s.gets) {
        assert.equal(mine.length, 1, `subscriber ${s.name} (${st.url}) receives the update once`);
        assert.equal(mine[0].data, expectData, `subscriber ${s.name}: the data arrives intact`);
        assert.equal(mine[0].type, c.type ?? 'message', `subscriber ${s.name}: the event type`);
      } else {
        assert.equal(mine.length, 0, `subscriber ${s.name} (${st.url}) must not receive the update`);
      }
    }
  } finally {
    for (const s of new Set(streams.map((x) => x.page)))
      await s.evaluate(() => window.closeAll()).catch(() => {});
    for (const a of authed) await a.context.close().catch(() => {});
    authed = [];
  }
}

// A failing case that waits for a feature says which, so a run on a branch without it reads
// plainly.
for (const c of cases())
  test(c.name, { timeout: 60000 }, async () => {
    await runCase(c);
  });

// Interop: the unchanged npm `eventsource` client (Authorization header, as a server-side
// subscriber sends it) and Chromium's native EventSource (the cookie) read the same private
// update with spec tokens, and each sees the same id and data.
test('interop: npm eventsource and native EventSource receive the same private update',
  { timeout: 60000 }, async () => {
    const { EventSource } = require('eventsource');
    const topic = uri(key(), 'interop');
    const subToken = specToken(hubUrl, 'subscribe', exact(topic));
    const url = new URL(hubUrl);
    url.searchParams.append('match', topic);
    const nodeEvents = [];
    let nodeOpen = false;
    let nodeError = null;
    const es = new EventSource(url, {
      fetch: (input, init) => fetch(input, {
        ...init, headers: { ...(init && init.headers), Authorization: `Bearer ${subToken}` },
      }),
    });
    es.onopen = () => { nodeOpen = true; };
    es.onerror = (e) => { nodeError = String(e?.message ?? 'error'); };
    es.onmessage = (e) => nodeEvents.push({ id: e.lastEventId, data: e.data });
    const page = await newPage(subToken);
    authed.push(page);
    try {
      await page.page.evaluate((t) => window.subscribe('native', [['match', t]], []), topic);
      await waitFor(async () => nodeOpen && (await state(page.page, 'native')).open, WAIT_MS,
        `both clients to connect (npm eventsource error: ${nodeError})`, 25);
      const data = 'interop\nline two';
      const id = await publishFrom(anon.page, pubToken, [topic], { data, private: 'on' }, 'the update');
      await waitFor(async () => nodeEvents.length >= 1 &&
        (await state(page.page, 'native')).events.length >= 1, WAIT_MS, 'both clients to receive it', 25);
      const native = (await state(page.page, 'native')).events;
      assert.deepEqual(nodeEvents, [{ id, data }], 'npm eventsource: the update, id and data intact');
      assert.deepEqual(native.map((e) => ({ id: e.id, data: e.data })), [{ id, data }],
        'native EventSource: the same update');
    } finally {
      es.close();
      await page.page.evaluate(() => window.closeAll()).catch(() => {});
      await page.context.close().catch(() => {});
      authed = [];
    }
  });

// The spec: a subscriber's connection is closed no later than its token's exp. The stream of a
// subscriber whose cookie token lives 8 s must end by itself (8 s, not less: a token already past
// its exp opens no stream, and a loaded machine can take seconds to open the page); the EventSource then reconnects
// with the same, now expired, token, is refused, and gives up (readyState CLOSED). Bounded wait;
// with the feature off the stream stays open and the wait runs out.
test('a subscriber is disconnected when its token expires', { timeout: 60000 }, async () => {
  const topic = `expiring-${key()}`;
  const page = await newPage(specToken(hubUrl, 'subscribe', exact(topic), 8));
  authed.push(page);
  try {
    await page.page.evaluate((t) => window.subscribe('expiring', [['match', t]], []), topic);
    await waitFor(async () => (await state(page.page, 'expiring')).open, WAIT_MS,
      'the subscriber to connect', 25);
    const id = await publishFrom(anon.page, pubToken, [topic], { data: 'before exp', private: 'on' },
      'an update before exp');
    await waitFor(async () => (await state(page.page, 'expiring')).events.some((e) => e.id === id),
      WAIT_MS, 'the update before exp', 25);
    await waitFor(async () => (await page.page.evaluate(() => window.readyState('expiring'))) === 2,
      30000, 'the stream to end at exp and the reconnect with the expired token to be refused', 100);
  } finally {
    await page.page.evaluate(() => window.closeAll()).catch(() => {});
    await page.context.close().catch(() => {});
    authed = [];
  }
});
