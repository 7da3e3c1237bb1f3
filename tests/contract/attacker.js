// A hostile Node.js function for tests/contract/test_containment.py: payload.attack names what it tries.
const fs = require('fs');

const read = (path) => { try { return fs.readFileSync(path, 'utf8').slice(0, 65536); } catch (err) { return null; } };

const attacks = {
  read: (payload) => Object.fromEntries(payload.paths.map((path) => [path, read(path)])),
  who: () => ({ identity: [process.pid, fs.statSync('/proc/self/ns/pid').ino] }),
  huge: (payload) => 'x'.repeat(payload.megabytes * 1024 * 1024),
};

module.exports = (context, payload) => attacks[payload.attack](payload);
