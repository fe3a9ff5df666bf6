'use strict';
// The query page of GET / in a real browser: headless Chromium, driven over the Chrome
// DevTools Protocol (CDP), types a query into #query, clicks #run and reads the rendered
// result. A screenshot goes to build/test-output/. Skipped when /usr/bin/chromium (Debian's
// chromium package) is missing or does not start.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { HOST, REPO_DIR, freePort, integrationTest, sleep, waitFor } = require('./lib/harness');

const CHROMIUM = '/usr/bin/chromium';
const OUTPUT_DIR = path.join(REPO_DIR, 'build', 'test-output');
const START_TIMEOUT_MS = 30000;

// A minimal WebSocket client (RFC 6455) over net.Socket, because Node.js 20 has no global
// WebSocket without a flag: text messages only, client frames masked, no extensions.
class WebSocketClient {
  static connect(url) {
    const { hostname, port, pathname } = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = net.connect(Number(port), hostname);
      const key = crypto.randomBytes(16).toString('base64');
      let received = Buffer.alloc(0);
      socket.once('error', reject);
      socket.on('connect', () => {
        socket.write(`GET ${pathname} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      });
      const onHandshake = (chunk) => {
        received = Buffer.concat([received, chunk]);
        const end = received.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onHandshake);
        const head = received.subarray(0, end).toString('latin1');
        if (!/^HTTP\/1\.1 101 /.test(head)) {
          socket.destroy();
          reject(new Error(`WebSocket upgrade of ${url} failed: ${head.split('\r\n')[0]}`));
          return;
        }
        resolve(new WebSocketClient(socket, received.subarray(end + 4)));
      };
      socket.on('data', onHandshake);
    });
  }

  constructor(socket, rest) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.fragments = [];
    this.onmessage = () => {};
    this.onclose = () => {};
    socket.on('data', (chunk) => this.receive(chunk));
    socket.on('close', () => this.onclose());
    socket.on('error', () => {});
    if (rest.length > 0) this.receive(rest);
  }

  send(text) {
    const payload = Buffer.from(text, 'utf8');
    let header;
    if (payload.length < 126) {
      header = Buffer.from([0x81, 0x80 | payload.length]);
    } else if (payload.length < 65536) {
      header = Buffer.alloc(4);
      header[0] = 0x81;
      header[1] = 0x80 | 126;
      header.writeUInt16BE(payload.length, 2);
    } else {
      header = Buffer.alloc(10);
      header[0] = 0x81;
      header[1] = 0x80 | 127;
      header.writeBigUInt64BE(BigInt(payload.length), 2);
    }
    this.writeFrame(header, payload);
  }

  writeFrame(header, payload) {
    const mask = crypto.randomBytes(4);
    const masked = Buffer.alloc(payload.length);
    for (let i = 0; i < payload.length; i++) masked[i] = payload[i] ^ mask[i % 4];
    this.socket.write(Buffer.concat([header, mask, masked]));
  }

  receive(chunk) {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      if (this.buffer.length < 2) return;
      const opcode = this.buffer[0] & 0x0f;
      const final = (this.buffer[0] & 0x80) !== 0;
      let length = this.buffer[1] & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (this.buffer.length < 4) return;
        length = this.buffer.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (this.buffer.length < 10) return;
        length = Number(this.buffer.readBigUInt64BE(2));
        offset = 10;
      }
      if (this.buffer.length < offset + length) return;
      const payload = this.buffer.subarray(offset, offset + length);
      this.buffer = this.buffer.subarray(offset + length);

      if (opcode === 0x9) {
        this.writeFrame(Buffer.from([0x8a, 0x80 | payload.length]), payload);   // pong
      } else if (opcode === 0x8) {
        this.socket.end();
      } else if (opcode === 0x1 || opcode === 0x0) {
        this.fragments.push(Buffer.from(payload));
        if (final) {
          const text = Buffer.concat(this.fragments).toString('utf8');
          this.fragments = [];
          this.onmessage(text);
        }
      }
    }
  }

  close() {
    this.socket.destroy();
  }
}

// CDP commands over one WebSocket: send() resolves with the result or rejects with the
// protocol error.
class DevToolsSession {
  constructor(socket) {
    this.socket = socket;
    this.nextId = 1;
    this.pending = new Map();
    socket.onmessage = (text) => {
      const message = JSON.parse(text);
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.error) waiter.reject(new Error(`${waiter.method}: ${message.error.message}`));
      else waiter.resolve(message.result);
    };
    socket.onclose = () => {
      for (const waiter of this.pending.values()) waiter.reject(new Error(`${waiter.method}: DevTools connection closed`));
      this.pending.clear();
    };
  }

  send(method, params = {}) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { method, resolve, reject });
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }

  // Evaluates expression in the page and returns its value.
  async evaluate(expression) {
    const { result, exceptionDetails } = await this.send('Runtime.evaluate', { expression, returnByValue: true });
    if (exceptionDetails) throw new Error(`evaluating ${expression}: ${exceptionDetails.text}`);
    return result.value;
  }
}

// Starts Chromium on url with a fresh profile. Resolves with { process, session } or
// with { skip: reason } when it does not start.
async function launchChromium(url, profileDir) {
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--remote-debugging-port=0', `--user-data-dir=${profileDir}`, '--window-size=1000,800', url];
  // Its own process group, so that stopping it also stops its renderer and helper processes.
  const browser = spawn(CHROMIUM, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  let exited = false;
  browser.stderr.on('data', (chunk) => { stderr += chunk; });
  browser.on('exit', () => { exited = true; });
  browser.on('error', (error) => { stderr += `spawn failed: ${error.message}\n`; exited = true; });

  const portFile = path.join(profileDir, 'DevToolsActivePort');
  try {
    await waitFor(() => exited || fs.existsSync(portFile), { timeoutMs: START_TIMEOUT_MS, intervalMs: 50, what: 'DevToolsActivePort' });
  } catch {
    // Reported as a skip below.
  }
  if (exited || !fs.existsSync(portFile)) {
    stopChromium(browser);
    return { skip: `${CHROMIUM} did not start: ${stderr.trim().split('\n').slice(-3).join(' | ') || 'no output'}` };
  }

  const port = Number(fs.readFileSync(portFile, 'utf8').split('\n')[0]);
  const page = await waitFor(async () => {
    const targets = await (await fetch(`http://${HOST}:${port}/json/list`)).json();
    return targets.find((target) => target.type === 'page' && target.url.startsWith(url));
  }, { timeoutMs: START_TIMEOUT_MS, what: `a page target for ${url}` });
  const session = new DevToolsSession(await WebSocketClient.connect(page.webSocketDebuggerUrl));
  return { process: browser, session };
}

function stopChromium(browser) {
  if (browser.exitCode !== null || browser.signalCode !== null) return;
  try {
    process.kill(-browser.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

// Types text into #query as a user would (keyboard text input) and clicks #run.
async function runQuery(session, text) {
  await session.evaluate("document.querySelector('#query').value = ''; document.querySelector('#query').focus()");
  await session.send('Input.insertText', { text });
  assert.equal(await session.evaluate("document.querySelector('#query').value"), text);
  await session.evaluate("document.querySelector('#run').click()");
  await waitFor(() => session.evaluate("document.querySelector('#run').disabled === false && " +
    "document.querySelector('#elapsed').textContent !== '-'"), { timeoutMs: 10000, what: `the result of ${text}` });
}

integrationTest('browser page runs a query', { timeout: 120000 }, async (env, t) => {
  if (!fs.existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} is not installed; install Debian's chromium package to run this test`);
    return;
  }
  await env.startUpstream();
  const httpPort = await freePort();
  await env.startQmux({ poolSize: 2, http: { port: httpPort } });
  const url = `http://${HOST}:${httpPort}/`;
  const profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qmux-chromium-'));

  const browser = await launchChromium(url, profileDir);
  if (browser.skip) {
    fs.rmSync(profileDir, { recursive: true, force: true });
    t.skip(browser.skip);
    return;
  }
  const { session } = browser;
  try {
    await waitFor(() => session.evaluate("document.readyState === 'complete' && document.querySelector('#run') !== null"),
      { timeoutMs: 10000, what: 'the query page to load' });

    // A table: one row per record, one column per name.
    await runQuery(session, '.standin.table 3');
    assert.equal(await session.evaluate("document.querySelector('#error').textContent"), '');
    assert.deepEqual(await session.evaluate("Array.from(document.querySelectorAll('#result thead th'), (th) => th.textContent)"),
      ['id', 'sym', 'price', 'size', 'time']);
    assert.equal(await session.evaluate("document.querySelectorAll('#result tbody tr').length"), 3);
    assert.deepEqual(await session.evaluate("Array.from(document.querySelectorAll('#result tbody tr:nth-child(2) td'), (td) => td.textContent)"),
      ['1', 'b', '100.25', '200', '2024-01-01T09:30:00.001000000']);
    assert.equal(await session.evaluate("document.querySelector('#rows').textContent"), '3');
    assert.match(await session.evaluate("document.querySelector('#elapsed').textContent"), /^\d+\.\d ms$/);

    fs.mkdirSync(OUTPUT_DIR, { recursive: true });
    const { data } = await session.send('Page.captureScreenshot', { format: 'png' });
    const screenshot = path.join(OUTPUT_DIR, 'browser-table.png');
    fs.writeFileSync(screenshot, Buffer.from(data, 'base64'));
    assert.ok(fs.statSync(screenshot).size > 1000, `a screenshot in ${screenshot}`);

    // A list that is not a table is shown as JSON text.
    await runQuery(session, 'til 5');
    assert.equal(await session.evaluate("document.querySelector('#result table')"), null);
    assert.equal(JSON.stringify(JSON.parse(await session.evaluate("document.querySelector('#result pre').textContent"))), '[0,1,2,3,4]');
    assert.equal(await session.evaluate("document.querySelector('#rows').textContent"), '5');

    // A q error is shown as text, with the HTTP status.
    await runQuery(session, "'oops");
    assert.equal(await session.evaluate("document.querySelector('#error').textContent"), 'error (HTTP 400): oops');
    assert.equal(await session.evaluate("document.querySelector('#result').textContent"), '');
  } finally {
    session.socket.close();
    stopChromium(browser.process);
    await sleep(200);
    fs.rmSync(profileDir, { recursive: true, force: true });
  }
});
