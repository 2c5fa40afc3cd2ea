// lib.mjs — what the browser tests share: running the real hub (and running it again on the same
// port), publishing to it, and launching Debian's Chromium through playwright-core. Every process
// started here is remembered and killed by killAll(), which the tests call in `finally`.
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SOURCE = process.env.SLUICE_SOURCE || path.resolve(here, '..', '..');
export const BIN = process.env.SLUICE_BIN || path.join(SOURCE, 'build', 'sluice');
export const CHROMIUM = process.env.SLUICE_CHROMIUM || '/usr/bin/chromium';

// createRequire honours NODE_PATH (tests/node_modules under ctest) as well as the parent folders.
const require = createRequire(import.meta.url);

const started = new Set();  // hub processes still running
const servers = new Set();  // browser servers still running

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(pred, timeoutMs, what, stepMs = 20) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(stepMs);
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function token(key, ...claims) {
  const r = spawnSync(BIN, ['token', '--key', key, ...claims], { encoding: 'utf8', timeout: 10000 });
  if (r.status !== 0) throw new Error(`sluice token failed (${r.status}): ${r.stderr}`);
  return r.stdout.trim();
}

// One HTTP request to the hub on loopback: { status, headers, body }.
export function request(port, method, urlPath, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers, timeout: 5000 },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { text += d; });
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
      });
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath}: timeout`)));
    req.on('error', reject);
    req.end(body);
  });
}

// Publishes one update (more form fields in extra: id, type, ...); resolves to its id.
export async function publish(port, jwt, topic, data, extra = {}) {
  const body = new URLSearchParams({ topic, data, ...extra }).toString();
  const r = await request(port, 'POST', '/.well-known/mercure', {
    body,
    headers: {
      Authorization: `Bearer ${jwt}`,
      'Content-Type': 'application/x-www-form-urlencoded',
      'Content-Length': Buffer.byteLength(body),
    },
  });
  if (r.status !== 200) throw new Error(`publish ${data}: HTTP ${r.status} ${r.body}`);
  return r.body.trim();
}

// A running hub: { proc, port, log(), exited: Promise<{code, signal}> }. It runs with
// --jwt-legacy, because token() mints without aud and iss; a test of the spec profile passes
// '--jwt-legacy=0' (the later flag wins) and mints with --audience and --issuer.
function spawnHub(port, args) {
  const proc = spawn(BIN, ['--listen', `127.0.0.1:${port}`, '--jwt-legacy', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  started.add(proc);
  let log = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => {
    started.delete(proc);
    resolve({ code, signal });
  }));
  return { proc, port, exited, log: () => log };
}

async function healthy(port) {
  try {
    return (await request(port, 'GET', '/healthz')).status === 200;
  } catch {
    return false;
  }
}

// Starts the hub and waits until it serves /healthz. A hub that exits at start because the port
// is still taken (the previous one just closed it) is started again, for up to timeoutMs.
export async function startHub(port, args, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hub = spawnHub(port, args);
    const outcome = await Promise.race([
      hub.exited.then(() => 'exited'),
      waitFor(() => healthy(port), Math.max(0, deadline - Date.now()), `the hub on ${port}`)
        .then(() => 'up', () => 'timeout'),
    ]);
    if (outcome === 'up') return hub;
    if (outcome === 'timeout') {
      hub.proc.kill('SIGKILL');
      throw new Error(`the hub did not serve on port ${port}: ${hub.log()}`);
    }
    if (Date.now() > deadline || !/in use|EADDRINUSE/i.test(hub.log()))
      throw new Error(`the hub exited at start: ${hub.log()}`);
    await sleep(100);
  }
}

// What a sanitizer build writes to the hub's stderr when it finds something (as hubtest.py).
export const SANITIZER_MARKS = ['ERROR: AddressSanitizer', 'runtime error:', 'LeakSanitizer',
  'WARNING: ThreadSanitizer', 'FATAL: ThreadSanitizer'];

// The SANITIZER_MARKS in a hub's log (empty: the sanitizers reported nothing).
export function sanitizerReports(hub) {
  const log = hub.log();
  return SANITIZER_MARKS.filter((m) => log.includes(m));
}

// Resolves to the hub's exit ({code, signal}), or null if it has not exited within timeoutMs.
export function exitWithin(hub, timeoutMs) {
  let timer;
  const late = new Promise((resolve) => { timer = setTimeout(() => resolve(null), timeoutMs); });
  return Promise.race([hub.exited, late]).finally(() => clearTimeout(timer));
}

// Debian's Chromium, headless, as a browser server this module can kill by its process, and a
// client connected to it. Playwright gives each launch a fresh temporary --user-data-dir (it
// refuses one among the args) and deletes it when the browser ends.
export async function launchChromium() {
  const { chromium } = require('playwright-core');
  const server = await chromium.launchServer({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  servers.add(server);
  server.process().on('exit', () => servers.delete(server));
  return chromium.connect(server.wsEndpoint(), { timeout: 30000 });
}

// Kills every hub and browser this module started that is still running. Playwright kills a
// browser's whole process group, renderers included.
export async function killAll() {
  for (const proc of started)
    proc.kill('SIGKILL');
  started.clear();
  await Promise.all([...servers].map((s) => s.kill()));
  servers.clear();
}
