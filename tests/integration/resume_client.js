// resume_client.js — a subscriber built on the npm `eventsource` client, driven by
// test_resume.py. It subscribes to URL with a Bearer token, lets the library reconnect on its own
// (sending Last-Event-ID) whenever the connection drops, and prints one JSON line per happening
// on stdout: {"connect": <Last-Event-ID sent or null>}, {"open": true}, {"id", "data"} per
// message, {"error": "..."} on a dropped connection, {"done": true} once COUNT messages arrived.
// Usage: node resume_client.js URL TOKEN COUNT TIMEOUT_SECONDS
'use strict';

const { EventSource } = require('eventsource');

const [url, token, countArg, timeoutArg] = process.argv.slice(2);
const want = Number(countArg);
const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const es = new EventSource(url, {
  fetch: (input, init) => {
    const headers = { ...(init && init.headers), Authorization: `Bearer ${token}` };
    say({ connect: headers['Last-Event-ID'] ?? null });
    return fetch(input, { ...init, headers });
  },
});

let got = 0;
es.onopen = () => say({ open: true });
es.onerror = (e) => say({ error: String((e && e.message) || 'connection lost') });
es.onmessage = (e) => {
  got += 1;
  say({ id: e.lastEventId, data: e.data });
  if (got >= want) {
    es.close();
    say({ done: true });
    process.exit(0);
  }
};

setTimeout(() => {
  say({ timeout: true, got });
  es.close();
  process.exit(1);
}, Number(timeoutArg) * 1000);
