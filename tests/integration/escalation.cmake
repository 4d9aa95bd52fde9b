# The closed loop of issue #14 (tests/integration/test_escalation.py)
# against the services of scripts/services, deadlines compressed by the
# notifier's escalation_scale: a full escalation timeline and the audit
# trail's order; two notifiers racing (each step once); SIGKILL while a
# deadline passes; the audit trail's append-only grants and `vigil audit
# verify` against a superuser's edit and delete; a retraction stopping an
# escalation and telling those paged; the daily warning digest.
set(_py /usr/bin/python3)
set(_t ${CMAKE_CURRENT_SOURCE_DIR}/integration)
vigil_script_test(escalation_timeline LABEL integration TIMEOUT 120
  COMMAND ${_py} ${_t}/test_escalation.py timeline)
vigil_script_test(escalation_race LABEL integration TIMEOUT 180
  COMMAND ${_py} ${_t}/test_escalation.py race)
vigil_script_test(escalation_kill LABEL fault TIMEOUT 120
  COMMAND ${_py} ${_t}/test_escalation.py kill)
vigil_script_test(escalation_audit LABEL security TIMEOUT 60
  COMMAND ${_py} ${_t}/test_escalation.py audit)
vigil_script_test(escalation_digest LABEL integration TIMEOUT 90
  COMMAND ${_py} ${_t}/test_escalation.py digest)
vigil_script_test(escalation_lockorder LABEL fault TIMEOUT 60
  COMMAND ${_py} ${_t}/test_escalation.py lockorder)
vigil_script_test(escalation_retract LABEL integration TIMEOUT 120
  COMMAND ${_py} ${_t}/test_escalation.py retract)
vigil_script_test(quiet_hours LABEL integration TIMEOUT 120
  COMMAND ${_py} ${_t}/test_escalation.py quiet)
vigil_script_test(quiet_hours_race LABEL integration TIMEOUT 120
  COMMAND ${_py} ${_t}/test_escalation.py quiet_race)
vigil_script_test(quiet_hours_kill LABEL fault TIMEOUT 120
  COMMAND ${_py} ${_t}/test_escalation.py quiet_kill)
vigil_script_test(quiet_hours_burst LABEL integration TIMEOUT 150
  COMMAND ${_py} ${_t}/test_escalation.py quiet_burst)
