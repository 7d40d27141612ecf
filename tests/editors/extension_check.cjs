// Load editors/vscode/extension.js with stand-ins for the `vscode` API and the language client,
// call activate() and print what it asked for (tests/test_editor_grammar.py reads the JSON).
// Only the two host modules are replaced: the extension's own code runs as it is.
"use strict";
const Module = require("node:module");
const path = require("node:path");

const [extension, configured] = process.argv.slice(2);
const seen = { started: 0, stopped: 0 };
const fakes = {
  vscode: {
    workspace: {
      getConfiguration: (section) => ({
        get: (key) => {
          seen.setting = `${section}.${key}`;
          return configured ? JSON.parse(configured) : ["netc", "lsp"];
        },
      }),
      createFileSystemWatcher: (glob) => ({ glob }),
    },
    window: { showErrorMessage: (m) => { seen.error = m; } },
  },
  "vscode-languageclient/node": {
    TransportKind: { stdio: 0 },
    LanguageClient: class {
      constructor(id, name, server, options) {
        Object.assign(seen, { id, name, server, options });
      }
      async start() { seen.started += 1; }
      async stop() { seen.stopped += 1; }
      dispose() {}
    },
  },
};
const load = Module._load;
Module._load = function (request, ...rest) {
  return request in fakes ? fakes[request] : load.call(this, request, ...rest);
};
const ext = require(path.resolve(extension));
(async () => {
  const context = { subscriptions: [] };
  await ext.activate(context);
  seen.subscriptions = context.subscriptions.length;
  await ext.deactivate();
  process.stdout.write(JSON.stringify(seen));
})();
