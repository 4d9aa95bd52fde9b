# Workers that churn under a steady load (issue 17): each scenario ends with
# the audit of tests/fault/churn_lib.py (nothing lost, no duplicate rows,
# every alert once after dedupe, offsets committed, never backwards). The
# chart's assignor and static-membership values are the ones tested;
# bench/churn compares the others.
set(_py /usr/bin/python3)
set(_f ${CMAKE_CURRENT_SOURCE_DIR}/fault)
vigil_script_test(fault_churn_rolling LABEL fault TIMEOUT 240
  COMMAND ${_py} ${_f}/test_churn.py rolling)
vigil_script_test(fault_churn_scale LABEL fault TIMEOUT 240
  COMMAND ${_py} ${_f}/test_churn.py scale)
vigil_script_test(fault_churn_storm LABEL fault TIMEOUT 360
  COMMAND ${_py} ${_f}/test_churn.py storm --storm-seconds 60)
vigil_script_test(fault_churn_zombie LABEL fault TIMEOUT 240
  COMMAND ${_py} ${_f}/test_churn.py zombie)
# KEDA's lag rule with the chart's numbers, a load that rises and falls.
vigil_script_test(fault_autoscale_lag LABEL fault TIMEOUT 240
  COMMAND ${_py} ${_f}/test_autoscale.py)
# The stall the storm found, made deterministic: a partition paused for
# backpressure, revoked and given back to the same worker is fetched again.
vigil_script_test(fault_paused_revoke LABEL fault TIMEOUT 240
  COMMAND ${_py} ${_f}/test_paused_revoke.py)
