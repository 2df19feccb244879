# Counted checks for the appliance's test scripts (vmtest, reprotest): each prints PASS or FAIL,
# and finish ends with the "N passed, N failed" line the test command also prints.
passed=0
failed=0
check() { # check NAME COMMAND...: runs COMMAND, counts and prints the outcome
  local name=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
    echo "PASS $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name"
  fi
}
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}
