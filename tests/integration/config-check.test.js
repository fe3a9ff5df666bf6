'use strict';
// qmux -t -c FILE: exit 0 for a valid config, 1 for an invalid one with "FILE:LINE: message"
// on stderr.

const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { test } = require('node:test');
const { QMUX, qmuxConfigText } = require('./lib/harness');

function checkConfig(configPath) {
  return new Promise((resolve) => {
    execFile(QMUX, ['-t', '-c', configPath], { timeout: 5000 }, (error, stdout, stderr) => {
      const code = error ? error.code : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function writeConfig(dir, name, text) {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

const VALID = qmuxConfigText({ listenPort: 5010, upstreamPort: 5001 });

// Each invalid config with the line its error must name. The valid text has one setting
// group per line: listen (1), pool (2), upstreams (3), clients (4), log (5).
const INVALID_CASES = [
  { name: 'pool size zero', text: VALID.replace('size = 4;', 'size = 0;'), line: 2 },
  { name: 'syntax error', text: VALID.replace('port = 5001; user', 'port = ; user'), line: 3 },
  { name: 'upstream port as string', text: VALID.replace('port = 5001;', 'port = "5001";'), line: 3 },
  { name: 'listen port out of range', text: VALID.replace('port = 5010;', 'port = 70000;'), line: 1 },
  { name: 'unknown log level', text: VALID.replace('level = "info"', 'level = "loud"'), line: 5 },
  {
    name: 'low watermark above high watermark',
    text: VALID.replace('output_low_watermark = 262144', 'output_low_watermark = 4194304'),
    line: 4,
  },
];

test('config check', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qmux-config-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));

  await t.test('valid config exits 0', async () => {
    const file = writeConfig(dir, 'valid.conf', VALID);
    const result = await checkConfig(file);
    assert.equal(result.code, 0, `stderr: ${result.stderr}`);
  });

  for (const testCase of INVALID_CASES) {
    await t.test(`${testCase.name} exits 1`, async () => {
      const file = writeConfig(dir, `${testCase.name.replace(/ /g, '-')}.conf`, testCase.text);
      const result = await checkConfig(file);
      assert.equal(result.code, 1, `stderr: ${result.stderr}`);
      assert.ok(result.stderr.includes(`${file}:${testCase.line}: `),
        `stderr names ${file}:${testCase.line}:\n${result.stderr}`);
    });
  }

  await t.test('missing file exits 1', async () => {
    const file = path.join(dir, 'absent.conf');
    const result = await checkConfig(file);
    assert.equal(result.code, 1, `stderr: ${result.stderr}`);
    assert.ok(result.stderr.includes(file), `stderr names the file:\n${result.stderr}`);
  });
});
