/*
 * ccc-statusd in-process session client ("the injection"), EXPERIMENTAL and opt-in.
 *
 * Owns: attaching a running Claude Code process to the ccc-statusd daemon from the inside, so
 * that prompts, slash commands and (only here) `eval` reach it. Loaded before Claude Code's own
 * code by `ccc run --inject -- claude ...`:
 *   - Node builds (<= 2.1.112, cli.js):       NODE_OPTIONS=--require=<abs path of this file>
 *   - native builds (>= 2.1.113, Bun binary):  BUN_OPTIONS=--preload=<abs path of this file>
 * Environment it reads:
 *   CCC_SOCKET          daemon socket path (required; nothing happens without it)
 *   CCC_INTERNAL_ID     this session client's id (required)
 *   CCC_INJECT_TARGET   optional: activate only when process.argv[1] ends with this string;
 *                       default: argv[1] is a `cli.js` file or Bun's `/$bunfs/root/cli`
 *   CCC_INJECT_DEBUG    optional: append a debug log to this file (never the terminal)
 *   CCC_HOST_SOCK       the `ccc run --inject` pty host's delivery socket (prompts and
 *                       commands are forwarded there; without it they are refused)
 *   CCC_INJECT_HEARTBEAT_MS, CCC_INJECT_RECONNECT_MAX_MS: intervals, for tests
 *
 * Theory of operation:
 * - The preload also runs in every child node/bun process Claude spawns (npm, hooks, tools),
 *   because they inherit NODE_OPTIONS / BUN_OPTIONS. So we activate only in the Claude process
 *   (argv guard), and once active we delete our activation variables from process.env and strip
 *   ourselves from NODE_OPTIONS / BUN_OPTIONS, so children never even load us.
 *   CCC_INTERNAL_ID stays: hooks need it to associate the session with this client.
 * - Prompts and slash commands are NOT typed from in here (issue 15). We cannot see the screen,
 *   so a message pushed into stdin could land in a picker, a panel, a dialog or on top of the
 *   user's draft. Instead each one is forwarded, as one JSON line, to the pty host that started
 *   us (`ccc run --inject`, socket in CCC_HOST_SOCK): it keeps a model of the screen, types
 *   only into Claude Code's empty input box, confirms the submission, and its answer
 *   (`submitted`, `typed` + what it saw, or `not_idle` + the reason: the daemon queues it) is
 *   relayed to the daemon as is. Without a host, or when it cannot be reached, the message is
 *   refused with an error: nothing is ever typed without the screen check. Forwarded
 *   deliveries are serialised so two prompts never interleave.
 * - Every callback is wrapped: nothing we do may throw into the host process. Our socket and
 *   timers are unref()'d, so we never keep Claude alive after it wants to exit.
 */
'use strict';

(function cccInject() {
  var HOST_TIMEOUT_MS = 9000; // the host's screen check + confirmation take ~3 s at most
  var MAX_LINE_BYTES = 1024 * 1024; // the daemon's line limit (protocol.MAX_LINE_BYTES)
  var MAX_RESULT_CHARS = 512 * 1024; // an eval result must fit in one reply line
  var RECONNECT_MIN_MS = 200;

  function envInt(name, dflt) {
    var n = parseInt(process.env[name] || '', 10);
    return n > 0 ? n : dflt;
  }

  var debugPath = process.env.CCC_INJECT_DEBUG || '';
  var hostSockValue = '';
  function debug(msg) {
    if (!debugPath) return;
    try {
      require('fs').appendFileSync(debugPath, new Date().toISOString() + ' [' + process.pid + '] ' + msg + '\n');
    } catch (e) {
      /* a debug log must not break anything */
    }
  }

  function isClaudeProcess() {
    var argv1 = String(process.argv[1] || '');
    var target = process.env.CCC_INJECT_TARGET;
    if (target) return argv1 === target || argv1.slice(-target.length) === target;
    if (/(^|[\/\\])cli\.js$/.test(argv1) || argv1 === '/$bunfs/root/cli' || /\/\$bunfs\/root\/cli$/.test(argv1)) return true;
    // npm's `claude` is a symlink to cli.js, and Node keeps the link's path in argv[1].
    try {
      return /(^|[\/\\])cli\.js$/.test(require('fs').realpathSync(argv1));
    } catch (e) {
      return false;
    }
  }

  // Remove `--require=<this file>` (or `-r`, `--preload`, with `=` or a space, quoted or not)
  // from an options variable, leaving every other option as the user wrote it.
  function stripOption(varName, thisFile) {
    var value = process.env[varName];
    if (!value) return;
    var file = thisFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    var pattern = new RegExp('(?:--require|-r|--preload)(?:=|\\s+)(["\']?)' + file + '\\1', 'g');
    var kept = value.replace(pattern, ' ').replace(/\s+/g, ' ').trim();
    if (kept) process.env[varName] = kept;
    else delete process.env[varName];
  }

  function activate() {
    var socketPath = process.env.CCC_SOCKET;
    var internalId = process.env.CCC_INTERNAL_ID;
    if (!socketPath || !internalId) return;
    if (!isClaudeProcess()) {
      debug('inactive: argv[1] ' + JSON.stringify(process.argv[1]) + ' is not the Claude Code process');
      return;
    }
    delete process.env.CCC_SOCKET;
    // Read in startClient before this; children (hooks, tools) must not find the host socket.
    hostSockValue = process.env.CCC_HOST_SOCK || '';
    delete process.env.CCC_HOST_SOCK;
    delete process.env.CCC_INJECT_TARGET;
    stripOption('NODE_OPTIONS', __filename);
    stripOption('BUN_OPTIONS', __filename);
    debug('active in ' + process.argv.slice(0, 2).join(' '));
    startClient(socketPath, internalId);
  }

  function startClient(socketPath, internalId) {
    var net = require('net');
    var heartbeatMs = envInt('CCC_INJECT_HEARTBEAT_MS', 30000);
    var reconnectMaxMs = envInt('CCC_INJECT_RECONNECT_MAX_MS', 10000);
    var runtime = process.versions && process.versions.bun ? 'bun' : 'node';
    var sock = null;
    var backoffMs = RECONNECT_MIN_MS;
    var heartbeatTimer = null;
    var reconnectTimer = null;
    var seq = 0;
    var hostSock = hostSockValue;
    var deliveryChain = Promise.resolve();

    function nextId(prefix) {
      seq += 1;
      return 'inject-' + prefix + '-' + process.pid + '-' + seq;
    }

    function send(obj) {
      if (!sock || sock.destroyed) return false;
      try {
        sock.write(JSON.stringify(obj) + '\n');
        return true;
      } catch (e) {
        debug('write failed: ' + e);
        return false;
      }
    }

    function clientData() {
      const data = { kind: 'inject', pid: process.pid, runtime: runtime, capabilities: ['prompt', 'command', 'eval'] };
      if (process.env.CCC_SESSION_NAME) data.name = process.env.CCC_SESSION_NAME;
      return data;
    }

    function baseFields(type) {
      var msg = { type: type, internal_id: internalId, request_id: nextId(type), timestamp: Date.now() };
      if (process.env.CLAUDE_CONFIG_DIR) msg.claude_config_dir = process.env.CLAUDE_CONFIG_DIR;
      msg.data = clientData();
      return msg;
    }

    function scheduleReconnect() {
      if (reconnectTimer) return;
      var delay = backoffMs;
      backoffMs = Math.min(backoffMs * 2, reconnectMaxMs);
      debug('reconnecting in ' + delay + ' ms');
      reconnectTimer = setTimeout(function () {
        reconnectTimer = null;
        connect();
      }, delay);
      if (reconnectTimer.unref) reconnectTimer.unref();
    }

    function connect() {
      var buffer = '';
      var s;
      try {
        s = net.createConnection({ path: socketPath });
      } catch (e) {
        debug('connect threw: ' + e);
        scheduleReconnect();
        return;
      }
      sock = s;
      if (s.unref) s.unref(); // never keep Claude alive just to talk to the daemon
      s.setEncoding('utf8');
      s.on('connect', function () {
        try {
          debug('connected');
          send(baseFields('register'));
        } catch (e) {
          debug('on connect: ' + e);
        }
      });
      s.on('data', function (chunk) {
        try {
          buffer += chunk;
          var nl;
          while ((nl = buffer.indexOf('\n')) >= 0) {
            var line = buffer.slice(0, nl);
            buffer = buffer.slice(nl + 1);
            if (line.trim()) onLine(line);
          }
          if (Buffer.byteLength(buffer) > MAX_LINE_BYTES) {
            debug('line over the limit; dropping the connection');
            buffer = '';
            s.destroy();
          }
        } catch (e) {
          debug('on data: ' + e);
        }
      });
      s.on('error', function (e) {
        debug('socket error: ' + (e && e.code ? e.code : e));
      });
      s.on('close', function () {
        try {
          if (sock === s) sock = null;
          scheduleReconnect();
        } catch (e) {
          debug('on close: ' + e);
        }
      });
    }

    function reply(msg, fields) {
      var out = { type: 'response', internal_id: internalId };
      if (msg && typeof msg.request_id === 'string') out.request_id = msg.request_id;
      for (var k in fields) if (Object.prototype.hasOwnProperty.call(fields, k)) out[k] = fields[k];
      send(out);
    }

    function onLine(line) {
      var msg;
      try {
        msg = JSON.parse(line);
      } catch (e) {
        debug('not JSON from daemon: ' + line.slice(0, 80));
        return;
      }
      if (!msg || typeof msg !== 'object') return;
      if (msg.type === 'response') {
        // The daemon's answer to our register/heartbeat. A good register resets the back-off.
        if (msg.error) debug('daemon said: ' + msg.error);
        else backoffMs = RECONNECT_MIN_MS;
        return;
      }
      if (msg.type === 'prompt' || msg.type === 'command') {
        deliveryChain = deliveryChain.then(function () {
          return deliver(msg);
        });
        return;
      }
      if (msg.type === 'eval') {
        runEval(msg);
        return;
      }
      reply(msg, {
        error: 'the in-process client cannot handle "' + String(msg.type).slice(0, 40) + '" messages; it takes prompt, command and eval'
      });
    }

    // After a decline the daemon queues the message and retries on a heartbeat that says the
    // input is free. The host knows when that is; we hold the daemon link: ask the host to tell
    // us (one waiting connection at most), then heartbeat with input_idle.
    var waitingReady = false;
    function waitReady() {
      if (waitingReady || !hostSock) return;
      waitingReady = true;
      var c;
      try {
        c = require('net').createConnection({ path: hostSock });
      } catch (e) {
        waitingReady = false;
        return;
      }
      if (c.unref) c.unref();
      c.setEncoding('utf8');
      var got = '';
      c.on('connect', function () {
        c.write(JSON.stringify({ type: 'wait_ready' }) + '\n');
      });
      c.on('data', function (chunk) {
        got += chunk;
        if (got.indexOf('\n') >= 0) {
          c.end();
          try {
            var beat = baseFields('heartbeat');
            beat.data.input_idle = true;
            send(beat);
          } catch (e) {
            debug('ready heartbeat: ' + e);
          }
        }
      });
      c.on('error', function (e) {
        debug('wait_ready: ' + (e && e.code ? e.code : e));
      });
      c.on('close', function () {
        waitingReady = false;
      });
    }

    // Hand a prompt/command to the pty host and relay its answer; resolves when answered.
    function deliver(msg) {
      return new Promise(function (resolve) {
        var done = false;
        function finish(fields) {
          if (done) return;
          done = true;
          try {
            reply(msg, fields);
          } catch (e) {
            debug('reply failed: ' + e);
          }
          resolve();
        }
        if (!hostSock) {
          finish({ error: 'this in-process client was loaded without its `ccc run --inject` host, which checks the screen before typing; nothing was typed (start claude with `ccc run --inject`)' });
          return;
        }
        var buffer = '';
        var c;
        try {
          c = require('net').createConnection({ path: hostSock });
        } catch (e) {
          finish({ error: 'cannot reach the `ccc run` host to check the screen (' + describeError(e) + '); nothing was typed' });
          return;
        }
        var timer = setTimeout(function () {
          finish({ error: 'the `ccc run` host did not answer within ' + HOST_TIMEOUT_MS + ' ms; the message may still arrive: check the session' });
          c.destroy();
        }, HOST_TIMEOUT_MS);
        if (timer.unref) timer.unref();
        if (c.unref) c.unref();
        c.setEncoding('utf8');
        c.on('connect', function () {
          var out = { type: msg.type, request_id: msg.request_id, data: msg.data };
          if (msg.type === 'prompt') out.text = msg.text;
          else {
            out.name = msg.name;
            if (msg.text) out.text = msg.text;
          }
          c.write(JSON.stringify(out) + '\n');
        });
        c.on('data', function (chunk) {
          buffer += chunk;
          var nl = buffer.indexOf('\n');
          if (nl < 0) {
            if (buffer.length > MAX_LINE_BYTES) {
              finish({ error: 'the `ccc run` host sent an over-long answer; check the session' });
              c.destroy();
            }
            return;
          }
          clearTimeout(timer);
          var answer;
          try {
            answer = JSON.parse(buffer.slice(0, nl));
          } catch (e) {
            answer = { error: 'the `ccc run` host sent a bad answer; check the session' };
          }
          var fields = {};
          ['status', 'error', 'data'].forEach(function (k) {
            if (answer && answer[k] !== undefined) fields[k] = answer[k];
          });
          finish(fields);
          c.end();
          if (fields.status === 'not_idle') waitReady();
        });
        c.on('error', function (e) {
          clearTimeout(timer);
          finish({ error: 'cannot reach the `ccc run` host to check the screen (' + (e && e.code ? e.code : e) + '); nothing was typed' });
        });
        c.on('close', function () {
          clearTimeout(timer);
          finish({ error: 'the `ccc run` host closed the connection without an answer; the message may still arrive: check the session' });
        });
      });
    }

    function describeError(e) {
      try {
        if (e && typeof e === 'object' && 'message' in e) return (e.name || 'Error') + ': ' + e.message;
        return String(e);
      } catch (e2) {
        return 'unprintable error';
      }
    }

    function jsonSafe(value) {
      if (value === undefined) return 'undefined';
      try {
        var text = JSON.stringify(value);
        if (text !== undefined) {
          if (text.length > MAX_RESULT_CHARS) throw new RangeError('result is ' + text.length + ' characters of JSON, over the ' + MAX_RESULT_CHARS + ' limit');
          return JSON.parse(text);
        }
      } catch (e) {
        if (e instanceof RangeError) throw e;
      }
      var shown;
      try {
        shown = require('util').inspect(value, { depth: 3 });
      } catch (e) {
        shown = String(value);
      }
      return shown.length > MAX_RESULT_CHARS ? shown.slice(0, MAX_RESULT_CHARS) + '…' : shown;
    }

    function runEval(msg) {
      var code = msg.code;
      if (typeof code !== 'string') {
        reply(msg, { error: 'eval has no code; send {"type":"eval","code":"…"}' });
        return;
      }
      var result;
      try {
        result = evaluate(code);
      } catch (e) {
        reply(msg, { error: 'eval failed: ' + describeError(e) });
        return;
      }
      Promise.resolve(result).then(
        function (value) {
          try {
            reply(msg, { status: 'delivered', data: { result: jsonSafe(value) } });
          } catch (e) {
            reply(msg, { error: 'eval failed: ' + describeError(e) });
          }
        },
        function (e) {
          reply(msg, { error: 'eval failed: ' + describeError(e) });
        }
      );
    }

    // Completion value of the code, like a REPL (`1 + 1` → 2, `let x = 2; x * 3` → 6), with
    // `require` in scope. Code using top-level `await` is retried as an async function body,
    // first as one expression, then as statements (use `return` to give a value).
    function evaluate(code) {
      try {
        return evalWithRequire(require, code);
      } catch (e) {
        if (!(e instanceof SyntaxError) || code.indexOf('await') < 0) throw e;
      }
      var AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
      var fn;
      try {
        fn = new AsyncFunction('require', 'return (' + code + '\n);');
      } catch (e) {
        fn = new AsyncFunction('require', code);
      }
      return fn(require);
    }

    connect();
    heartbeatTimer = setInterval(function () {
      try {
        send(baseFields('heartbeat'));
      } catch (e) {
        debug('heartbeat: ' + e);
      }
    }, heartbeatMs);
    if (heartbeatTimer.unref) heartbeatTimer.unref();
  }

  try {
    activate();
  } catch (e) {
    debug('not activated: ' + e);
  }
})();

// Outside the closure so the evaluated code sees `require` (and globals), not our state. Strict
// mode keeps its declarations inside the eval. The code is read from `arguments` so that no
// parameter name of ours shadows the caller's variables.
function evalWithRequire(require) {
  // eslint-disable-next-line no-eval
  return eval(arguments[1]);
}
