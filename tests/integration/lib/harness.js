'use strict';
// Starts and stops the processes an integration test needs (the stand-in kdb+ server or
// a real q, and build/qmux), collects their stderr, and fails a test whose logs contain
// a sanitizer report. Everything listens and connects on 127.0.0.1 only.

const { spawn, execFile } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { test } = require('node:test');
const tls = require('node:tls');

const REPO_DIR = path.resolve(__dirname, '..', '..', '..');
const BUILD_DIR = process.env.QMUX_BUILD_DIR || path.join(REPO_DIR, 'build');
const QMUX = path.join(BUILD_DIR, 'qmux');
const STANDIN = path.join(BUILD_DIR, 'qmux-standin');
const CLIENT = path.join(BUILD_DIR, 'qmux-client');
const STANDIN_Q = path.join(__dirname, '..', 'standin.q');
const HOST = '127.0.0.1';

// Credentials qmux uses toward the upstream; the stand-in is started to require them.
const UPSTREAM_USER = 'qmux';
const UPSTREAM_PASSWORD = 'secret';

const SANITIZER_PATTERN = /AddressSanitizer|runtime error:|LeakSanitizer/;

// AddressSanitizer keeps up to 256 MiB of freed memory in quarantine by default, which
// would hide whether qmux streams a large response or holds it; 16 MiB keeps the
// use-after-free checks and the memory tests meaningful.
const SANITIZER_ENV = {
  ...process.env,
  ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'quarantine_size_mb=16:detect_leaks=1',
};
const LOG_TAIL_LINES = 80;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Returns a loopback TCP port that was free a moment ago.
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Polls check() every intervalMs until it returns a truthy value; throws after timeoutMs
// with a message naming what was awaited.
async function waitFor(check, { timeoutMs = 5000, intervalMs = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

// A child process whose stdout and stderr are kept in memory for assertions and for the
// log dump of a failing test.
class ManagedProcess {
  constructor(name, command, args, options = {}) {
    this.name = name;
    this.command = command;
    this.args = args;
    this.stdout = '';
    this.stderr = '';
    this.exitCode = null;
    this.signal = null;
    this.stopRequested = false;
    this.child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: SANITIZER_ENV, ...options });
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.child.stdout.on('data', (chunk) => { this.stdout += chunk; });
    this.child.stderr.on('data', (chunk) => { this.stderr += chunk; });
    this.exited = new Promise((resolve) => {
      this.child.on('error', (error) => {
        this.stderr += `\n[harness] spawning ${command} failed: ${error.message}\n`;
        this.exitCode = -1;
        resolve();
      });
      this.child.on('exit', (code, signal) => {
        this.exitCode = code;
        this.signal = signal;
        resolve();
      });
    });
  }

  get running() {
    return this.exitCode === null && this.signal === null;
  }

  get pid() {
    return this.child.pid;
  }

  // Sends SIGTERM, then SIGKILL if the process is still running after timeoutMs.
  // Returns true when it exited within timeoutMs of SIGTERM.
  async stop(timeoutMs = 3000) {
    if (!this.running) return true;
    this.stopRequested = true;
    this.child.kill('SIGTERM');
    const timer = new Promise((resolve) => setTimeout(() => resolve(false), timeoutMs));
    const inTime = await Promise.race([this.exited.then(() => true), timer]);
    if (!inTime) {
      this.stderr += `\n[harness] ${this.name} still running ${timeoutMs} ms after SIGTERM; sending SIGKILL\n`;
      this.child.kill('SIGKILL');
      await this.exited;
    }
    return inTime;
  }

  async kill() {
    if (!this.running) return;
    this.stopRequested = true;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  // Waits until stderr matches pattern (a RegExp) and returns the match.
  async waitForLog(pattern, timeoutMs = 3000) {
    return waitFor(() => this.stderr.match(pattern), { timeoutMs, what: `${this.name} log line matching ${pattern}` });
  }

  describe() {
    const status = this.running ? 'running'
      : this.signal ? `killed by ${this.signal}` : `exited with status ${this.exitCode}`;
    return `${this.name} (pid ${this.pid}, ${status}): ${this.command} ${this.args.join(' ')}`;
  }
}

function tail(text, lines) {
  const all = text.split('\n');
  if (all.length <= lines) return text;
  return `[... ${all.length - lines} earlier lines omitted]\n${all.slice(-lines).join('\n')}`;
}

// Connects, sends a handshake and resolves with the reply byte, or rejects on close,
// error or timeout. Used to probe readiness of the stand-in and of qmux. With useTls the
// probe connects with TLS and accepts any certificate: it checks readiness, not trust.
function probeHandshake(port, { credentials = 'probe:probe', timeoutMs = 1000, useTls = false } = {}) {
  return new Promise((resolve, reject) => {
    const socket = useTls
      ? tls.connect({ host: HOST, port, rejectUnauthorized: false })
      : net.connect(port, HOST);
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('handshake timed out')); }, timeoutMs);
    socket.on(useTls ? 'secureConnect' : 'connect',
      () => socket.write(Buffer.concat([Buffer.from(credentials), Buffer.from([3, 0])])));
    socket.once('data', (data) => { clearTimeout(timer); socket.destroy(); resolve(data[0]); });
    socket.on('error', (error) => { clearTimeout(timer); reject(error); });
    socket.on('close', () => { clearTimeout(timer); reject(new Error('closed during handshake')); });
  });
}

async function waitForHandshake(proc, port, timeoutMs, credentials = 'probe:probe', useTls = false) {
  await waitFor(async () => {
    if (!proc.running) throw new Error(`${proc.describe()} exited before accepting connections\n${tail(proc.stderr, LOG_TAIL_LINES)}`);
    try {
      await probeHandshake(port, { credentials, useTls });
      return true;
    } catch {
      return false;
    }
  }, { timeoutMs, intervalMs: 25, what: `${proc.name} to accept a handshake on port ${port}` });
}

function upstreamIsQ() {
  return process.env.QMUX_TEST_UPSTREAM === 'q';
}

// Starts the upstream server: build/qmux-standin, or q with standin.q when
// QMUX_TEST_UPSTREAM=q. With port 0 the stand-in picks a free port itself. tlsFiles
// ({ cert, key }: PEM paths) makes it serve TLS only, as kdb+ does with -E 2.
async function startUpstream({ port = 0, args = [], user = UPSTREAM_USER, password = UPSTREAM_PASSWORD, tmpDir, tlsFiles } = {}) {
  if (upstreamIsQ()) {
    if (port === 0) port = await freePort();
    const qArgs = [STANDIN_Q, '-p', `${HOST}:${port}`];
    if (user !== undefined) {
      const passwordFile = path.join(tmpDir || os.tmpdir(), `q-users-${port}.txt`);
      fs.writeFileSync(passwordFile, `${user}:${password}\n`);
      qArgs.push('-u', passwordFile);
    }
    // NOTE: q reads its certificate and key from the SSL_CERT_FILE and SSL_KEY_FILE
    // environment variables. This path has not run, because no q binary was at hand.
    const processOptions = {};
    if (tlsFiles) {
      qArgs.push('-E', '2');
      processOptions.env = { ...SANITIZER_ENV, SSL_CERT_FILE: tlsFiles.cert, SSL_KEY_FILE: tlsFiles.key };
    }
    const proc = new ManagedProcess('q', 'q', qArgs, processOptions);
    await waitForHandshake(proc, port, 10000, Boolean(tlsFiles)).catch(async (error) => { await proc.kill(); throw error; });
    proc.port = port;
    return proc;
  }

  const standinArgs = ['-p', String(port)];
  if (user !== undefined) standinArgs.push('-u', `${user}:${password}`);
  if (tlsFiles) standinArgs.push('--tls-cert', tlsFiles.cert, '--tls-key', tlsFiles.key);
  standinArgs.push(...args);

  // A restart on the same port may find it briefly taken; retry the bind a few times.
  let lastError;
  for (let attempt = 0; attempt < 20; attempt++) {
    const proc = new ManagedProcess('qmux-standin', STANDIN, standinArgs);
    try {
      const match = await waitFor(() => {
        const found = proc.stdout.match(/^qmux-standin: listening on 127\.0\.0\.1:(\d+)$/m);
        if (found) return found;
        if (!proc.running) throw new Error(`${proc.describe()} exited before its ready line\n${tail(proc.stderr, LOG_TAIL_LINES)}`);
        return null;
      }, { timeoutMs: 5000, what: 'the qmux-standin ready line' });
      proc.port = Number(match[1]);
      return proc;
    } catch (error) {
      lastError = error;
      await proc.kill();
      if (port === 0) break;
      await sleep(100);
    }
  }
  throw lastError;
}

// Writes { key: value } as libconfig settings: strings quoted, numbers as they are,
// arrays as lists of strings.
function settingsText(settings = {}) {
  const format = (value) => {
    if (Array.isArray(value)) return `( ${value.map((item) => `"${item}"`).join(', ')} )`;
    return typeof value === 'string' ? `"${value}"` : value;
  };
  return Object.entries(settings)
    .map(([key, value]) => `${key} = ${format(value)};`)
    .join(' ');
}

// Returns the text of a qmux configuration file. options.pool and options.clients add
// settings to those groups; options.admin and options.http, when given, write those
// groups, as do options.tls and options.upstreamTls for tls and upstream_tls;
// options.upstreamPorts lists several upstreams. Without options.auth every
// listener admits anonymous clients; options.auth writes the auth group, options.listen
// adds listen settings, and options.policies is the text of the policies list.
function qmuxConfigText(options) {
  const o = {
    poolSize: 4,
    reconnectMinMs: 50,
    reconnectMaxMs: 1000,
    connectTimeoutMs: 2000,
    maxMessageSize: 268435456,
    highWatermark: 1048576,
    lowWatermark: 262144,
    logLevel: 'info',
    user: UPSTREAM_USER,
    password: UPSTREAM_PASSWORD,
    ...options,
  };
  const upstreamPorts = o.upstreamPorts || [o.upstreamPort];
  const anonymous = { anonymous: !o.auth };
  return [
    `listen = { address = "${HOST}"; port = ${o.listenPort}; ` +
      `${settingsText({ ...anonymous, ...o.listen })} };`,
    `pool = { size = ${o.poolSize}; reconnect_min_ms = ${o.reconnectMinMs}; ` +
      `reconnect_max_ms = ${o.reconnectMaxMs}; connect_timeout_ms = ${o.connectTimeoutMs}; ` +
      `${settingsText(o.pool)} };`,
    `upstreams = ( ${upstreamPorts.map((port) =>
      `{ host = "${HOST}"; port = ${port}; user = "${o.user}"; password = "${o.password}"; }`).join(', ')} );`,
    `clients = { max_message_size = ${o.maxMessageSize}; output_high_watermark = ${o.highWatermark}; ` +
      `output_low_watermark = ${o.lowWatermark}; ${settingsText(o.clients)} };`,
    `log = { level = "${o.logLevel}"; ${settingsText(o.log)} };`,
    o.admin ? `admin = { ${settingsText({ ...anonymous, ...o.admin })} };` : '',
    o.http ? `http = { ${settingsText({ ...anonymous, ...o.http })} };` : '',
    o.auth ? `auth = { ${settingsText(o.auth)} };` : '',
    o.policies ? `policies = ${o.policies};` : '',
    o.tls ? `tls = { ${settingsText(o.tls)} };` : '',
    o.upstreamTls ? `upstream_tls = { ${settingsText(o.upstreamTls)} };` : '',
    '',
  ].join('\n');
}

// Rewrites the config file of env's qmux with options (same listen port and upstream) and
// sends SIGHUP to reload it.
function reloadQmux(env, options) {
  const text = qmuxConfigText({ listenPort: env.qmux.port, upstreamPort: env.upstream.port, ...options });
  fs.writeFileSync(env.qmux.configPath, text);
  process.kill(env.qmux.pid, 'SIGHUP');
}

// Returns how often pattern (a RegExp with the g flag) matches text.
function countMatches(text, pattern) {
  return (text.match(pattern) || []).length;
}

// Writes a config into tmpDir and starts build/qmux with it; resolves once qmux accepts
// a handshake, sent with options.probe as credentials when given (with options.auth,
// a user and password of the users file), over TLS when options.tls sets mode "only".
// Retries with a new listen port if the chosen one was taken meanwhile.
async function startQmux({ tmpDir, upstreamPort, waitReady = true, ...options }) {
  let lastError;
  for (let attempt = 0; attempt < 3; attempt++) {
    const listenPort = await freePort();
    const configPath = path.join(tmpDir, 'qmux.conf');
    fs.writeFileSync(configPath, qmuxConfigText({ listenPort, upstreamPort, ...options }));
    const processOptions = options.processEnv ? { env: { ...SANITIZER_ENV, ...options.processEnv } } : {};
    // options.openFiles runs qmux under prlimit with that RLIMIT_NOFILE (soft and hard).
    const proc = options.openFiles
      ? new ManagedProcess('qmux', 'prlimit', [`--nofile=${options.openFiles}:${options.openFiles}`,
        QMUX, '-c', configPath], processOptions)
      : new ManagedProcess('qmux', QMUX, ['-c', configPath], processOptions);
    proc.port = listenPort;
    proc.configPath = configPath;
    if (!waitReady) return proc;
    try {
      await waitForHandshake(proc, listenPort, 5000, options.probe, Boolean(options.tls && options.tls.mode === 'only'));
      return proc;
    } catch (error) {
      lastError = error;
      await proc.stop();
      if (!/Address already in use|EADDRINUSE/i.test(proc.stderr)) break;
    }
  }
  throw lastError;
}

// The processes of one test. stop() ends them all; check() throws when a log shows a
// sanitizer report or qmux did not exit with status 0 on SIGTERM.
class TestEnvironment {
  constructor(name) {
    this.name = name;
    this.tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qmux-it-'));
    this.processes = [];
    this.upstream = null;
    this.qmux = null;
    this.qmuxCleanExit = true;
    // Text no qmux log line may contain; tests add the client passwords they use.
    this.secrets = [UPSTREAM_PASSWORD];
  }

  track(proc) {
    this.processes.push(proc);
    return proc;
  }

  async startUpstream(options = {}) {
    this.upstreamOptions = options;
    this.upstream = this.track(await startUpstream({ tmpDir: this.tmpDir, ...options }));
    return this.upstream;
  }

  // Starts one more upstream without replacing this.upstream, for tests with several.
  async addUpstream(options = {}) {
    const proc = this.track(await startUpstream({ tmpDir: this.tmpDir, ...options }));
    proc.startOptions = options;
    return proc;
  }

  // Starts a new upstream on the port of the previous one, after that one is gone. With
  // no argument it replaces this.upstream; given a process from addUpstream() or an
  // earlier restart, it replaces that one and returns the new process.
  async restartUpstream(previous = this.upstream) {
    const port = previous.port;
    if (previous.running) await previous.stop();
    if (previous === this.upstream) {
      this.upstream = this.track(await startUpstream({ tmpDir: this.tmpDir, ...this.upstreamOptions, port }));
      return this.upstream;
    }
    const proc = this.track(await startUpstream({ tmpDir: this.tmpDir, ...previous.startOptions, port }));
    proc.startOptions = previous.startOptions;
    return proc;
  }

  async startQmux(options = {}) {
    const upstreamPort = this.upstream ? this.upstream.port : undefined;
    this.qmux = this.track(await startQmux({ tmpDir: this.tmpDir, upstreamPort, ...options }));
    return this.qmux;
  }

  async stop() {
    for (const proc of [...this.processes].reverse()) {
      const wasRunning = proc.running;
      const inTime = await proc.stop();
      if (proc.name === 'qmux' && wasRunning && (!inTime || proc.exitCode !== 0)) {
        this.qmuxCleanExit = false;
        proc.stderr += `\n[harness] qmux did not exit with status 0 on SIGTERM: ${proc.describe()}\n`;
      }
    }
  }

  logs() {
    return this.processes.map((proc) =>
      `----- ${proc.describe()}\n----- stderr:\n${tail(proc.stderr, LOG_TAIL_LINES)}`).join('\n');
  }

  check() {
    for (const proc of this.processes) {
      const match = proc.stderr.match(SANITIZER_PATTERN);
      if (match) throw new Error(`${proc.name} log contains a sanitizer report ("${match[0]}")`);
      const secret = this.secrets.find((text) => proc.name === 'qmux' && proc.stderr.includes(text));
      if (secret !== undefined) throw new Error(`qmux log contains the password "${secret}"`);
      if (proc.name === 'qmux' && proc.running === false && !proc.stopRequested) {
        throw new Error(`qmux exited on its own during the test: ${proc.describe()}`);
      }
    }
    if (!this.qmuxCleanExit) throw new Error('qmux did not exit with status 0 on SIGTERM');
  }

  cleanup() {
    fs.rmSync(this.tmpDir, { recursive: true, force: true });
  }
}

// Defines a node:test test that receives a fresh TestEnvironment and stops it afterwards.
// A failing test gets the tail of every process log appended to its error. A test whose
// logs show a sanitizer report fails.
function integrationTest(name, options, body) {
  if (typeof options === 'function') {
    body = options;
    options = {};
  }
  test(name, { timeout: 60000, ...options }, async (t) => {
    const env = new TestEnvironment(name);
    let failure = null;
    try {
      await body(env, t);
    } catch (error) {
      failure = error;
    }
    await env.stop();
    if (!failure) {
      try {
        env.check();
      } catch (error) {
        failure = error;
      }
    }
    if (failure) {
      const logs = env.logs();
      const crashed = env.processes.filter((proc) => proc.name === 'qmux' && !proc.stopRequested && !proc.running);
      const crashNote = crashed.map((proc) => `${proc.describe()} ended during the test. `).join('');
      if (failure instanceof Error) {
        failure.message = `${crashNote}${failure.message}\n===== process logs =====\n${logs}`;
      } else {
        failure = new Error(`${crashNote}${String(failure)}\n===== process logs =====\n${logs}`);
      }
      env.cleanup();
      throw failure;
    }
    env.cleanup();
  });
}

// Runs build/qmux-client with args and resolves with { code, signal, stdout, stderr }.
// The process is killed after timeoutMs.
function runClient(args, { timeoutMs = 20000 } = {}) {
  return new Promise((resolve) => {
    execFile(CLIENT, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 512 * 1024 * 1024 },
      (error, stdout, stderr) => {
        let code = 0;
        if (error) code = typeof error.code === 'number' ? error.code : null;
        resolve({ code, signal: error ? error.signal : null, stdout, stderr, args });
      });
  });
}

// Formats a runClient result for an assertion message.
function describeRun(result) {
  return `qmux-client ${result.args.join(' ')}\nexit ${result.code}${result.signal ? ` signal ${result.signal}` : ''}` +
    `\nstdout: ${tail(result.stdout, 20)}\nstderr: ${tail(result.stderr, 20)}`;
}

// Parses the key=value summary line of "qmux-client load".
function parseLoadSummary(stdout) {
  const line = stdout.split('\n').find((l) => l.startsWith('clients='));
  if (!line) return null;
  const summary = {};
  for (const field of line.trim().split(/\s+/)) {
    const [key, value] = field.split('=');
    summary[key] = Number(value);
  }
  return summary;
}

module.exports = {
  BUILD_DIR,
  CLIENT,
  HOST,
  QMUX,
  REPO_DIR,
  STANDIN,
  UPSTREAM_PASSWORD,
  UPSTREAM_USER,
  countMatches,
  describeRun,
  freePort,
  integrationTest,
  parseLoadSummary,
  probeHandshake,
  qmuxConfigText,
  reloadQmux,
  runClient,
  sleep,
  upstreamIsQ,
  waitFor,
};
