// The netc extension: highlighting comes from the grammar (package.json contributes it); this
// file starts `netc lsp`, the language server, over stdio for .net and .recipe files.
// The command is the setting netc.server.command (default ["netc", "lsp"]): point it at a
// virtual environment's netc if it is not on PATH.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

async function activate(context) {
  const [command, ...args] = vscode.workspace.getConfiguration("netc").get("server.command");
  const server = { command, args, transport: TransportKind.stdio };
  client = new LanguageClient(
    "netc",
    "netc language server",
    { run: server, debug: server },
    {
      documentSelector: [{ scheme: "file", language: "netc" }],
      synchronize: {
        // an included file changed on disk: the server re-checks the files that include it
        fileEvents: vscode.workspace.createFileSystemWatcher("**/*.{net,recipe}"),
      },
    },
  );
  context.subscriptions.push(client);
  try {
    await client.start();
  } catch (err) {
    vscode.window.showErrorMessage(
      `netc: could not start \`${[command, ...args].join(" ")}\` (${err.message}); ` +
        "install netc or set netc.server.command");
  }
}

async function deactivate() {
  if (client) {
    await client.stop();
  }
}

module.exports = { activate, deactivate };
