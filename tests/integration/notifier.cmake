# vigil notifier end to end (tests/integration/test_notifier.py) against
# the services of scripts/services: delivery exactly once, replay, live
# subscription change, retraction, escalation; SMS 503 and SMTP-down
# faults; SIGKILL and restart; undecodable alerts dead-lettered.
set(_py /usr/bin/python3)
set(_t ${CMAKE_CURRENT_SOURCE_DIR}/integration)
vigil_script_test(notifier_deliver LABEL integration TIMEOUT 240
  COMMAND ${_py} ${_t}/test_notifier.py deliver)
vigil_script_test(notifier_faults LABEL integration TIMEOUT 240
  COMMAND ${_py} ${_t}/test_notifier.py faults)
vigil_script_test(notifier_lease LABEL integration TIMEOUT 180
  COMMAND ${_py} ${_t}/test_notifier.py lease)
vigil_script_test(notifier_kill LABEL integration TIMEOUT 240
  COMMAND ${_py} ${_t}/test_notifier.py kill)
vigil_script_test(notifier_poison LABEL integration TIMEOUT 180
  COMMAND ${_py} ${_t}/test_notifier.py poison)
# More alerts of one partition in progress than its offset tracker holds:
# none skipped (a regression test: the notifier once dropped them). 20,400
# emails: labelled fault, so it runs in the normal build only.
vigil_script_test(notifier_backlog LABEL fault TIMEOUT 300
  COMMAND ${_py} ${_t}/test_notifier.py backlog)

# alerting/dedupe's batched claim / sending / outcome statements against the
# real PostgreSQL: per-key results in order, lease take-over, hostile ids,
# and two notifiers racing for the same keys.
vigil_test(test_dedupe LABEL integration TIMEOUT 60
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_dedupe.c)
