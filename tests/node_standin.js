// A stand-in for Claude Code's TUI, for tests/test_inject.py: reads stdin the way Ink does
// (a paused stream with a 'readable' listener, never a 'data' listener) and appends every chunk
// it receives to the record file (argv[2]) as a JSON line {"t": ms, "text": chunk}. The first
// line is {"ready": true, ...} once the preload (if any) has run and stdin is being read.
// With STANDIN_CHILD_REPORT=<path> it also spawns a child node process that writes its own
// environment there, so a test can check the injection does not follow into children.
'use strict';
const fs = require('fs');
const { spawnSync } = require('child_process');

const recordPath = process.argv[2];
function record(obj) {
  fs.appendFileSync(recordPath, JSON.stringify(obj) + '\n');
}

const childReport = process.env.STANDIN_CHILD_REPORT;
if (childReport) {
  spawnSync(process.execPath, [
    '-e',
    'require("fs").writeFileSync(process.argv[1], JSON.stringify({env: process.env}))',
    childReport,
  ], { stdio: 'ignore' });
}

process.stdin.on('readable', () => {
  let chunk;
  while ((chunk = process.stdin.read()) !== null) {
    record({ t: Date.now(), text: chunk.toString('utf8') });
  }
});
process.stdin.on('end', () => process.exit(0));
record({ ready: true, pid: process.pid });
