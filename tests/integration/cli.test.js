'use strict';
// The command line: --version, --help, usage errors and start-up failures, each with the
// exit status qmux(8) documents (0 success, 1 invalid configuration, 2 usage error,
// 3 start-up failure).

const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { test } = require('node:test');
const { HOST, QMUX, freePort, qmuxConfigText } = require('./lib/harness');

function runQmux(args, timeoutMs = 10000) {
  return new Promise((resolve) => {
    execFile(QMUX, args, { timeout: timeoutMs }, (error, stdout, stderr) => {
      resolve({ status: error ? error.code : 0, stdout, stderr });
    });
  });
}

test('--version prints the version', async () => {
  const result = await runQmux(['--version']);
  assert.equal(result.status, 0);
  assert.match(result.stdout, /^qmux \d+\.\d+\.\d+\n$/);
});

test('--help prints every option', async () => {
  const result = await runQmux(['--help']);
  assert.equal(result.status, 0);
  for (const option of ['--config', '--test', '--foreground', '--version', '--help']) {
    assert.ok(result.stdout.includes(option), `help mentions ${option}`);
  }
  assert.match(result.stdout, /Exit statuses: 0 success, 1 invalid configuration, 2 usage error/);
});

test('usage errors exit 2', async (t) => {
  const cases = [
    { args: [], message: /qmux: missing -c FILE/ },
    { args: ['-x'], message: /qmux: invalid option -x/ },
    { args: ['--bogus'], message: /qmux: invalid option --bogus/ },
    { args: ['-c'], message: /qmux: option -c needs a FILE argument/ },
    { args: ['-c', 'a.conf', 'extra'], message: /qmux: unexpected argument/ },
  ];
  for (const testCase of cases) {
    await t.test(testCase.args.join(' ') || '(no arguments)', async () => {
      const result = await runQmux(testCase.args);
      assert.equal(result.status, 2);
      assert.match(result.stderr, testCase.message);
      assert.match(result.stderr, /Run qmux --help for the options\./);
    });
  }
});

test('listen port in use exits 3', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qmux-cli-'));
  const blocker = net.createServer();
  await new Promise((resolve) => blocker.listen(0, HOST, resolve));
  const port = blocker.address().port;
  try {
    const config = path.join(dir, 'qmux.conf');
    fs.writeFileSync(config, qmuxConfigText({ listenPort: port, upstreamPort: await freePort() }));
    const result = await runQmux(['-c', config]);
    assert.equal(result.status, 3);
    assert.match(result.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: .*; check listen\\.address and listen\\.port`));
  } finally {
    blocker.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
