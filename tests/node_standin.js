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

// On a terminal, draw Claude Code's input box (as 2.1.331 does) so that `ccc run`'s screen
// check recognises it: the transcript, a rule, `❯ ` + the draft, a rule, one footer line. Text
// inside a bracketed paste goes into the draft; CR submits it (a line `❯ <text>` in the
// transcript, the box empty again).
const tty = process.stdout.isTTY;
const transcript = [];
let draft = '';
function draw() {
  if (!tty) return;
  const rows = process.stdout.rows || 24;
  const cols = process.stdout.columns || 80;
  const box = ['─'.repeat(cols), '❯ ' + draft, '─'.repeat(cols), '  ⏵⏵ auto mode on (shift+tab to cycle)'];
  const top = transcript.slice(-(rows - box.length));
  const lines = top.concat(box);
  process.stdout.write('\x1b[H\x1b[2J' + lines.join('\r\n') + '\x1b[' + (top.length + 2) + ';' + (3 + draft.length) + 'H');
}
if (tty) require('child_process').spawnSync('stty', ['raw', '-echo'], { stdio: ['inherit', 'ignore', 'ignore'] });

process.stdin.on('readable', () => {
  let chunk;
  while ((chunk = process.stdin.read()) !== null) {
    const text = chunk.toString('utf8');
    record({ t: Date.now(), text: text });
    for (const ch of text.replace(/\x1b\[20[01]~/g, '')) {
      if (ch === '\r') {
        transcript.push('❯ ' + draft);
        draft = '';
      } else if (ch === '\x15') {
        draft = '';
      } else if (ch >= ' ' || ch === '\n') {
        draft += ch;
      }
    }
    draw();
  }
});
process.stdin.on('end', () => process.exit(0));
record({ ready: true, pid: process.pid });
draw();
