// Tokenize files with netc's TextMate grammar through vscode-textmate and vscode-oniguruma,
// the engine VS Code itself uses. tests/test_editor_grammar.py runs it:
//
//   node tests/editors/tokenize.mjs MODULES_DIR GRAMMAR FILE...
//
// MODULES_DIR is the node_modules folder holding both packages (editors/vscode/node_modules,
// made by `npm ci` there). Prints one JSON object: file -> list of lines, each a list of
// [start column, text, scopes] tokens (columns from 0, scopes outermost first).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";

const [modules, grammarPath, ...files] = process.argv.slice(2);
const require = createRequire(join(resolve(modules), "noop.js"));
const textmate = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

const wasm = readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm"));
await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
const registry = new textmate.Registry({
  onigLib: Promise.resolve({
    createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
    createOnigString: (s) => new oniguruma.OnigString(s),
  }),
  loadGrammar: async () => textmate.parseRawGrammar(readFileSync(grammarPath, "utf8"), grammarPath),
});
const grammar = await registry.loadGrammar("source.netc");

const out = {};
for (const file of files) {
  let state = textmate.INITIAL;
  out[file] = readFileSync(file, "utf8").split(/\r?\n/).map((line) => {
    const result = grammar.tokenizeLine(line, state);
    state = result.ruleStack;
    return result.tokens.map((t) => [t.startIndex, line.slice(t.startIndex, t.endIndex), t.scopes]);
  });
}
process.stdout.write(JSON.stringify(out));
