// Repeats each failed test, with its error, just above the TAP summary: a long run's log is
// often read from its end, and a failure hundreds of lines up is easily missed there.
// The summary stays the last thing printed.
const SUMMARY = /^# (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) /;
const MAX_DETAIL_LINES = 40;

export function tapRecap(write) {
  const failures = [];
  let held = [];
  let open; // the failure whose YAML block is being read
  const names = []; // names[depth]: the subtest being reported at that depth

  function line(text) {
    if (open) {
      if (text.trim() === "...") open = undefined;
      else if (text.trim() !== "---") open.detail.push(text.slice(open.indent));
    }
    const indent = text.length - text.trimStart().length;
    const depth = indent / 4;
    const subtest = /^ *# Subtest: (.*)$/.exec(text);
    if (subtest) names.splice(depth, Infinity, subtest[1]);
    // A failing TODO test does not fail the run: it is not repeated.
    const failed = /^ *not ok \d+ - (.*?)( # TODO.*)?$/.exec(text);
    if (failed && failed[2] === undefined) {
      open = { path: [...names.slice(0, depth), failed[1]].join(" > "), indent: indent + 2, detail: [] };
      failures.push(open);
    }
    if (indent === 0 && SUMMARY.test(text)) {
      held.push(text);
      return;
    }
    for (const h of held) write(h);
    held = [];
    write(text);
  }

  function end() {
    // A suite fails when a test in it fails: show the tests, not the suites around them.
    const own = failures.filter((f) => !f.detail.some((d) => d.includes("failureType: 'subtestsFailed'")));
    if (own.length > 0) {
      write(`# ${own.length} failed:`);
      for (const f of own) {
        write(`# - ${f.path}`);
        for (const d of f.detail.slice(0, MAX_DETAIL_LINES)) write(`#     ${d}`);
      }
    }
    for (const h of held) write(h);
    held = [];
  }

  return { line, end };
}
