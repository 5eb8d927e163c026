# The closing lines of scripts/test.sh, from the output of `cargo test`: how many test binaries
# started and finished, the name of each that started and never finished (a crash, an abort, a
# process::exit), then the plain line CI reads:
#   summary: N passed, N failed[, N skipped]
# Cargo prints `Running <binary>` (or `Doc-tests <crate>`) as a binary starts and one
# `test result:` line as it finishes; binaries run one after the other.
# Usage: awk -v skipped=N -f scripts/test-summary.awk CARGO_TEST_LOG
function started_one(name) {
  if (current != "") unfinished[++lost] = current
  current = name
  started++
}
/^ +Running / { sub(/^ +Running /, ""); started_one($0); next }
/^ +Doc-tests / { sub(/^ +Doc-tests /, ""); started_one("doc-tests " $0); next }
/^test result:/ {
  for (i = 1; i < NF; i++) {
    if ($(i + 1) ~ /^passed/) passed += $i
    if ($(i + 1) ~ /^failed/) failed += $i
  }
  if (current != "") finished++
  current = ""
}
END {
  if (current != "") unfinished[++lost] = current
  printf "test binaries: %d started, %d finished\n", started, finished
  for (i = 1; i <= lost; i++) printf "did not finish: %s\n", unfinished[i]
  if (started == 0) print "no test binary ran (did the build fail?)"
  line = sprintf("summary: %d passed, %d failed", passed, failed)
  if (skipped > 0) line = line sprintf(", %d skipped", skipped)
  print line
}
