'use strict';
// Makes throwaway TLS certificates for a test with the openssl command: a CA, server
// certificates for 127.0.0.1 and localhost that it signs, a client certificate, and an
// unrelated CA whose trust makes a handshake fail. EC P-256 keys keep this fast.

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const DAYS = '2';

function openssl(dir, args) {
  try {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    throw new Error(`openssl ${args.join(' ')} failed: ${error.stderr || error.message}`);
  }
}

const KEY_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

// Writes NAME.pem and NAME.key: a self-signed CA certificate and its key.
function makeCa(dir, name, commonName) {
  openssl(dir, ['req', '-x509', ...KEY_ARGS, '-keyout', `${name}.key`, '-out', `${name}.pem`,
    '-days', DAYS, '-subj', `/CN=${commonName}`]);
  return { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
}

// Writes NAME.pem and NAME.key: a certificate signed by ca for the given extended key
// usage ("serverAuth" or "clientAuth"), valid for 127.0.0.1 and localhost.
function makeLeaf(dir, name, commonName, ca, usage) {
  const extensions = path.join(dir, `${name}.ext`);
  fs.writeFileSync(extensions, [
    'basicConstraints=CA:FALSE',
    'keyUsage=digitalSignature',
    `extendedKeyUsage=${usage}`,
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '',
  ].join('\n'));
  openssl(dir, ['req', ...KEY_ARGS, '-keyout', `${name}.key`, '-out', `${name}.csr`,
    '-subj', `/CN=${commonName}`]);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', ca.cert, '-CAkey', ca.key,
    '-CAcreateserial', '-out', `${name}.pem`, '-days', DAYS, '-extfile', extensions]);
  return { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
}

// Makes every certificate under dir/tls and returns their paths: ca, wrongCa (each
// { cert, key }), serverA and serverB (two server certificates of ca, with the common
// names qmux-test-server-a and -b), and client (a client certificate of ca).
function makeCertificates(dir) {
  const tlsDir = path.join(dir, 'tls');
  fs.mkdirSync(tlsDir, { recursive: true });
  const ca = makeCa(tlsDir, 'ca', 'qmux test CA');
  return {
    ca,
    wrongCa: makeCa(tlsDir, 'wrong-ca', 'qmux unrelated CA'),
    serverA: makeLeaf(tlsDir, 'server-a', 'qmux-test-server-a', ca, 'serverAuth'),
    serverB: makeLeaf(tlsDir, 'server-b', 'qmux-test-server-b', ca, 'serverAuth'),
    client: makeLeaf(tlsDir, 'client', 'qmux-test-client', ca, 'clientAuth'),
  };
}

module.exports = { makeCertificates };
